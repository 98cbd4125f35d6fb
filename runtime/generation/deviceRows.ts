// Batch-row gathers of tensors that stay on the WebGPU device (the KV cache with
// preferredOutputLocation 'gpu-buffer'): onnxruntime-node 1.30 cannot download a gpu-buffer tensor
// (notes: onnxruntime-node-1.30.md §4.3), so beam search cannot reorder such a cache on the host.
// Instead one small graph — y_i = Gather(x_i, rows, axis 0) for every cache tensor at once — runs on
// the same device (onnxruntime-node's WebGPU sessions share one device), its outputs kept there.
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { BlipRuntimeError, oneLine } from '../errors.js';

const { onnx } = onnxProto;

/** One Gather along axis 0 per float32 input, `n` inputs of rank `rank`, indices int64 (R). */
export function rowGatherModel(n: number, rank: number): Uint8Array {
  const dims = (p: string) => Array.from({ length: rank }, (_, i) => ({ dimParam: `${p}${i}` }));
  const f32 = (name: string, p: string) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims(p) } } } });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'blip-graph',
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'row_gather',
      node: Array.from({ length: n }, (_, i) => ({ opType: 'Gather', input: [`x${i}`, 'rows'], output: [`y${i}`], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] })),
      input: [
        ...Array.from({ length: n }, (_, i) => f32(`x${i}`, `x${i}_`)),
        { name: 'rows', type: { tensorType: { elemType: onnx.TensorProto.DataType.INT64, shape: { dim: [{ dimParam: 'r' }] } } } },
      ],
      output: Array.from({ length: n }, (_, i) => f32(`y${i}`, `y${i}_`)),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Gathers rows of device-resident tensors on the device; opens its session on first use. */
export class DeviceRowGather {
  private sessions = new Map<string, Promise<ort.InferenceSession>>();

  private session(n: number, rank: number): Promise<ort.InferenceSession> {
    const key = `${n}x${rank}`;
    let s = this.sessions.get(key);
    if (!s) {
      s = ort.InferenceSession.create(rowGatherModel(n, rank), {
        executionProviders: ['webgpu'],
        logSeverityLevel: 3,
        preferredOutputLocation: 'gpu-buffer',
      });
      this.sessions.set(key, s);
    }
    return s;
  }

  /** Row i of each result is row rows[i] of the same-named input; the results live on the device. */
  async gather(tensors: Record<string, ort.Tensor>, rows: number[]): Promise<Record<string, ort.Tensor>> {
    const names = Object.keys(tensors);
    if (names.length === 0) return {};
    const rank = tensors[names[0]].dims.length;
    for (const k of names) {
      const t = tensors[k];
      if (t.type !== 'float32' || t.dims.length !== rank) throw new BlipRuntimeError('BLIP5043', `device row gather: ${k} is ${t.type} of rank ${t.dims.length}, float32 of rank ${rank} expected`);
      for (const r of rows) if (!Number.isInteger(r) || r < 0 || r >= t.dims[0]) throw new BlipRuntimeError('BLIP5031', `reorder: row ${r} of ${t.dims[0]}`);
    }
    let s: ort.InferenceSession;
    try {
      s = await this.session(names.length, rank);
    } catch (e) {
      throw new BlipRuntimeError('BLIP5043', `device row gather: cannot open its WebGPU session (${oneLine(e)})`);
    }
    const feeds: Record<string, ort.Tensor> = { rows: new ort.Tensor('int64', BigInt64Array.from(rows, BigInt), [rows.length]) };
    names.forEach((k, i) => (feeds[`x${i}`] = tensors[k]));
    const out = await s.run(feeds);
    return Object.fromEntries(names.map((k, i) => [k, out[`y${i}`] as ort.Tensor]));
  }

  async close(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s.catch(() => undefined))?.release();
  }
}
