// Shape-checked checkpoint layers for node-kind lowerings, on top of the LowerContext: every tensor
// goes through ctx.param, so a missing or misshapen tensor is reported against the node and its
// graph line. Attention, masks and activations are in ./transformer.ts.
import { createHash } from 'node:crypto';
import { Scratch } from '../weights/Scratch.js';
import type { LowerContext } from './contract.js';
import type { GraphBuilder, Value } from './GraphBuilder.js';
import { fscalar } from './transformer.js';
import type { WeightSpec } from './WeightStore.js';

/** torch.nn.Linear(inW, outW) at `name` ('' = the node's prefix itself): x·Wᵀ + b, the weight stored transposed (in, out). */
export function dense(ctx: LowerContext, x: Value, name: string, inW: number, outW: number, role: string, bias = true): Value {
  const at = (t: string) => (name ? `${name}.${t}` : t);
  const w = ctx.param(at('weight'), [outW, inW], { transpose: true });
  return ctx.b.linear(x, w, bias ? ctx.param(at('bias'), [outW]) : undefined, role);
}

/** torch.nn.LayerNorm(W) at `name`; statistics in float32 in float16 graphs, as torch keeps them. */
export function layerNorm(ctx: LowerContext, x: Value, name: string, W: number, eps: number, role: string): Value {
  const { b } = ctx;
  const [g, beta] = [ctx.param(`${name}.weight`, [W]), ctx.param(`${name}.bias`, [W])];
  if (b.floatType === 'float32') return b.layerNorm(x, g, beta, eps, role);
  const y = b.layerNorm(b.cast(x, 'float32', `${role}_f32`), b.cast(g, 'float32', `${role}_g32`), b.cast(beta, 'float32', `${role}_b32`), eps, role);
  return b.cast(y, 'float16', `${role}_f16`);
}

/** Ones (B, L) int64: the mask of features without padding. */
export function onesMask(b: GraphBuilder, hidden: Value, role = 'ones_mask'): Value {
  const one = { tensor: { dataType: 7 /* INT64 */, dims: [1], int64Data: [1] } };
  return b.op('ConstantOfShape', [b.shape(hidden, 0, 2, `${role}_shape`)], { value: one }, { name: role }); // (B, L)
}

/** x / max(‖x‖₂, 1e-12) over the last axis: torch.nn.functional.normalize. */
export function l2normalize(b: GraphBuilder, x: Value, role = 'normalized'): Value {
  const norm = b.op('ReduceL2', [x], { axes: [-1], keepdims: 1 }, { name: `${role}_norm` });
  const clamped = b.op('Max', [norm, fscalar(b, 1e-12, `${role}_eps`)], {}, { name: `${role}_norm_clamped` });
  return b.div(x, clamped, role);
}

/** x[:, i] for a (B, T, W) sequence → (B, W); negative i counts from the end. */
export function position(b: GraphBuilder, x: Value, i: number, role: string): Value {
  return b.gather(x, b.int64([i], [], `${role}_index`), 1, role);
}

/**
 * A language model's output projection, as transformers 5.12 loads `lm_head.weight`: with the config
 * tying it to the token embeddings (`tie_embeddings`; OPT / LLaMA read text_config's
 * tie_word_embeddings) a stored head that differs serves, one equal to them is tied (tiedOrOwn: the
 * embeddings, stored once) and none is the embeddings; untied, the stored head serves, and a missing
 * one is reported: transformers would leave it random.
 */
export function lmHead(ctx: LowerContext, embeddings: string, shape: number[]): Value {
  if (!ctx.bool('tie_embeddings')) {
    return ctx.param('lm_head.weight', shape, { neededBecause: 'its config does not tie the head to the token embeddings (tie_embeddings false; config: tie_word_embeddings, false for LLaMA when left out), and transformers would leave a missing head random' });
  }
  return tiedOrOwn(ctx, 'lm_head.weight', embeddings, shape);
}

/**
 * A tensor transformers ties to `source` (an LM head to the token embeddings, T5's decoder embeddings to
 * `shared`) that the checkpoint may also store under its own name `own`: from_pretrained leaves a stored
 * copy untied when its values differ from the source's (tie_weights: torch.equal, "both are present …
 * with different values"), and that copy serves; an equal copy, or none, is the source, stored once.
 * The copy is read either way, so that the coverage check counts it.
 */
export function tiedOrOwn(ctx: LowerContext, own: string, source: string, shape: number[]): Value {
  if (own === source || !ctx.has(own)) return ctx.param(source, shape);
  const copy = ctx.param(own, shape);
  const tied = ctx.param(source, shape);
  return sameValues(ctx.b, copy, tied) ? tied : copy;
}

/**
 * Whether two checkpoint weights hold equal values, as torch.equal compares them (-0 equals 0, a NaN
 * equals nothing). Read through their specs in the weight store at lowering time, one at a time into
 * the same memory, so that comparing two (V, E) tables never holds both (OPT-2.7b's are 515 MB each):
 * a strided sample of x against y first (a head that differs, as Flan-T5's does, is told apart
 * there), then a digest of y and of x read again. A placeholder (a missing or misshapen tensor,
 * already reported) equals nothing.
 */
function sameValues(b: GraphBuilder, x: Value, y: Value): boolean {
  const [p, q] = [b.weights.spec(x.name), b.weights.spec(y.name)];
  if (!p || !q || p.dims.join(',') !== q.dims.join(',')) return false;
  const count = p.dims.reduce((a, d) => a * d, 1);
  const scratch = new Scratch();
  // room for one tensor read (float32: its bytes, 4 a value; float16 / bfloat16: 2 a value, widened
  // to 4), so that every read below reuses the same memory: asked for once, held from the reset on
  scratch.bytes(6 * count + 128);
  scratch.reset();
  const read = (spec: WeightSpec): Float32Array | undefined => {
    scratch.reset();
    const data = spec.produce(scratch);
    return data instanceof Float32Array && data.length === count ? data : undefined;
  };
  const u = read(p);
  if (!u) return false;
  const stride = Math.max(1, Math.ceil(count / SAMPLE));
  const sample = new Float32Array(Math.ceil(count / stride));
  for (let i = 0, j = 0; i < count; i += stride, j++) sample[j] = u[i]!;
  const v = read(q);
  if (!v) return false;
  for (let i = 0, j = 0; i < count; i += stride, j++) if (sample[j] !== v[i]) return false;
  const dv = valueDigest(v);
  const w = dv === undefined ? undefined : read(p);
  return w !== undefined && valueDigest(w) === dv;
}

/** Values of x compared against y's before digests are taken. */
const SAMPLE = 1 << 16;

/** sha256 of float32 values with -0 written as 0 (torch.equal: equal), or undefined when one is NaN (equal to nothing). */
function valueDigest(data: Float32Array): string | undefined {
  const h = createHash('sha256');
  const chunk = new Float32Array(Math.min(data.length, 1 << 16));
  for (let at = 0; at < data.length; at += chunk.length) {
    const n = Math.min(chunk.length, data.length - at);
    for (let i = 0; i < n; i++) {
      const value = data[at + i]!;
      if (value !== value) return undefined;
      chunk[i] = value === 0 ? 0 : value;
    }
    h.update(new Uint8Array(chunk.buffer, 0, n * 4));
  }
  return h.digest('hex');
}
