// The library API over a compiled artifact (`blip compile` output): load() reads and checks the
// manifest, loads the tokenizers and opens every ONNX session once; the model then captions,
// answers, follows instructions (generate) or scores image-text pairs (itm, embeddings).
//
//   const model = await load('out/caption', { device: 'cpu' });
//   const [r] = await model.generate(['cat.jpg'], { prompt: 'a picture of', numBeams: 3 });
//   console.log(r.text);
//   await model.close();
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { modelPhrase, readManifest, type Manifest } from '../src/artifact/manifest.js';
import { BlipRuntimeError, GenerationConfigError } from './errors.js';
import { threadsProblem } from './threads.js';
import { unknownOption } from '../src/diagnostics/suggest.js';
import { BlipError } from '../src/diagnostics/BlipError.js';
import { IMAGE_BACKENDS, preprocessFromManifest, type ImageBackend, type PreprocessConfig } from './preprocess/config.js';
import { candidates, parseDevice, providerStatus, type Device, type Provider } from './providers.js';
import { openSession } from './session.js';
import { StagedSession } from './stagedSession.js';
import { externalWeightBytes } from './generation/greedyLoop.js';
import { DeviceRowGather } from './generation/deviceRows.js';
import { loadTokenizer, type HfTokenizer } from './tokenizers/hf.js';
import { GENERATE_OPTIONS, generateForImages, promptStyle, type GenerateOptions, type GenerateResult, type PromptStyle } from './tasks/generate.js';
import { embedImages, embedTexts, itmPairs, type Embedding, type ItmOptions, type ItmResult } from './tasks/retrieval.js';
import type { ImageInput } from './tasks/images.js';
import { describeArgument, listAsCalled, optionsAsCalled } from './tasks/arguments.js';
import { EncodeBuffers } from './tasks/encodeRows.js';

/** Staged decoders run at most this many times (new tokens x beams) open unpacked (see load()). */
export const UNPACKED_DECODER_RUNS = 64;

export type { GenerateOptions, GenerateResult, GeneratedSequence, Timings, PromptStyle, TokenLogprobEntry, TokenLogprobInfo } from './tasks/generate.js';
export type { ItmOptions, ItmResult, Embedding } from './tasks/retrieval.js';
export type { ImageInput, DecodedImage } from './tasks/images.js';

export interface LoadOptions {
  /** cpu (default) | cuda | tensorrt | webgpu | auto. */
  device?: Device | undefined;
  /** Intra-op threads per session (default: one per physical core this process may use, runtime/threads.ts). */
  threads?: number | undefined;
  /** GPU index for cuda / tensorrt. */
  deviceId?: number | undefined;
  /**
   * WebGPU: keep the decoder's KV cache (present.*) on the device between steps instead of
   * downloading and re-uploading it every token (default true; beam search then reorders it on
   * the device). Other providers ignore it.
   */
  kvOnDevice?: boolean | undefined;
  /**
   * CPU, generating models: open each graph only while a call needs it. encode.onnx is opened for a
   * batch's encode and released before decoder.onnx is opened for its decoding (and that one is
   * released when the batch is done), so the image encoder's and the decoder's weights are never
   * resident together: peak memory is the larger stage, not their sum. For one-shot work on one
   * batch (`blip run` with at most --batch-size images); every further batch loads both again,
   * and calls must not overlap. The encoder, run once per opening, and a decoder run at most
   * UNPACKED_DECODER_RUNS times are not prepacked (their weights are read from the mapped
   * weights.bin, not copied first). Ignored on other devices and for retrieval models.
   */
  staged?: boolean | undefined;
  /**
   * CPU: run greedy decoding (one beam, no sampling, no logits processors but minimum lengths)
   * inside decoder.onnx, wrapped in an ONNX Loop at load (runtime/generation/greedyLoop.ts),
   * instead of one session run per token. Same tokens either way. Default: on when the decoder's
   * weights are at most 1.5 x the image encoder's (with `staged`: at most half) — opening a graph
   * with a subgraph keeps its weights' file pages resident until it is ready (twice its weights in
   * RSS for a moment), which must not raise the model's peak RSS much.
   */
  greedyLoop?: boolean | undefined;
  /**
   * Whose image preprocessing to reproduce, bit for bit: 'pil' (default) is transformers' PIL
   * backend (BlipImageProcessorPil; LAVIS, transformers 4, transformers 5 without torchvision or
   * with `backend="pil"`); 'torchvision' is transformers 5's default BlipImageProcessor where
   * torchvision is installed (what `AutoProcessor.from_pretrained(ckpt)` gives there). They differ
   * by one level in a few resized pixels (runtime/preprocess/resizeTorchvision.ts).
   */
  imageBackend?: ImageBackend | undefined;
}

/** load()'s options inside the repository, where a device can come as a name still to check (a --device flag): BLIP5040 when it is none. */
export type LoadOptionsByName = Omit<LoadOptions, 'device'> & { device?: Device | string | undefined };

/** What a compiled model can do: `generate` for caption / VQA / instruction graphs, `itm` and the embeddings for retrieval graphs. */
export interface BlipModel {
  readonly dir: string;
  /** The artifact's manifest.json as load() read it; deeply frozen (a copy to change: structuredClone(model.manifest)). */
  readonly manifest: Manifest;
  /** 'generate' (caption, VQA, instructions) or 'retrieval' (ITM / ITC). */
  readonly kind: 'generate' | 'retrieval';
  /** How the model takes a prompt (generating models). */
  readonly promptStyle?: PromptStyle;
  /** The execution provider each session runs on. */
  readonly providers: Partial<Record<'encode' | 'decoder' | 'retrieval', Provider>>;
  /** One result per image, in order. */
  generate(images: readonly ImageInput[], opts?: GenerateOptions): Promise<GenerateResult[]>;
  /** P(match) and ITC similarity for images[i] with texts[i] (a single image or text pairs with all). */
  itm(images: readonly ImageInput[], texts: readonly string[], opts?: ItmOptions): Promise<ItmResult[]>;
  /** Normalised ITC image embeddings: (E), or (Q, E) for BLIP-2. batchSize and signal alone: there is no text to cut. */
  embedImages(images: readonly ImageInput[], opts?: Pick<ItmOptions, 'batchSize' | 'signal'>): Promise<Embedding[]>;
  /** Normalised ITC text embeddings: (E). */
  embedTexts(texts: readonly string[], opts?: ItmOptions): Promise<Embedding[]>;
  /** Release the sessions. The model cannot be used afterwards. */
  close(): Promise<void>;
}

class Model implements BlipModel {
  readonly kind: 'generate' | 'retrieval';
  readonly promptStyle?: PromptStyle;
  private closed = false;
  private readonly encodeRows: number | undefined;
  /** The last batch's encoder outputs when it was encoded in rows, for the next batch (runtime/tasks/encodeRows.ts). */
  private readonly encodeBuffers = new EncodeBuffers();

  constructor(
    readonly dir: string,
    readonly manifest: Manifest,
    private readonly preprocess: PreprocessConfig,
    private readonly tokenizer: HfTokenizer,
    private readonly qformerTokenizer: HfTokenizer | undefined,
    private readonly sessions: Partial<Record<'encode' | 'decoder' | 'retrieval', ort.InferenceSession | StagedSession>>,
    readonly providers: Partial<Record<'encode' | 'decoder' | 'retrieval', Provider>>,
    private readonly deviceRows: DeviceRowGather | undefined,
  ) {
    this.kind = manifest.graphs.decoder ? 'generate' : 'retrieval';
    // BLIP on the CPU: encode.onnx an image at a time (runtime/tasks/encodeRows.ts). Not for the
    // Q-Former families: an OPT with project_in (soft prompt wider than the token embeddings, as
    // blip2-opt-b) gets transformers' masked_scatter of the flattened batch, so a row's prefix_embeds
    // depend on the rows before it, in transformers as in encode.onnx (test/unit/blip2/batchRows.test.ts;
    // the other BLIP-2 / InstructBLIP fixtures are row-independent bit for bit there), and the
    // manifest does not yet say which case an artifact is.
    this.encodeRows = providers.encode === 'cpu' && manifest.family === 'blip' ? 1 : undefined;
    if (this.kind === 'generate') this.promptStyle = promptStyle(manifest);
  }

  private live(): void {
    if (this.closed) throw new BlipRuntimeError('BLIP5043', `the model in ${this.dir} was closed`);
  }

  private what(): string {
    return `${this.dir} is ${modelPhrase(this.manifest)} (outputs: ${this.manifest.outputs.map((o) => `${o.name}: ${o.task}`).join(', ')})`;
  }

  /** Calls not finished yet: close() waits for them before it releases the sessions they use. */
  private readonly running = new Set<Promise<unknown>>();
  /** A staged model's calls, one after another (each opens and releases the sessions itself); never rejects. */
  private stagedTurn: Promise<unknown> = Promise.resolve();

  private track<T>(work: Promise<T>): Promise<T> {
    this.running.add(work);
    const forget = () => this.running.delete(work);
    work.then(forget, forget);
    return work;
  }

  // (the tasks read the lists, never change them: `readonly` for callers, mutable types inside)
  async generate(imageList: readonly ImageInput[], opts: GenerateOptions = {}): Promise<GenerateResult[]> {
    this.live();
    // the list and the options as they are now: the call reads them later (after its first await;
    // a staged call when its turn comes), and a caller may reuse them for its next call
    const images = listAsCalled(imageList) as ImageInput[];
    opts = optionsAsCalled(opts, GENERATE_OPTIONS);
    if (!(this.sessions.encode instanceof StagedSession)) return this.track(this.generateNow(images, opts));
    // staged: a second call waits for the first to release its sessions
    let started = false;
    const turn = this.stagedTurn.then(() => {
      started = true;
      return this.generateNow(images, opts);
    });
    this.stagedTurn = turn.catch(() => undefined);
    this.track(turn);
    // a call aborted while it waits its turn rejects then (when the turn comes it runs nothing: the
    // task rejects at once); once running it stops at its next decoding step, as a resident call does
    return whileQueued(turn, opts?.signal, () => !started);
  }

  private async generateNow(images: ImageInput[], opts: GenerateOptions): Promise<GenerateResult[]> {
    // (not this.live(): a staged call made before close() waits its turn and then runs, as close() promises)
    const { encode, decoder } = this.sessions;
    if (!encode || !decoder) throw new BlipRuntimeError('BLIP5044', `${this.what()}: it does not generate text; use itm()`);
    const stages =
      encode instanceof StagedSession && decoder instanceof StagedSession
        ? {
            encode: () => encode.open(),
            decode: async (work: { steps: number; beams: number }) => {
              await encode.release();
              await decoder.open({ decoderRuns: work.steps * work.beams });
            },
            done: () => decoder.release(),
          }
        : undefined;
    try {
      return await generateForImages({ manifest: this.manifest, preprocess: this.preprocess, tokenizer: this.tokenizer, qformerTokenizer: this.qformerTokenizer, encode, decoder, deviceRows: this.deviceRows, encodeRows: this.encodeRows, encodeBuffers: this.encodeBuffers, stages }, images, opts);
    } finally {
      // staged: no session stays open between calls, failed ones included (the kept encoder buffers do stay: encodeRows.ts)
      if (stages) await Promise.all([encode.release(), decoder.release()]);
    }
  }

  private retrievalCtx() {
    this.live();
    const retrieval = this.sessions.retrieval;
    if (!retrieval) throw new BlipRuntimeError('BLIP5044', `${this.what()}: it has no ITM / ITC graph; use generate()`);
    return { manifest: this.manifest, preprocess: this.preprocess, tokenizer: this.tokenizer, retrieval };
  }

  async itm(images: readonly ImageInput[], texts: readonly string[], opts: ItmOptions = {}): Promise<ItmResult[]> {
    return this.track(itmPairs(this.retrievalCtx(), images as ImageInput[], texts as string[], opts));
  }

  async embedImages(images: readonly ImageInput[], opts: Pick<ItmOptions, 'batchSize' | 'signal'> = {}): Promise<Embedding[]> {
    return this.track(embedImages(this.retrievalCtx(), images as ImageInput[], opts));
  }

  async embedTexts(texts: readonly string[], opts: ItmOptions = {}): Promise<Embedding[]> {
    return this.track(embedTexts(this.retrievalCtx(), texts as string[], opts));
  }

  /** Set by the first close(): every later close() returns it (it settles when the sessions are released). */
  private closing: Promise<void> | undefined;

  /** Refuses new calls at once, lets the running ones (and a staged model's queued ones) finish, then releases the sessions. */
  close(): Promise<void> {
    this.closed = true;
    return (this.closing ??= (async () => {
      await Promise.allSettled([...this.running]);
      for (const s of Object.values(this.sessions)) await s?.release();
      await this.deviceRows?.close();
      this.encodeBuffers.clear();
    })());
  }
}

/**
 * The staged calls waiting on each signal, and the one 'abort' listener that rejects those still queued:
 * one listener a signal however many calls share it (Node warns of a leak past 10 listeners on an
 * AbortSignal), removed when the last of its calls settles.
 */
const queuedOnSignal = new Map<AbortSignal, { calls: Set<() => void>; listener: () => void }>();

/** `work`, or the abort of `signal` while `queued()` (a call made with a signal already aborted rejects at once). */
function whileQueued<T>(work: Promise<T>, signal: unknown, queued: () => boolean): Promise<T> {
  if (!(signal instanceof AbortSignal)) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      if (queued()) reject(signal.reason);
    };
    if (signal.aborted) return onAbort();
    let waiting = queuedOnSignal.get(signal);
    if (!waiting) {
      const calls = new Set<() => void>();
      waiting = { calls, listener: () => [...calls].forEach((call) => call()) };
      queuedOnSignal.set(signal, waiting);
      signal.addEventListener('abort', waiting.listener, { once: true });
    }
    const { calls, listener } = waiting;
    calls.add(onAbort);
    const done = () => {
      calls.delete(onAbort);
      if (calls.size > 0) return;
      signal.removeEventListener('abort', listener);
      queuedOnSignal.delete(signal);
    };
    work.then(
      (v) => (done(), resolve(v)),
      (e: unknown) => (done(), reject(e)),
    );
  });
}

/** `v` and everything it holds, frozen: a model's manifest is read-only (its defaults must not change under later calls). */
function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** The weight bytes a graph file of the artifact reads from weights.bin. */
function graphWeightBytes(dir: string, file: string): number {
  try {
    return externalWeightBytes(new Uint8Array(readFileSync(join(dir, file))));
  } catch {
    return 0; // a missing file is reported when its session is opened
  }
}

/** Every key LoadOptions has (checked at run time for JavaScript callers). */
const LOAD_OPTIONS: Array<keyof LoadOptions> = ['device', 'threads', 'deviceId', 'kvOnDevice', 'staged', 'greedyLoop', 'imageBackend'];

/** load()'s options as JavaScript callers may pass them: BLIP5030, as the methods' options. */
function checkLoadOptions(opts: unknown): asserts opts is LoadOptionsByName {
  if (typeof opts !== 'object' || Array.isArray(opts)) throw new GenerationConfigError(`load() options must be an object, found ${describeArgument(opts)}`);
  const o = opts as Record<string, unknown>;
  const unknown = unknownOption(o, LOAD_OPTIONS, 'load option');
  if (unknown) throw new GenerationConfigError(unknown);
  const bad = (name: string, want: string) => new GenerationConfigError(`load option ${name} must be ${want}, found ${describeArgument(o[name])}`);
  if (o.device !== undefined && typeof o.device !== 'string') throw bad('device', 'a string (cpu, cuda, tensorrt, webgpu or auto)');
  if (o.threads !== undefined) {
    if (typeof o.threads !== 'number') throw bad('threads', 'a number');
    const why = threadsProblem(o.threads);
    if (why) throw new GenerationConfigError(`load option threads ${why}`);
  }
  if (o.deviceId !== undefined && !(typeof o.deviceId === 'number' && Number.isInteger(o.deviceId) && o.deviceId >= 0)) throw bad('deviceId', 'a non-negative integer');
  for (const name of ['kvOnDevice', 'staged', 'greedyLoop']) if (o[name] !== undefined && typeof o[name] !== 'boolean') throw bad(name, 'true or false');
  if (o.imageBackend !== undefined && !IMAGE_BACKENDS.includes(o.imageBackend as ImageBackend)) throw bad('imageBackend', '"pil" or "torchvision"');
}

/**
 * Load a compiled model directory. Refuses a directory without a manifest (BLIP5001), an invalid
 * one (BLIP5002), one written by another artifact format version (BLIP5003) or with missing files
 * (BLIP5004); an unknown or unusable device is BLIP504x.
 */
export async function load(dir: string, opts: LoadOptionsByName | null = {}): Promise<BlipModel> {
  if (typeof dir !== 'string' || dir === '') throw new BlipError('BLIP5001', `load() takes the compiled model's directory as a string, found ${dir === '' ? 'an empty string' : describeArgument(dir)}`);
  opts ??= {};
  checkLoadOptions(opts);
  const manifest = deepFreeze(readManifest(dir));
  // before any session is opened (one opened and then refused would be left to the garbage collector)
  if (manifest.graphs.decoder && !manifest.graphs.encode) throw new BlipRuntimeError('BLIP5044', `${dir}: decoder.onnx without encode.onnx; recompile the model`);
  if (!manifest.graphs.decoder && !manifest.graphs.retrieval) throw new BlipRuntimeError('BLIP5044', `${dir}: neither decoder.onnx nor retrieval.onnx; recompile the model`);
  const preprocess = { ...preprocessFromManifest(manifest.preprocess, `${join(dir, 'manifest.json')} preprocess`), backend: opts.imageBackend ?? 'pil' };
  if (!manifest.tokenizer) throw new BlipRuntimeError('BLIP5020', `${dir}: the manifest names no tokenizer; recompile the model`);
  const tokenizer = loadTokenizer(join(dir, manifest.tokenizer.dir));
  const qformerTokenizer = manifest.qformer_tokenizer ? loadTokenizer(join(dir, manifest.qformer_tokenizer.dir)) : undefined;
  const sessions: Partial<Record<'encode' | 'decoder' | 'retrieval', ort.InferenceSession | StagedSession>> = {};
  const providers: Partial<Record<'encode' | 'decoder' | 'retrieval', Provider>> = {};
  const asked = typeof opts.device === 'string' ? parseDevice(opts.device) : (opts.device ?? 'cpu');
  // `auto` where no GPU provider could start (none installed, or no GPU visible) is the CPU, staged as such
  const build = { target: manifest.target, dtype: manifest.dtype };
  const device = asked === 'auto' && candidates(asked, build).every((p) => p === 'cpu' || !providerStatus(p).installed) ? 'cpu' : asked;
  if (opts.staged && device === 'cpu' && manifest.graphs.decoder && manifest.graphs.encode) {
    // The greedy Loop only where opening it stays under the encode stage: opening a graph with a
    // subgraph keeps the decoder's weights.bin pages resident until it is ready (twice its weights
    // in RSS for a moment, see below), which for BLIP-base (decoder 1.24 x the encoder) would undo
    // what staging saves; behind a ViT-g a small LLM's doubled moment is still the smaller stage.
    const stagedLoop = opts.greedyLoop ?? 2 * graphWeightBytes(dir, manifest.graphs.decoder.file) <= graphWeightBytes(dir, manifest.graphs.encode.file);
    for (const name of ['encode', 'decoder'] as const) {
      const g = manifest.graphs[name]!;
      // Prepacking copies every weight into onnxruntime's packed layout at load, which pays off over
      // many runs. The staged encoder runs once per opening and a short generation runs the
      // decoder a few dozen times: unpacked, their kernels read the weights where weights.bin is
      // mapped (packing per call, or the one-row kernel) and the pages go with the mapping. On
      // the 2-core VM (docs/performance.md), prepacking took 3.4 s for a 1.3 GB decoder and 16-24 s
      // for ViT-g, while unpacked steps cost 0-15 ms more (greedy) and 80 ms with 3 beams: below
      // UNPACKED_DECODER_RUNS decoder runs the unpacked decoder is ahead in every case measured.
      // Unpacked there is also less for the C heap to keep after the encoder (BLIP-base with 8
      // images peaked at 1.22-1.27 x the weights instead of 1.22 or 1.51, run to run).
      sessions[name] = new StagedSession(g, (hint) =>
        openSession(join(dir, g.file), {
          device,
          build,
          threads: opts.threads,
          greedyLoop: name === 'decoder' && stagedLoop,
          prepack: name === 'decoder' && (hint.decoderRuns === undefined || hint.decoderRuns > UNPACKED_DECODER_RUNS),
        }),
      );
      providers[name] = 'cpu';
    }
    return new Model(dir, manifest, preprocess, tokenizer, qformerTokenizer, sessions, providers, undefined);
  }
  // The greedy Loop (greedyLoop.ts) by default only where its cost at load stays near the loaded
  // model's size: while onnxruntime prepacks the weights of a graph with a subgraph it keeps every
  // one of their weights.bin mappings paged in until the end (page cache, reclaimable: the anonymous
  // memory is the plain step's), so opening the decoder (first) peaks at twice its weights in RSS,
  // against decoder + encoder once loaded. Allowed up to a decoder 1.5 x the encoder (BLIP-base 1.24: its peak did not rise,
  // docs/performance.md; BLIP-2 / InstructBLIP with small LLMs 0.2-0.3), not for large LLMs behind
  // the ViT (OPT-2.7b: 2.6).
  const greedyLoop =
    opts.greedyLoop ?? (manifest.graphs.decoder && manifest.graphs.encode ? graphWeightBytes(dir, manifest.graphs.decoder.file) <= 1.5 * graphWeightBytes(dir, manifest.graphs.encode.file) : false);
  try {
    // The decoder first: while it loads, its tied LM head is resident twice for a moment (mapped
    // for prepacking, and prepacked); that moment then comes before the encoder's weights are in.
    for (const name of ['decoder', 'encode', 'retrieval'] as const) {
      const g = manifest.graphs[name];
      if (!g) continue;
      // present.* stay on the device (WebGPU only: openSession applies this to that provider alone)
      const preferredOutputLocation =
        name === 'decoder' && opts.kvOnDevice !== false ? Object.fromEntries(g.outputs.filter((o) => o.name.startsWith('present.')).map((o) => [o.name, 'gpu-buffer' as const])) : undefined;
      const s = await openSession(join(dir, g.file), { device: opts.device, build, threads: opts.threads, deviceId: opts.deviceId, preferredOutputLocation, greedyLoop: name === 'decoder' && greedyLoop });
      sessions[name] = s.session;
      providers[name] = s.provider;
    }
  } catch (e) {
    for (const s of Object.values(sessions)) await s?.release().catch(() => undefined);
    throw e;
  }
  const kvOnDevice = providers.decoder === 'webgpu' && opts.kvOnDevice !== false;
  return new Model(dir, manifest, preprocess, tokenizer, qformerTokenizer, sessions, providers, kvOnDevice ? new DeviceRowGather() : undefined);
}
