// Attention blocks as the node kinds lower them (transformer.ts), shared by the attention fusions'
// tests: widths, the graphs, and the feeds of a decoder step.
import type { GraphBuilder, Value } from '../../../src/lower/GraphBuilder.js';
import { attend, causalBias, mergeHeads, paddingBias, positionsFromMask, QueryGroups, slice, splitHeads } from '../../../src/lower/transformer.js';
import { ropeInverseFrequencies } from '../../../src/nodes/llama.js';
import { ints, tensor, type Build } from './harness.js';

export const [W, N, D] = [16, 4, 4];
export const MHA = 'com.microsoft.MultiHeadAttention';

/** Self-attention over x (B, S, W), ViT style: one packed projection split in three, scores · D^-½. */
export const vitSelf: Build = (b, w) => {
  const x = b.input('x', 'float32', ['B', 'S', W]);
  const qkv = b.linear(x, w('qkv', [W, 3 * W]), w('qkv_b', [3 * W]), 'qkv');
  const [q, k, v] = b.ops('Split', [qkv], { axis: -1 }, { outputs: ['q', 'k', 'v'] });
  const h = (t: typeof x, r: string) => splitHeads(b, t, N, D, r);
  b.output(mergeHeads(b, attend(b, h(q, 'q'), h(k, 'k'), h(v, 'v'), { scale: D ** -0.5 }), W, 'ctx'), 'y', 'float32');
};

/**
 * OPT's self-attention: the query scaled after its bias, (x·Wq + bq)·c with c = D^-½ unless given;
 * key and value plain linear layers; no score scale (or `scores`, to test what composes with it).
 */
export const optSelf =
  (c = D ** -0.5, scores?: number): Build =>
  (b, w) => {
    const x = b.input('x', 'float32', ['B', 'S', W]);
    const lin = (r: string) => b.linear(x, w(`${r}_w`, [W, W]), w(`${r}_b`, [W]), r);
    const q = splitHeads(b, b.mul(lin('q'), b.scalar(c), 'q_scaled'), N, D, 'q_h');
    b.output(mergeHeads(b, attend(b, q, splitHeads(b, lin('k'), N, D, 'k_h'), splitHeads(b, lin('v'), N, D, 'v_h'), { scale: scores }), W, 'ctx'), 'y', 'float32');
  };

/** A decoder step's inputs: x (B, S, W), its mask, a past, and BNSH cross keys/values of `crossRows` rows with their mask. */
function stepInputs(b: GraphBuilder, crossRows: 'B' | 'I') {
  const bnsh = (name: string, rows: string, seq: string) => b.input(name, 'float32', [rows, N, seq, D]);
  return {
    x: b.input('x', 'float32', ['B', 'S', W]),
    mask: b.input('mask', 'int64', ['B', 'T']),
    past: { key: bnsh('past_key', 'B', 'P'), value: bnsh('past_value', 'B', 'P') },
    cross: { key: bnsh('cross_key', crossRows, 'L'), value: bnsh('cross_value', crossRows, 'L') },
    crossMask: b.input('cross_mask', 'int64', [crossRows, 'L']),
  };
}

/** A decoder layer: cached self-attention (past/present, causal bias) and cross-attention over given BNSH keys/values. */
export const decoderStep: Build = (b, w) => {
  const { x, mask, past, cross, crossMask } = stepInputs(b, 'B');
  const h = (t: typeof x, r: string) => splitHeads(b, b.linear(t, w(`${r}_w`, [W, W]), w(`${r}_b`, [W]), r), N, D, `${r}_h`);
  const k = b.concat([past.key, h(x, 'k')], 2, 'present_key');
  const v = b.concat([past.value, h(x, 'v')], 2, 'present_value');
  const self = mergeHeads(b, attend(b, h(x, 'q'), k, v, { divide: Math.sqrt(D), bias: causalBias(b, mask, x) }), W, 'self');
  const crossOut = mergeHeads(b, attend(b, h(self, 'cq'), cross.key, cross.value, { divide: Math.sqrt(D), bias: paddingBias(b, crossMask, 'cross_bias') }), W, 'cross');
  b.output(crossOut, 'y', 'float32');
  b.output(k, 'present.key', 'float32');
  b.output(v, 'present.value', 'float32');
};

/**
 * decoderStep with an output projection after each attention and the cross-attention's queries in
 * groups as compile.ts lowers a decoder step (QueryGroups): the B = I·G rows (G beams of each of I
 * images) attend to I rows of cross keys/values.
 */
export const groupedDecoderStep: Build = (b, w) => {
  const { x, mask, past, cross, crossMask } = stepInputs(b, 'I');
  const groups = new QueryGroups(b, cross.key);
  const lin = (t: Value, r: string) => b.linear(t, w(`${r}_w`, [W, W]), w(`${r}_b`, [W]), r);
  const h = (t: Value, r: string) => splitHeads(b, t, N, D, `${r}_h`);
  const k = b.concat([past.key, h(lin(x, 'k'), 'k')], 2, 'present_key');
  const v = b.concat([past.value, h(lin(x, 'v'), 'v')], 2, 'present_value');
  const self = lin(mergeHeads(b, attend(b, h(lin(x, 'q'), 'q'), k, v, { divide: Math.sqrt(D), bias: causalBias(b, mask, x) }), W, 'self'), 'so');
  const cq = lin(self, 'cq');
  const context = mergeHeads(b, attend(b, h(groups.group(cq, W), 'cq'), cross.key, cross.value, { divide: Math.sqrt(D), bias: paddingBias(b, crossMask, 'cross_bias') }), W, 'cross');
  b.output(b.add(lin(groups.ungroup(context, self, W), 'co'), self, 'residual'), 'y', 'float32');
  b.output(k, 'present.key', 'float32');
  b.output(v, 'present.value', 'float32');
};

/** Feeds of groupedDecoderStep: I images, G rows each, S new tokens over a P-token cache, L cross positions. */
export const groupedDecoderStepFeeds = (I: number, G: number, S: number, P: number, L: number, seed: number) => ({
  x: tensor([I * G, S, W], seed),
  mask: ints(Array.from({ length: I * G }, (_, r) => Array.from({ length: P + S }, (_, j) => (r === 1 && j === 0 ? 0 : 1)))),
  past_key: tensor([I * G, N, P, D], seed + 1),
  past_value: tensor([I * G, N, P, D], seed + 2),
  cross_key: tensor([I, N, L, D], seed + 3),
  cross_value: tensor([I, N, L, D], seed + 4),
  cross_mask: ints(Array.from({ length: I }, (_, r) => Array.from({ length: L }, (_, j) => (r === 1 && j >= L - 2 ? 0 : 1)))),
});

/** Feeds of decoderStep: batch B, S new tokens over a P-token cache, L cross positions (row 1's last two padded). */
export const decoderStepFeeds = (B: number, S: number, P: number, L: number, seed: number, maskRows: number[][]) => ({
  x: tensor([B, S, W], seed),
  mask: ints(maskRows),
  past_key: tensor([B, N, P, D], seed + 1),
  past_value: tensor([B, N, P, D], seed + 2),
  cross_key: tensor([B, N, L, D], seed + 3),
  cross_value: tensor([B, N, L, D], seed + 4),
  cross_mask: ints(Array.from({ length: B }, (_, r) => Array.from({ length: L }, (_, j) => (r === 1 && j >= L - 2 ? 0 : 1)))),
});

/** llama.ts's rotate(): x·cos + [-x₂ ; x₁]·sin over the halves of D. */
export function rotate(b: GraphBuilder, x: Value, cos: Value, sin: Value, D: number, role: string): Value {
  const half = b.concat([b.op('Neg', [slice(b, x, 3, D / 2, D, `${role}_x2`)], {}, { name: `${role}_neg` }), slice(b, x, 3, 0, D / 2, `${role}_x1`)], 3, `${role}_rotated`);
  return b.add(b.mul(x, cos, `${role}_cos`), b.mul(half, sin, `${role}_sin`), role);
}

/** One cached LLaMA attention step with N query heads and Nkv key/value heads, lowered as llama.ts lowers it. */
export const llamaStep =
  (N: number, Nkv: number, D: number): Build =>
  (b, w) => {
    const W = N * D;
    const h = b.input('h', 'float32', ['B', 'L', W]);
    const mask = b.input('mask', 'int64', ['B', 'T']);
    const past = { key: b.input('past_key', 'float32', ['B', Nkv, 'P', D]), value: b.input('past_value', 'float32', ['B', Nkv, 'P', D]) };
    const pos = b.cast(positionsFromMask(b, mask, h), 'float32', 'positions_f32');
    const freqs = b.mul(b.unsqueeze(pos, [2], 'positions_col'), b.float32(ropeInverseFrequencies(10000, D), [D / 2], 'inv_freq'), 'freqs');
    const angles = b.unsqueeze(b.concat([freqs, freqs], 2, 'angles'), [1], 'angles_heads');
    const cos = b.op('Cos', [angles], {}, { name: 'cos' });
    const sin = b.op('Sin', [angles], {}, { name: 'sin' });
    const bias = causalBias(b, mask, h);
    const q = rotate(b, splitHeads(b, b.linear(h, w('q', [W, W])), N, D, 'query'), cos, sin, D, 'query_rope');
    const k = rotate(b, splitHeads(b, b.linear(h, w('k', [W, Nkv * D])), Nkv, D, 'key'), cos, sin, D, 'key_rope');
    const v = splitHeads(b, b.linear(h, w('v', [W, Nkv * D])), Nkv, D, 'value');
    const key = b.concat([past.key, k], 2, 'present_key');
    const value = b.concat([past.value, v], 2, 'present_value');
    const o = attend(b, q, key, value, { scale: D ** -0.5, bias, groups: { heads: N, kvHeads: Nkv } });
    b.output(b.linear(mergeHeads(b, o, W, 'ctx'), w('o', [W, W])), 'y', 'float32');
    b.output(key, 'present.key', 'float32');
    b.output(value, 'present.value', 'float32');
  };

/** Prefill of a left-padded batch, one token over a left-padded cache, one row over a long cache. */
export function llamaSteps(N: number, Nkv: number, D: number) {
  const feeds = (B: number, L: number, P: number, seed: number, mask: number[][]) => ({
    h: tensor([B, L, N * D], seed),
    mask: ints(mask),
    past_key: tensor([B, Nkv, P, D], seed + 1),
    past_value: tensor([B, Nkv, P, D], seed + 2),
  });
  return [
    feeds(2, 5, 0, 1, [
      [1, 1, 1, 1, 1],
      [0, 0, 0, 1, 1],
    ]),
    feeds(2, 1, 5, 5, [
      [1, 1, 1, 1, 1, 1],
      [0, 0, 0, 1, 1, 1],
    ]),
    feeds(1, 1, 40, 9, [Array(41).fill(1)]),
  ];
}
