// ONNX Runtime sessions for an artifact's graphs, on the requested device.
import { existsSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { DeviceError, firstLine } from './errors.js';
import { candidates, executionProviders, parseDevice, providerFailure, providerStatus, type Device, type Provider } from './providers.js';

export interface SessionOptions {
  /** cpu | cuda | tensorrt | webgpu | auto (default cpu). */
  device?: Device | string;
  /** Intra-op threads (ORT's default: one per physical core). */
  threads?: number;
  deviceId?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** ORT log level: 0 verbose .. 4 fatal (default 3, errors only). */
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  /** Keep named outputs on the GPU (WebGPU only; e.g. present.* for the KV cache). */
  preferredOutputLocation?: Record<string, 'cpu' | 'gpu-buffer'>;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  /** The provider the session runs on. */
  provider: Provider;
  /** Providers tried before it that failed (auto only), with the reason. */
  fallbacks: Array<{ provider: Provider; reason: string }>;
}

function baseOptions(o: SessionOptions): ort.InferenceSession.SessionOptions {
  const opts: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: o.graphOptimizationLevel ?? 'all',
    logSeverityLevel: o.logSeverityLevel ?? 3,
  };
  if (o.threads !== undefined) {
    if (!Number.isInteger(o.threads) || o.threads < 1) throw new DeviceError('BLIP5043', `threads must be a positive integer, found ${o.threads}`);
    opts.intraOpNumThreads = o.threads;
  }
  return opts;
}

/** Create a session for `modelPath` on the device; `auto` falls back silently to CPU. */
export async function openSession(modelPath: string, o: SessionOptions = {}): Promise<OpenedSession> {
  const device = typeof o.device === 'string' ? parseDevice(o.device) : (o.device ?? 'cpu');
  if (!existsSync(modelPath)) throw new DeviceError('BLIP5043', `cannot open ${modelPath}: no such file`);
  const fallbacks: OpenedSession['fallbacks'] = [];
  const tries = candidates(device);
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
      const session = await ort.InferenceSession.create(modelPath, opts);
      return { session, provider: p, fallbacks };
    } catch (e) {
      if (p === 'cpu') throw new DeviceError('BLIP5043', `cannot load ${modelPath} (${firstLine(e)})`);
      const err = providerFailure(p, e);
      if (device !== 'auto' || last) throw err;
      fallbacks.push({ provider: p, reason: err.message });
    }
  }
  throw new DeviceError('BLIP5042', `device ${device}: no provider could be started`);
}

/** The providers that could serve `device` here, without loading a model (for --help / inspect). */
export function describeDevices(): Array<{ provider: Provider; installed: boolean; reason?: string }> {
  return (['cpu', 'webgpu', 'cuda', 'tensorrt'] as Provider[]).map((p) => providerStatus(p));
}
