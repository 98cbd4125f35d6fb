// ONNX Runtime sessions for an artifact's graphs, on the requested device.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { DeviceError, firstLine } from './errors.js';
import { wrapInGreedyLoop } from './generation/greedyLoop.js';
import { decodeFlatModel } from './onnxModel.js';
import { buildMismatch, candidates, executionProviders, parseDevice, providerFailure, providerStatus, type Build, type Device, type Provider } from './providers.js';
import { defaultThreads, threadsProblem } from './threads.js';

// onnxruntime's process-wide logger, set before its first session creates it: at its default
// (warning) it prints, in colour, that it could not save a telemetry id where HOME is not
// writable (a service user); the sessions' own logs are off already (logSeverityLevel 4).
ort.env.logLevel = 'error';

export interface SessionOptions {
  /** cpu | cuda | tensorrt | webgpu | auto (default cpu). */
  device?: Device | string;
  /** Intra-op threads (default: one per physical core this process may use, runtime/threads.ts). */
  threads?: number;
  deviceId?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * ORT log level: 0 verbose .. 4 fatal (default 4: an error in a run also throws, and is reported
   * once, as one BLIP line, rather than again by onnxruntime's own logger on stderr).
   */
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  /** Keep named outputs on the GPU (WebGPU only; e.g. present.* for the KV cache). */
  preferredOutputLocation?: Record<string, 'cpu' | 'gpu-buffer'>;
  /** What the artifact was compiled for (manifest target and dtype): a provider it cannot run on is refused, or passed over by auto. */
  build?: Build;
  /** A decoder step graph, on the CPU: wrap it in the greedy Loop (runtime/generation/greedyLoop.ts). */
  greedyLoop?: boolean;
  /**
   * CPU: let onnxruntime copy each MatMul / Gemm weight into its packed layout at load (default
   * true). Off, the kernels read the weights where weights.bin is mapped and pack them per call (or
   * take the one-row kernel): for a graph run a few times per load (a staged encode, a short staged
   * generation, runtime/model.ts) that costs less than the copy.
   */
  prepack?: boolean;
  /**
   * CPU: idle intra-op threads spin for the next op (onnxruntime's default, true). Off where two
   * sessions take turns at the grain of single steps (bench/decoder_steps.ts --paired): the idle
   * session's spinning pool would take a core from the running one.
   */
  spinning?: boolean;
  /**
   * CPU: the intra-op threads stop spinning when a run returns (onnxruntime's
   * session.force_spinning_stop; default true), instead of spinning on for a while in case another
   * run follows. The next thing after a run is most often other work — the next session's run
   * (encode -> prefill), preprocessing, the host's share of a beam step — which the spinning
   * threads take cores from: on 2 cores, BLIP-base's prefill after its encode 26-30 -> 14-16 ms,
   * the LLaMA layout's 86 -> 62 ms, 3-beam decoding 390-400 -> 376-377 ms (docs/performance.md).
   */
  stopSpinningAfterRun?: boolean;
}

/** The `session.*` config entries a CPU session gets for `o` (exported for tests). */
export function cpuSessionConfig(o: SessionOptions, externalFolder?: string): Record<string, string> {
  const session: Record<string, string> = {};
  if (externalFolder) session.model_external_initializers_file_folder_path = externalFolder;
  if (o.prepack === false) session.disable_prepacking = '1';
  if (o.spinning === false) session['intra_op.allow_spinning'] = '0';
  else if (o.stopSpinningAfterRun !== false) session.force_spinning_stop = '1';
  return session;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  /** The provider the session runs on. */
  provider: Provider;
  /** Providers tried before it that failed (auto only), with the reason. */
  fallbacks: Array<{ provider: Provider; reason: string }>;
}

/** Session options common to every provider (exported for tests). */
export function baseOptions(o: SessionOptions): ort.InferenceSession.SessionOptions {
  const opts: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: o.graphOptimizationLevel ?? 'all',
    logSeverityLevel: o.logSeverityLevel ?? 4,
  };
  const bad = o.threads === undefined ? undefined : threadsProblem(o.threads);
  if (bad) throw new DeviceError('BLIP5043', `threads ${bad}`);
  opts.intraOpNumThreads = o.threads ?? defaultThreads();
  return opts;
}

/** Create a session for `modelPath` on the device; `auto` falls back silently to CPU. */
export async function openSession(modelPath: string, o: SessionOptions = {}): Promise<OpenedSession> {
  const device = typeof o.device === 'string' ? parseDevice(o.device) : (o.device ?? 'cpu');
  if (!existsSync(modelPath)) throw new DeviceError('BLIP5043', `cannot open ${modelPath}: no such file`);
  const fallbacks: OpenedSession['fallbacks'] = [];
  const mismatch = device === 'auto' ? undefined : buildMismatch(o.build, device);
  if (mismatch) throw new DeviceError('BLIP5042', `device ${device}: cannot run the model in ${dirname(modelPath)}: ${mismatch}`);
  const tries = candidates(device, o.build);
  for (const p of tries) {
    const last = p === tries[tries.length - 1];
    const st = providerStatus(p);
    if (!st.installed) {
      if (device !== 'auto') throw new DeviceError(p === 'webgpu' ? 'BLIP5042' : 'BLIP5041', `device ${p}: ${st.reason}`);
      fallbacks.push({ provider: p, reason: st.reason ?? 'not installed' });
      continue;
    }
    const opts = baseOptions(o);
    opts.executionProviders = executionProviders(p, o.deviceId) as ort.InferenceSession.SessionOptions['executionProviders'];
    if (o.preferredOutputLocation && p === 'webgpu') opts.preferredOutputLocation = o.preferredOutputLocation;
    try {
      // CPU: a tied embedding / LM head gets a second initializer over the same bytes (see untieHead),
      // and a decoder runs greedy steps in the graph (greedyLoop.ts)
      let rewritten = p === 'cpu' ? untieHead(readFileSync(modelPath)) : undefined;
      if (p === 'cpu' && o.greedyLoop) rewritten = wrapInGreedyLoop(rewritten ?? readFileSync(modelPath), { weightsInBody: !hardLinked(join(dirname(modelPath), 'weights.bin')) }) ?? rewritten;
      const session = p === 'cpu' ? cpuSessionConfig(o, rewritten ? resolve(dirname(modelPath)) : undefined) : {};
      if (Object.keys(session).length) opts.extra = { session };
      const created = rewritten ? await ort.InferenceSession.create(rewritten, opts) : await ort.InferenceSession.create(modelPath, opts);
      return { session: created, provider: p, fallbacks };
    } catch (e) {
      if (p === 'cpu') throw new DeviceError('BLIP5043', `cannot load ${modelPath} (${firstLine(e)})`);
      const err = providerFailure(p, e, modelPath);
      if (device !== 'auto' || last) throw err;
      fallbacks.push({ provider: p, reason: err.message });
    }
  }
  throw new DeviceError('BLIP5042', `device ${device}: no provider could be started`);
}

const { onnx } = onnxProto;

/** Whether a file has more than one hard link (a `cp -al` copy of an artifact, say). */
function hardLinked(path: string): boolean {
  try {
    return statSync(path).nlink > 1;
  } catch {
    return false;
  }
}

/** Suffix of the second initializer untieHead gives a tied LM head. */
export const HEAD_ALIAS = '::lm_head';

/**
 * For the CPU provider: when one external-data initializer is both a Gather's table (token
 * embeddings) and a Gemm / MatMul weight (the tied LM head), return the model with those Gemm /
 * MatMul inputs reading a second initializer that points at the same bytes of the external-data
 * file; otherwise undefined. onnxruntime maps each external initializer separately and prepacks a
 * MatMul / Gemm weight into its own buffer: once the head's initializer is its own, its mapping is
 * read by the prepacking and then released, while the Gather's mapping is only paged in for the rows
 * it looks up. Shared, the prepacking pages in the whole table and the Gather keeps it resident: the
 * embedding held twice (BLIP-base: 89 MiB, 10 % of the weights). Same bytes, same kernels: outputs
 * are identical. Models with subgraphs or inline initializers are left alone.
 */
export function untieHead(bytes: Uint8Array): Uint8Array | undefined {
  const model = decodeFlatModel(bytes);
  if (!model) return undefined;
  const g = model.graph!;
  const nodes = g.node ?? [];
  const inits = g.initializer ?? [];
  const external = new Map(inits.filter((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL).map((t) => [t.name ?? '', t]));
  const input = (n: onnxProto.onnx.INodeProto, i: number): string => n.input?.[i] ?? '';
  const plain = (n: onnxProto.onnx.INodeProto, ...ops: string[]): boolean => ops.includes(n.opType ?? '') && !n.domain;
  const gathered = new Set(nodes.filter((n) => plain(n, 'Gather') && external.has(input(n, 0))).map((n) => input(n, 0)));
  const heads = nodes.filter((n) => plain(n, 'Gemm', 'MatMul') && gathered.has(input(n, 1)));
  if (!heads.length) return undefined;
  const names = new Set([...inits.map((t) => t.name), ...nodes.flatMap((n) => n.output ?? []), ...(g.input ?? []).map((v) => v.name)]);
  const alias = new Map<string, string>();
  for (const n of heads) {
    const name = input(n, 1);
    let a = alias.get(name);
    if (!a) {
      a = name + HEAD_ALIAS;
      for (let i = 2; names.has(a); i++) a = `${name}${HEAD_ALIAS}${i}`;
      names.add(a);
      const t = external.get(name)!;
      inits.push(onnx.TensorProto.create({ name: a, dataType: t.dataType, dims: t.dims, dataLocation: t.dataLocation, externalData: t.externalData }));
      alias.set(name, a);
    }
    n.input![1] = a;
  }
  g.initializer = inits;
  return onnx.ModelProto.encode(model).finish();
}

/** The providers that could serve `device` here, without loading a model (for --help / inspect). */
export function describeDevices(): Array<{ provider: Provider; installed: boolean; reason?: string }> {
  return (['cpu', 'webgpu', 'cuda', 'tensorrt'] as Provider[]).map((p) => providerStatus(p));
}
