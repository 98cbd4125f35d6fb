// encode.onnx over an image batch a few rows at a time, and the hand-back of its outputs' memory
// once a batch is generated (docs/performance.md, "Against the targets": peak RSS).
//
// The image encoder's activations grow with the batch (ViT-B/16 at 384 px: the attention scores
// alone are 12 x 577^2 floats per image), and onnxruntime-node copies every output into a new
// JavaScript buffer, so the outputs are briefly held twice. Run a row at a time, the activations and
// the doubled outputs are one row's; the rows are copied into one batch-major buffer per output.
// Every row's arithmetic is the same either way (the kernels work row by row or (row, head) by
// (row, head)): the outputs are identical bit for bit (test/unit/tasks/encodeRows.test.ts).
//
// The batch-major buffers are kept for the next batch of the same size (EncodeBuffers) rather than
// made afresh: a new buffer of several MB is a fresh mapping whose every page is faulted in (and,
// with huge pages asked for, compacted for) as the rows are copied into it — BLIP-base at batch 8,
// 340 MB of cross-attention keys and values, 10–136 ms a row on the 2-core VM against ~10 ms for
// the copy alone into buffers already touched (docs/performance.md).
import * as ort from 'onnxruntime-node';
import { BlipRuntimeError } from '../errors.js';

export interface EncodeSession {
  run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>>;
}

type Typed = { length: number; buffer: ArrayBufferLike; byteOffset: number; byteLength: number; subarray(a: number, b: number): Typed; set(a: Typed, o: number): void; constructor: new (n: number) => Typed };

/** Rows [a, b) of a batch-major CPU tensor, as a view. */
function rows(t: ort.Tensor, a: number, b: number): ort.Tensor {
  const n = t.dims[0];
  const data = t.data as unknown as Typed;
  const per = n === 0 ? 0 : data.length / n;
  return new ort.Tensor(t.type as 'float32', data.subarray(a * per, b * per) as unknown as Float32Array, [b - a, ...t.dims.slice(1)]);
}

/**
 * Run `session` on `feeds` (every feed batch-major with `batch` rows) `rowsPerRun` rows at a time
 * and return the outputs for the whole batch, as one run would. Every output must be batch-major.
 */
export async function encodeInRows(session: EncodeSession, feeds: Record<string, ort.Tensor>, batch: number, rowsPerRun: number, buffers?: EncodeBuffers): Promise<Record<string, ort.Tensor>> {
  if (!inRows(batch, rowsPerRun)) return session.run(feeds);
  for (const [k, t] of Object.entries(feeds)) {
    if (t.dims[0] !== batch || Array.isArray(t.data) || (t.location !== 'cpu' && t.location !== undefined)) {
      throw new BlipRuntimeError('BLIP5031', `encode.onnx input ${k} is not a batch-major CPU tensor of ${batch} rows`);
    }
  }
  let out: Record<string, ort.Tensor> | undefined;
  for (let a = 0; a < batch; a += rowsPerRun) {
    const b = Math.min(batch, a + rowsPerRun);
    const part = await session.run(Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, rows(t, a, b)])));
    if (!out) {
      out = {};
      for (const [k, t] of Object.entries(part)) {
        if (t.dims[0] !== b - a || Array.isArray(t.data) || (t.location !== 'cpu' && t.location !== undefined)) {
          throw new BlipRuntimeError('BLIP5044', `encode.onnx output ${k} (${t.dims.join(' x ')}) is not batch-major over ${b - a} rows`);
        }
        const data = t.data as unknown as Typed;
        const length = (data.length / (b - a)) * batch;
        // (every row of it is written below: a kept buffer's old contents never show)
        const whole = buffers?.take(k, data.constructor, length) ?? new data.constructor(length);
        out[k] = new ort.Tensor(t.type as 'float32', whole as unknown as Float32Array, [batch, ...t.dims.slice(1)]);
      }
    }
    for (const [k, t] of Object.entries(part)) {
      const whole = out[k];
      const per = whole ? (whole.data as unknown as Typed).length / batch : 0;
      const data = t.data as unknown as Typed;
      if (!whole || data.length !== per * (b - a)) throw new BlipRuntimeError('BLIP5044', `encode.onnx output ${k} changed shape between rows`);
      (whole.data as unknown as Typed).set(data, a * per);
    }
    release(part);
  }
  return out!;
}

/** Whether encodeInRows runs `batch` rows in parts (and assembles its outputs) rather than at once. */
function inRows(batch: number, rowsPerRun: number): boolean {
  return rowsPerRun >= 1 && rowsPerRun < batch;
}

/**
 * encodeInRows' outputs once nothing reads them: the buffers it assembled go to `buffers` for the
 * next batch, the binding's own (a batch run at once) are released.
 */
export function doneWith(outputs: Record<string, ort.Tensor>, batch: number, rowsPerRun: number, buffers?: EncodeBuffers): void {
  if (buffers && inRows(batch, rowsPerRun)) buffers.keep(outputs);
  else release(outputs);
}

/**
 * encodeInRows' batch-major output buffers, kept from one batch to the next: at most one per output
 * name (the latest given), taken out while a batch uses it, so two batches running at once never
 * share one. One that does not fit the batch asking (another size or type) is handed back then, so
 * a batch never runs beside a kept set it cannot use; one replaced, or dropped by clear(), too.
 */
export class EncodeBuffers {
  private readonly kept = new Map<string, Typed>();

  /** A kept buffer for output `name` of exactly `length` elements of `type`, removed from the pool. */
  take(name: string, type: new (length: number) => ArrayBufferView, length: number): Typed | undefined {
    const b = this.kept.get(name);
    if (!b) return undefined;
    this.kept.delete(name);
    if (b.constructor === type && b.length === length) return b;
    handBack([b]);
    return undefined;
  }

  /** Keep the buffers of a batch's outputs (whole CPU typed arrays only) for the next batch. */
  keep(tensors: Record<string, ort.Tensor>): void {
    for (const [name, t] of Object.entries(tensors)) {
      if ((t.location !== 'cpu' && t.location !== undefined) || Array.isArray(t.data)) continue;
      const d = t.data as unknown as Typed;
      if (!whole(d)) continue;
      const before = this.kept.get(name);
      if (before && before.buffer !== d.buffer) handBack([before]);
      this.kept.set(name, d);
    }
  }

  /** Bytes kept. */
  get bytes(): number {
    let n = 0;
    for (const b of this.kept.values()) n += b.byteLength;
    return n;
  }

  /** Hand back every kept buffer (the model is closed). */
  clear(): void {
    handBack([...this.kept.values()]);
    this.kept.clear();
  }
}

/** Whether a typed array spans a whole ArrayBuffer of its own (not a view, not empty). */
function whole(d: Typed): boolean {
  return d.buffer instanceof ArrayBuffer && d.byteOffset === 0 && d.byteLength === d.buffer.byteLength && d.byteLength > 0;
}

/** Give the memory of whole typed arrays back at once: see release(). */
function handBack(arrays: Typed[]): void {
  const buffers = [...new Set(arrays.filter(whole).map((d) => d.buffer as ArrayBuffer))];
  if (!buffers.length) return;
  try {
    structuredClone(buffers, { transfer: buffers });
  } catch {
    // not transferable (an external buffer): left to the garbage collector
  }
}

/**
 * Hand back the memory of CPU tensors that nothing will read again: their ArrayBuffers are
 * transferred to a clone that is dropped at once (the typed arrays are left empty). Buffers the
 * binding made for outputs would otherwise wait for a full garbage collection (they outlive many
 * young-generation collections while the decoder runs), and a process generating again in the
 * meantime holds both. Only whole, unshared ArrayBuffers are handed back.
 */
export function release(tensors: Record<string, ort.Tensor>): void {
  const arrays: Typed[] = [];
  for (const t of Object.values(tensors)) {
    if ((t.location !== 'cpu' && t.location !== undefined) || Array.isArray(t.data)) continue;
    arrays.push(t.data as unknown as Typed);
  }
  handBack(arrays);
}
