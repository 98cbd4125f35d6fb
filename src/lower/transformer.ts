// Building blocks for lowering transformer node kinds: activations, RMS norm, multi-head attention
// with additive masks, positions. Everything here works on GraphBuilder Values (checkpoint tensors
// come in through the LowerContext, see ./blocks.ts); shapes in the comments are
// B batch, L current positions, P past positions, T = P + L, N heads, D head width.
//
// Arithmetic happens in the store's float type (`ft`); graph inputs and outputs stay float32
// (the manifest's rule), so `floatInput` / `floatOutput` cast at the boundary under float16.
// Attention scores, masks and norm statistics are always float32, as transformers keeps them.
import onnxProto from 'onnx-proto';
import { GraphBuilder, ONNX_DTYPE, Value } from './GraphBuilder.js';
import { float32ToFloat16 } from '../weights/float16.js';
import type { Scratch } from '../weights/Scratch.js';
import { ACTIVATION_OPS } from './activations.js';

export type FloatType = 'float32' | 'float16';

/** The most negative finite value of each float type: transformers' additive mask value. */
export const FLOAT_MIN: Record<FloatType, number> = { float32: -3.4028234663852886e38, float16: -65504 };

/**
 * T5 / LLaMA RMS norm: x·rsqrt(mean(x²) + eps) with the statistics in float32 (float16 graphs cast
 * there and back, as transformers does), then ·weight.
 */
export function rmsNorm(b: GraphBuilder, x: Value, weight: Value, eps: number, role = 'rmsnorm', xIsFloat32 = false): Value {
  const f16 = b.floatType === 'float16';
  // xIsFloat32: a float32 input in a float16 graph (T5's residual stream, see src/nodes/t5.ts).
  const x32 = f16 && !xIsFloat32 ? b.cast(x, 'float32', `${role}_f32`) : x;
  const ms = b.op('ReduceMean', [b.mul(x32, x32, `${role}_sq`)], { axes: [-1], keepdims: 1 }, { name: `${role}_ms` }); // (…, 1)
  const inv = b.op('Reciprocal', [b.op('Sqrt', [b.add(ms, f32(b, eps), `${role}_eps`)], {}, { name: `${role}_rms` })], {}, { name: `${role}_inv` });
  let y = b.mul(x32, inv, `${role}_normed`);
  if (f16) y = b.cast(y, 'float16', `${role}_f16`);
  return b.mul(y, weight, role);
}

export function numel(dims: number[]): number {
  return dims.reduce((a, d) => a * d, 1);
}

/** (rows, cols) row-major → (cols, rows), in tiles so that reads and writes both stay in cache. */
export function transpose2d(src: Float32Array, rows: number, cols: number, scratch?: Scratch): Float32Array {
  const out = scratch ? scratch.float32(rows * cols) : new Float32Array(rows * cols);
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(rows, r0 + T);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(cols, c0 + T);
      for (let c = c0; c < c1; c++) {
        const d = c * rows;
        for (let r = r0; r < r1; r++) out[d + r] = src[r * cols + c];
      }
    }
  }
  return out;
}

/** A float constant in the graph's float type. */
export function fconst(b: GraphBuilder, values: Float32Array | number[], dims: number[], role = 'const'): Value {
  const ft = b.floatType;
  const data = values instanceof Float32Array ? values : Float32Array.from(values);
  if (ft === 'float32') return b.float32(data, dims, role);
  const name = b.fresh(role);
  const h = float32ToFloat16(data);
  b.constants.push({ name, dataType: ONNX_DTYPE.float16, dims, rawData: new Uint8Array(h.buffer, h.byteOffset, h.byteLength) } as onnxProto.onnx.ITensorProto);
  return new Value(name, b);
}

/** A float32 scalar (0-d) constant: for scores, masks and norm statistics, float32 in every graph. */
export function f32(b: GraphBuilder, x: number, role = 'f32'): Value {
  return b.float32([x], [], role);
}

/** A scalar in the graph's float type. */
export function fscalar(b: GraphBuilder, x: number, role = 'scalar'): Value {
  return fconst(b, [x], [], role);
}

/** A float32 graph input, cast to the graph's float type. */
export function floatInput(b: GraphBuilder, name: string, dims: (number | string)[]): Value {
  const v = b.input(name, 'float32', dims);
  return b.floatType === 'float16' ? b.cast(v, 'float16', `${name}_f16`) : v;
}

/** Declare `v` (graph float type) a float32 output. */
export function floatOutput(b: GraphBuilder, v: Value, name: string, dims?: (number | string)[]): Value {
  const out = b.floatType === 'float16' ? b.cast(v, 'float32', `${name}_f32`) : v;
  return b.output(out, name, 'float32', dims);
}

/**
 * HuggingFace ACT2FN (./activations.ts). Node kinds' schemas accept only the table's names, so an
 * unknown one here is a compiler bug, not a user error.
 */
export function activation(b: GraphBuilder, x: Value, name: string, role = 'act'): Value {
  const op = Object.hasOwn(ACTIVATION_OPS, name) ? ACTIVATION_OPS[name] : undefined;
  if (!op) throw new Error(`internal: activation "${name}" passed the attribute schema but has no lowering (src/lower/activations.ts)`);
  return op(b, x, role);
}

// ---- shapes ----

/** Dimension `axis` of x as a 1-element int64 tensor. */
export function dim(b: GraphBuilder, x: Value, axis: number, role = 'dim'): Value {
  return b.op('Shape', [x], { start: axis, end: axis === -1 ? undefined : axis + 1 }, { name: role });
}

/**
 * Cross-attention of a decoder step whose rows come in groups (manifest `decoder.cross_rows`:
 * 'grouped'): the B = I·G rows — G beams or returned sequences of each encoded row, contiguous —
 * attend to I rows of cross keys/values. Attention is independent per query, so group i's G rows
 * can attend as G·L query positions of row i: the query projection (B, L, W) -> (I, G·L, W), and
 * the context back to the projection's own shape. The cross K/V then stay one copy per image: beam
 * search over 3 beams used to hold three and read each one every step. With G = 1 both are plain
 * views. The projection itself runs on the step's rows: a product's rows then share the (B, L) of
 * every other product in the step, which PointwiseConvFusion reads once for all of them.
 */
export class QueryGroups {
  private readonly grouped = new Map<number, Value>();
  private readonly rows = new Map<number, Value>();
  /** Whether a node attended through it (compile.ts checks that a cross-attending step did). */
  used = false;

  /** `crossKey`: any (I, N, L, D) cross key. */
  constructor(
    private readonly b: GraphBuilder,
    private readonly crossKey: Value,
  ) {}

  /** The query projection (B, L, W) -> (I, G·L, W). */
  group(query: Value, width: number): Value {
    this.used = true;
    let shape = this.grouped.get(width); // built once per graph (at the first layer) and shared by every layer
    if (!shape) this.grouped.set(width, (shape = this.b.concat([dim(this.b, this.crossKey, 0, 'cross_rows'), this.b.int64([-1, width], [2], `grouped_${width}_dims`)], 0, `grouped_${width}_shape`)));
    return this.b.op('Reshape', [query, shape], {}, { name: 'queries_grouped' });
  }

  /**
   * (I, G·L, W) -> (B, L, W), with the (B, L) of `x`, the input of the query projection that
   * group() took. Every layer's x has the step's (B, L), so the first layer's serves all of them.
   */
  ungroup(context: Value, x: Value, width: number): Value {
    let shape = this.rows.get(width);
    if (!shape) this.rows.set(width, (shape = this.b.concat([this.b.shape(x, 0, -1, 'step_rows'), this.b.int64([width], [1], `rows_${width}_width`)], 0, `rows_${width}_shape`)));
    return this.b.op('Reshape', [context, shape], {}, { name: 'context_rows' });
  }
}

/** (B, L, N·D) -> (B, N, L, D). */
export function splitHeads(b: GraphBuilder, x: Value, heads: number, headDim: number, role = 'heads'): Value {
  const r = b.reshape(x, [0, 0, heads, headDim], `${role}_split`); // (B, L, N, D)
  return b.transpose(r, [0, 2, 1, 3], role); // (B, N, L, D)
}

/** (B, N, L, D) -> (B, L, N·D). */
export function mergeHeads(b: GraphBuilder, x: Value, width: number, role = 'merged'): Value {
  const t = b.transpose(x, [0, 2, 1, 3], `${role}_t`); // (B, L, N, D)
  return b.reshape(t, [0, 0, width], role); // (B, L, N·D)
}

/** x[:, start:end] along `axis` (end may be a large number for "to the end"). */
export function slice(b: GraphBuilder, x: Value, axis: number, start: number | Value, end: number | Value, role = 'slice'): Value {
  const s = typeof start === 'number' ? b.int64([start], [1], `${role}_start`) : start;
  const e = typeof end === 'number' ? b.int64([end], [1], `${role}_end`) : end;
  return b.op('Slice', [x, s, e, b.int64([axis], [1], `${role}_axis`)], {}, { name: role });
}

// ---- attention ----

export interface AttendOptions {
  /** Multiply the scores by this (transformers' `scaling`). */
  scale?: number;
  /** Divide the scores by this instead (BERT-style `/ sqrt(d)`), as the reference does. */
  divide?: number;
  /** Additive float32 bias broadcastable to (B, N, L, T): masks, T5 position bias. */
  bias?: Value;
  /** Key/value heads when fewer than the query heads (grouped-query attention). */
  groups?: { heads: number; kvHeads: number };
}

/**
 * softmax(q·kᵀ·scale + bias)·v. q (B, N, L, D), k and v (B, Nkv, T, D) -> (B, N, L, D). Scores
 * and softmax are float32. With grouped heads, query head h reads key/value head h / (N / Nkv)
 * (transformers' repeat_kv): the N query heads are folded into the key heads instead of copying K/V.
 */
export function attend(b: GraphBuilder, q: Value, k: Value, v: Value, o: AttendOptions, role = 'attn'): Value {
  const f16 = b.floatType === 'float16';
  const g = o.groups && o.groups.kvHeads !== o.groups.heads ? o.groups : undefined;
  // Grouped: query heads h = kv·rep + r are contiguous per key head, so (B, N, L, D) views as
  // (B, Nkv, rep·L, D) and one MatMul per key head serves its rep query heads.
  const qg = g ? b.reshape(q, [0, g.kvHeads, -1, 0], `${role}_q_grouped`) : q;
  const kt = b.transpose(k, [0, 1, 3, 2], `${role}_kt`); // (B, Nkv, D, T)
  let s = b.matmul(qg, kt, `${role}_scores`); // (B, N, L, T)   [grouped: (B, Nkv, rep·L, T)]
  if (f16) s = b.cast(s, 'float32', `${role}_scores_f32`);
  if (o.scale !== undefined) s = b.mul(s, f32(b, o.scale), `${role}_scaled`);
  if (o.divide !== undefined) s = b.op('Div', [s, f32(b, o.divide)], {}, { name: `${role}_scaled` });
  if (g) s = b.reshape(s, [0, g.heads, -1, 0], `${role}_scores_heads`); // (B, N, L, T)
  if (o.bias) s = b.add(s, o.bias, `${role}_biased`);
  let p = b.softmax(s, -1, `${role}_probs`);
  if (g) p = b.reshape(p, [0, g.kvHeads, -1, 0], `${role}_probs_grouped`); // (B, Nkv, rep·L, T)
  if (f16) p = b.cast(p, 'float16', `${role}_probs_f16`);
  const out = b.matmul(p, v, `${role}_context`); // (B, Nkv, rep·L, D) or (B, N, L, D)
  return g ? b.reshape(out, [0, g.heads, -1, 0], `${role}_context_heads`) : out; // (B, N, L, D)
}

/**
 * Additive float32 padding bias from an int64 0/1 mask: (B, T) -> (B, 1, 1, T), 0 where the mask
 * is 1 and the float32 minimum where it is 0 (transformers' eager mask).
 */
export function paddingBias(b: GraphBuilder, mask: Value, role = 'pad_bias'): Value {
  const keep = b.cast(b.op('Unsqueeze', [mask, b.int64([1, 2], [2], `${role}_axes`)], {}, { name: `${role}_4d` }), 'bool', `${role}_keep`); // (B, 1, 1, T)
  return b.op('Where', [keep, f32(b, 0), f32(b, FLOAT_MIN.float32)], {}, { name: role });
}

/**
 * Causal + padding bias for L current positions that follow P = T - L cached ones:
 * mask (B, T) int64 -> (B, 1, L, T), position P+i may see key j when j <= P+i and mask[j] = 1.
 */
export function causalBias(b: GraphBuilder, mask: Value, hidden: Value, role = 'causal_bias'): Value {
  const T = b.op('Squeeze', [dim(b, mask, 1, `${role}_T`)], {}, { name: `${role}_T0` });
  const L = b.op('Squeeze', [dim(b, hidden, 1, `${role}_L`)], {}, { name: `${role}_L0` });
  const P = b.op('Sub', [T, L], {}, { name: `${role}_P` });
  const one = b.int64([1], [], `${role}_one`);
  const zero = b.int64([0], [], `${role}_zero`);
  const kpos = b.op('Range', [zero, T, one], {}, { name: `${role}_kpos` }); // (T)
  const qpos = b.op('Range', [P, T, one], {}, { name: `${role}_qpos` }); // (L) = P .. T-1
  const qcol = b.op('Unsqueeze', [qpos, b.int64([1], [1], `${role}_ax1`)], {}, { name: `${role}_qcol` }); // (L, 1)
  const causal = b.op('LessOrEqual', [kpos, qcol], {}, { name: `${role}_causal` }); // (L, T)
  const pad = b.cast(b.op('Unsqueeze', [mask, b.int64([1, 2], [2], `${role}_axes`)], {}, { name: `${role}_4d` }), 'bool', `${role}_keep`); // (B, 1, 1, T)
  const keep = b.op('And', [causal, pad], {}, { name: `${role}_and` }); // (B, 1, L, T)
  return b.op('Where', [keep, f32(b, 0), f32(b, FLOAT_MIN.float32)], {}, { name: role });
}

/**
 * Positions of the L current tokens as transformers' generate numbers them from the attention
 * mask: cumsum(mask) - 1, 0 at padding; mask (B, T) -> (B, L) int64 for the last L columns.
 */
export function positionsFromMask(b: GraphBuilder, mask: Value, hidden: Value, role = 'positions'): Value {
  const cum = b.op('CumSum', [mask, b.int64([1], [], `${role}_axis`)], {}, { name: `${role}_cumsum` }); // (B, T)
  const pos = b.op('Sub', [cum, b.int64([1], [], `${role}_one`)], {}, { name: `${role}_minus1` });
  const kept = b.op('Where', [b.cast(mask, 'bool', `${role}_keep`), pos, b.int64([0], [], `${role}_zero`)], {}, { name: `${role}_all` });
  const L = dim(b, hidden, 1, `${role}_L`);
  const start = b.op('Neg', [L], {}, { name: `${role}_start` });
  return slice(b, kept, 1, start, 1 << 30, role); // (B, L)
}

// ---- decoder steps ----

/** hidden (B, L, W) -> its last position (B, W). */
export function lastPosition(b: GraphBuilder, h: Value, role = 'last'): Value {
  return b.op('Gather', [h, b.int64([-1], [], `${role}_index`)], { axis: 1 }, { name: role });
}
