// Shared by the BLIP-2 / InstructBLIP lowering tests: read a fixture's expected tensors, build graphs
// with GraphBuilder + WeightStore, run them with onnxruntime-node, compare within a tolerance
// relative to the reference's scale.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../../src/lower/GraphBuilder.js';
import { WeightStore } from '../../../src/lower/WeightStore.js';
import { encodeModel, toModelProto } from '../../../src/lower/emitOnnx.js';
import { SafetensorsFile, toFloat32 } from '../../../src/weights/safetensors.js';
import type { Checkpoint } from '../../../src/weights/checkpoint.js';
import type { DecoderFacts, LowerContext, ParamOptions, StepInputs, StepOutputs } from '../../../src/lower/contract.js';
import { floatInput, floatOutput, transpose2d } from '../../../src/lower/transformer.js';
import { keepFloat32Names, keptFloat32 } from '../../../src/lower/keepFloat32.js';
import type { Attrs, NodeKind } from '../../../src/nodes/NodeKind.js';

export const DEBUG = 'test/fixtures/debug';

/** A tensor from a fixture: float data as Float32Array, integer data as BigInt64Array. */
export interface Tensor {
  dims: number[];
  data: Float32Array | BigInt64Array;
}

export function readTensors(path: string): Map<string, Tensor> {
  const f = SafetensorsFile.open(path);
  const out = new Map<string, Tensor>();
  try {
    for (const [name, info] of f.tensors) {
      const raw = f.readRaw(name);
      if (info.dtype === 'I64') {
        const copy = new Uint8Array(raw); // aligned copy
        out.set(name, { dims: info.shape, data: new BigInt64Array(copy.buffer, 0, copy.byteLength / 8) });
      } else out.set(name, { dims: info.shape, data: toFloat32(raw, info.dtype) });
    }
  } finally {
    f.close();
  }
  return out;
}

export function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

export function toOrt(t: Tensor): ort.Tensor {
  return t.data instanceof BigInt64Array ? new ort.Tensor('int64', t.data, t.dims) : new ort.Tensor('float32', t.data, t.dims);
}

export function int64(values: number[][]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(values.flat().map(BigInt)), [values.length, values[0].length]);
}

/** Graphs sharing one WeightStore, written to a temporary directory and opened as sessions. */
export class Built {
  private constructor(
    readonly dir: string,
    readonly sessions: Map<string, ort.InferenceSession>,
  ) {}

  static async from(store: WeightStore, graphs: GraphBuilder[]): Promise<Built> {
    const dir = mkdtempSync(join(tmpdir(), 'blip2-'));
    await store.writeAll(join(dir, 'weights.bin'));
    const sessions = new Map<string, ort.InferenceSession>();
    for (const g of graphs) {
      const path = join(dir, `${g.name}.onnx`);
      writeFileSync(path, encodeModel(toModelProto(g, store, { dataFile: 'weights.bin', producerVersion: 'test' })));
      sessions.set(g.name, await ort.InferenceSession.create(path, { graphOptimizationLevel: 'disabled' }));
    }
    return new Built(dir, sessions);
  }

  async run(graph: string, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    const s = this.sessions.get(graph);
    if (!s) throw new Error(`no graph ${graph}`);
    return s.run(feeds) as Promise<Record<string, ort.Tensor>>;
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) await s.release();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** max |a - e| / max(max |e|, 1e-6) over the whole tensor. */
export function relDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length, `length ${actual.length} != expected ${expected.length}`);
  let diff = 0;
  let scale = 1e-6;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / scale;
}

export const TOLERANCE = 1e-4;

/** Asserts closeness relative to scale; returns the measured relative difference. */
export function assertClose(actual: ort.Tensor | Float32Array, expected: Tensor | Float32Array, what: string, tol = TOLERANCE): number {
  const a = actual instanceof Float32Array ? actual : (actual.data as Float32Array);
  const e = expected instanceof Float32Array ? expected : (expected.data as Float32Array);
  if (!(actual instanceof Float32Array) && !(expected instanceof Float32Array)) {
    assert.deepEqual([...actual.dims], expected.dims, `${what}: shape`);
  }
  const d = relDiff(a, e);
  assert.ok(d <= tol, `${what}: relative difference ${d.toExponential(2)} exceeds ${tol}`);
  return d;
}

/** Rows [start, end) of axis 1 of a (B, T, ...) tensor, as a (B, end - start, ...) Float32Array. */
export function sliceAxis1(t: Tensor, start: number, end: number): Float32Array {
  const [B, T] = t.dims;
  const inner = t.dims.slice(2).reduce((a, d) => a * d, 1);
  const out = new Float32Array(B * (end - start) * inner);
  const src = t.data as Float32Array;
  for (let b = 0; b < B; b++) out.set(src.subarray((b * T + start) * inner, (b * T + end) * inner), b * (end - start) * inner);
  return out;
}

/**
 * A LowerContext over a checkpoint for lowering one node outside the compile driver (the driver's
 * own context does the same, plus coverage and problem collection): names relative to `prefix`,
 * `../` for tensors beside it, shapes checked.
 */
export function contextFor(b: GraphBuilder, ck: Checkpoint, prefix: string, attrs: Attrs, ports: string[] = []): LowerContext {
  const key = (name: string) => {
    let base = prefix;
    let n = name;
    while (n.startsWith('../')) {
      base = base.includes('.') ? base.slice(0, base.lastIndexOf('.')) : '';
      n = n.slice(3);
    }
    return base && n ? `${base}.${n}` : base || n;
  };
  const attr = <T>(a: string, type: string): T => {
    assert.equal(typeof attrs[a], type, `attribute ${a}`);
    return attrs[a] as T;
  };
  const loc = { file: 'test', line: 1, column: 1, start: 0, end: 0 };
  return {
    b,
    node: { name: prefix, kind: 'test', edges: [], checkpoint: prefix, attrs: {}, frozen: false, loc, attrLocs: {} },
    attrs,
    graph: 'encode',
    has: (name) => ck.has(key(name)),
    keptFloat32: (name) => keptFloat32(keepFloat32Names(ck.config), key(name)),
    connected: (port) => ports.includes(port),
    attrLoc: () => loc,
    int: (a) => attr<number>(a, 'number'),
    num: (a) => attr<number>(a, 'number'),
    str: (a) => attr<string>(a, 'string'),
    bool: (a) => attr<boolean>(a, 'boolean'),
    param(name: string, shape: number[], opts: ParamOptions = {}) {
      const k = key(name);
      assert.deepEqual(ck.shape(k), shape, `tensor ${k}`);
      if (opts.transpose) {
        const [o, i] = shape;
        return b.weight({ key: `${k}:T`, dims: [i, o], produce: () => transpose2d(ck.readFloat32(k), o, i) });
      }
      return b.weight({ key: k, dims: shape, produce: () => ck.readFloat32(k) });
    },
  };
}

/** The kind's defaults under the attributes resolved from the checkpoint's config section. */
export function resolved(kind: NodeKind, ck: Checkpoint, section: string): Attrs {
  return { ...(kind.lowering?.defaults ?? {}), ...kind.fromConfig!(ck.config[section] as Record<string, unknown>, ck.config) };
}

/** decoder.onnx's inputs as the compile driver declares them (float32 at the boundary). */
export function stepInputs(b: GraphBuilder, f: DecoderFacts, o: { prefixWidth?: number; cross?: number } = {}): StepInputs {
  const kv = ['batch', f.kvHeads, 'past_sequence', f.headDim];
  const crossDims = ['batch', 'heads', 'cross_sequence', 'head_dim'];
  return {
    ids: b.input('input_ids', 'int64', ['batch', 'sequence']),
    mask: b.input('attention_mask', 'int64', ['batch', 'total_sequence']),
    prefix: o.prefixWidth === undefined ? undefined : floatInput(b, 'prefix_embeds', ['batch', 'prefix_sequence', o.prefixWidth]),
    past: Array.from({ length: f.layers }, (_, i) => ({ key: floatInput(b, `past.${i}.key`, kv), value: floatInput(b, `past.${i}.value`, kv) })),
    cross: o.cross === undefined ? undefined : Array.from({ length: o.cross }, (_, i) => ({ key: floatInput(b, `cross.${i}.key`, crossDims), value: floatInput(b, `cross.${i}.value`, crossDims) })),
    crossMask: o.cross === undefined ? undefined : b.input('cross_attention_mask', 'int64', ['batch', 'cross_sequence']),
  };
}

/** decoder.onnx's outputs: logits, present.{i}.key/value. */
export function stepOutputs(b: GraphBuilder, out: StepOutputs): void {
  floatOutput(b, out.logits, 'logits');
  out.present.forEach((kv, i) => {
    floatOutput(b, kv.key, `present.${i}.key`);
    floatOutput(b, kv.value, `present.${i}.value`);
  });
}
