// Collects the checkpoint-backed initializers of every graph of one compiled artifact and streams
// their bytes into one external-data file, one tensor at a time, so that peak memory stays near the
// largest tensor (plus its transformed copy) and a weight shared by two graphs is written once.
import { openSync, writeSync, closeSync } from 'node:fs';
import { float32ToFloat16 } from '../weights/float16.js';
import { Scratch } from '../weights/Scratch.js';
import { yieldToEventLoop } from './partialOutput.js';

export type WeightData = Float32Array | BigInt64Array | Int32Array | Uint8Array;

export interface WeightSpec {
  /** Initializer name: the checkpoint key, or `<key>:<transform>` for a derived view. */
  key: string;
  /** ONNX shape of the produced tensor. */
  dims: number[];
  /** Element type of the produced data (floats follow the store's float type unless `storeAs`). */
  dtype?: 'float32' | 'int64' | 'int32' | 'uint8';
  /** A float weight of a float16 store that stays float32 (lowered in a float32 module). */
  storeAs?: 'float32';
  /**
   * Produces the tensor's data (called once, while streaming). Arrays that live only until the
   * tensor is written may come from `scratch` (reused for the next tensor); a producer called
   * without one allocates.
   */
  produce: (scratch?: Scratch) => WeightData | Promise<WeightData>;
  /** Where it came from, for error messages ("node vision at graphs/x.blip:3:3"). */
  origin?: string;
}

export interface StoredWeight {
  spec: WeightSpec;
  /** Stored element type: float tensors follow the store's float type. */
  dataType: 'float32' | 'float16' | 'int64' | 'int32' | 'uint8';
  offset: number;
  length: number;
}

const ALIGN = 64;

export class WeightStore {
  private readonly specs = new Map<string, WeightSpec>();
  private readonly stored = new Map<string, StoredWeight>();
  /** A float-type copy's initializer name -> the one it copies (`define`). */
  private readonly copies = new Map<string, string>();
  /** Weights stored as float16 with finite values beyond its range (±65504), which became infinite, and how many. */
  readonly halfOverflow = new Map<string, number>();

  constructor(readonly floatType: 'float32' | 'float16' = 'float32') {}

  /**
   * Define a weight and return the name of its initializer: `spec.key`, or, when that key is already
   * defined with the other float storage (a float16 store where one node keeps the tensor float32, as
   * BLIP-2's Q-Former does, and another reads it float16), `<key>:float16` / `<key>:float32`: one
   * copy per storage type, each rounded once from the checkpoint, rather than a float16 copy cast up
   * for the float32 reader (which would lose what keeping it float32 is for).
   */
  define(spec: WeightSpec): string {
    const prev = this.specs.get(spec.key);
    if (!prev) {
      this.specs.set(spec.key, spec);
      return spec.key;
    }
    if (prev.dims.join(',') !== spec.dims.join(',')) {
      throw new Error(`weight ${spec.key} requested with shapes [${prev.dims}] and [${spec.dims}]`);
    }
    if (this.halves(prev) === this.halves(spec)) return spec.key;
    const copy = `${spec.key}:${this.halves(spec) ? 'float16' : 'float32'}`;
    this.copies.set(copy, spec.key);
    return this.define({ ...spec, key: copy });
  }

  has(key: string): boolean {
    return this.specs.has(key);
  }

  /** The spec of a defined weight (its shape, for graph rewrites that transform it). */
  spec(key: string): WeightSpec | undefined {
    return this.specs.get(key);
  }

  get keys(): string[] {
    return [...this.specs.keys()];
  }

  /** Parameter count of everything defined. */
  get parameterCount(): number {
    return this.parameters(this.specs.keys());
  }

  /** Parameter count of the named initializers, a float-type copy counted with the tensor it copies (once). */
  parameters(names: Iterable<string>): number {
    let n = 0;
    for (const name of new Set([...names].map((k) => this.copies.get(k) ?? k))) n += this.specs.get(name)!.dims.reduce((a, b) => a * b, 1);
    return n;
  }

  /** Where a weight went in the data file (after `writeAll`). */
  location(key: string): StoredWeight {
    const w = this.stored.get(key);
    if (!w) throw new Error(`weight ${key} has not been written`);
    return w;
  }

  /** The element type a defined weight is stored as (floats follow the store's float type unless `storeAs`). */
  storedType(key: string): StoredWeight['dataType'] | undefined {
    const spec = this.specs.get(key);
    if (!spec) return undefined;
    const dtype = spec.dtype ?? 'float32';
    return dtype === 'float32' && this.halves(spec) ? 'float16' : dtype;
  }

  /** Whether a float weight is stored as float16. */
  private halves(spec: WeightSpec): boolean {
    return this.floatType === 'float16' && spec.storeAs !== 'float32';
  }

  /** Bytes one weight takes in the data file. */
  storedBytes(spec: WeightSpec): number {
    const count = spec.dims.reduce((a, b) => a * b, 1);
    const dtype = spec.dtype ?? 'float32';
    const size = dtype === 'float32' ? (this.halves(spec) ? 2 : 4) : dtype === 'int64' ? 8 : dtype === 'int32' ? 4 : 1;
    return count * size;
  }

  /**
   * Stream every defined weight into `path`, in definition order. `only` restricts to the weights a
   * set of graphs actually references (dead weights are not written). `onProgress` sees the bytes
   * written so far and in all, and the tensor just written.
   */
  async writeAll(path: string, only?: Set<string>, onProgress?: (done: number, total: number, key: string) => void, signal?: AbortSignal): Promise<number> {
    const fd = openSync(path, 'w');
    let offset = 0;
    const todo = [...this.specs.values()].filter((s) => !only || only.has(s.key));
    const total = todo.reduce((a, s) => a + this.storedBytes(s), 0);
    const scratch = new Scratch();
    try {
      let done = 0;
      for (const spec of todo) {
        if (signal) {
          await yieldToEventLoop(); // producing a tensor is synchronous work: let a signal's handler run
          signal.throwIfAborted();
        }
        const data = await spec.produce(scratch);
        const count = spec.dims.reduce((a, b) => a * b, 1);
        if (data.length !== count) {
          throw new Error(`weight ${spec.key}: produced ${data.length} values for shape [${spec.dims}] (${count} expected)`);
        }
        let bytes: Uint8Array;
        let dataType: StoredWeight['dataType'];
        if (data instanceof Float32Array) {
          if (this.halves(spec)) {
            const h = float32ToFloat16(data, scratch.uint16(data.length));
            const overflow = halfOverflow(data, h);
            if (overflow) this.halfOverflow.set(spec.key.replace(/:.*$/, ''), overflow);
            bytes = new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
            dataType = 'float16';
          } else {
            bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
            dataType = 'float32';
          }
        } else {
          bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
          dataType = data instanceof BigInt64Array ? 'int64' : data instanceof Int32Array ? 'int32' : 'uint8';
        }
        const pad = (ALIGN - (offset % ALIGN)) % ALIGN;
        if (pad) writeSync(fd, new Uint8Array(pad), 0, pad, offset);
        offset += pad;
        let written = 0;
        while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written, offset + written);
        this.stored.set(spec.key, { spec, dataType, offset, length: bytes.length });
        offset += bytes.length;
        done += bytes.length;
        scratch.reset(); // the tensor is written: its arrays are dead
        onProgress?.(done, total, spec.key);
      }
    } finally {
      closeSync(fd);
    }
    return offset;
  }
}

/** How many finite float32 values became infinite halves (a float32 infinity stays one and is not counted). */
function halfOverflow(data: Float32Array, h: Uint16Array): number {
  let infinite = 0;
  for (let i = 0; i < h.length; i++) if ((h[i]! & 0x7fff) === 0x7c00) infinite++;
  if (!infinite) return 0;
  for (let i = 0; i < data.length; i++) if (data[i] === Infinity || data[i] === -Infinity) infinite--;
  return infinite;
}
