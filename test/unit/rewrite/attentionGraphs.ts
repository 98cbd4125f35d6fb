// Attention blocks as the node kinds lower them (transformer.ts), shared by the attention fusions'
// tests: widths, the graphs, and the feeds of a decoder step.
import { attend, causalBias, mergeHeads, paddingBias, splitHeads } from '../../../src/lower/transformer.js';
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

/** A decoder layer: cached self-attention (past/present, causal bias) and cross-attention over given BNSH keys/values. */
export const decoderStep: Build = (b, w) => {
  const x = b.input('x', 'float32', ['B', 'S', W]);
  const mask = b.input('mask', 'int64', ['B', 'T']);
  const past = { key: b.input('past_key', 'float32', ['B', N, 'P', D]), value: b.input('past_value', 'float32', ['B', N, 'P', D]) };
  const cross = { key: b.input('cross_key', 'float32', ['B', N, 'L', D]), value: b.input('cross_value', 'float32', ['B', N, 'L', D]) };
  const crossMask = b.input('cross_mask', 'int64', ['B', 'L']);
  const h = (t: typeof x, r: string) => splitHeads(b, b.linear(t, w(`${r}_w`, [W, W]), w(`${r}_b`, [W]), r), N, D, `${r}_h`);
  const k = b.concat([past.key, h(x, 'k')], 2, 'present_key');
  const v = b.concat([past.value, h(x, 'v')], 2, 'present_value');
  const self = mergeHeads(b, attend(b, h(x, 'q'), k, v, { divide: Math.sqrt(D), bias: causalBias(b, mask, x) }), W, 'self');
  const crossOut = mergeHeads(b, attend(b, h(self, 'cq'), cross.key, cross.value, { divide: Math.sqrt(D), bias: paddingBias(b, crossMask, 'cross_bias') }), W, 'cross');
  b.output(crossOut, 'y', 'float32');
  b.output(k, 'present.key', 'float32');
  b.output(v, 'present.value', 'float32');
};

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
