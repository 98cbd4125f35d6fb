// Shape-checked checkpoint layers for node-kind lowerings, on top of the LowerContext: every tensor
// goes through ctx.param, so a missing or misshapen tensor is reported against the node and its
// graph line. Attention, masks and activations are in ./transformer.ts.
import type { LowerContext } from './contract.js';
import type { GraphBuilder, Value } from './GraphBuilder.js';
import { fscalar } from './transformer.js';

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
 * A language model's output projection: `lm_head.weight` where the checkpoint stores one (transformers
 * loads a stored head even when the config ties it), else the token embeddings when the config ties
 * them (`tie_embeddings`), else a missing tensor: transformers would leave that head random.
 */
export function lmHead(ctx: LowerContext, embeddings: string, shape: number[]): Value {
  if (ctx.has('lm_head.weight') || !ctx.bool('tie_embeddings')) {
    return ctx.param('lm_head.weight', shape, { neededBecause: 'its config does not tie the head to the token embeddings (tie_embeddings false; config: tie_word_embeddings, false for LLaMA when left out), and transformers would leave a missing head random' });
  }
  return ctx.param(embeddings, shape);
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
 * Whether two checkpoint weights hold equal values, as torch.equal compares them (a NaN equals
 * nothing). Read through their specs in the weight store, once each, at lowering time; a placeholder
 * (a missing or misshapen tensor, already reported) equals nothing.
 */
function sameValues(b: GraphBuilder, x: Value, y: Value): boolean {
  const [p, q] = [b.weights.spec(x.name), b.weights.spec(y.name)];
  if (!p || !q) return false;
  const [u, v] = [p.produce(), q.produce()];
  if (!(u instanceof Float32Array) || !(v instanceof Float32Array) || u.length !== v.length) return false;
  for (let i = 0; i < u.length; i++) if (u[i] !== v[i]) return false;
  return true;
}
