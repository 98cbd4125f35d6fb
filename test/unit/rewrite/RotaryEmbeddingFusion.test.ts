// RotaryEmbeddingFusion: LLaMA's rotate_half RoPE (positions from the attention mask, inverse
// frequencies as llama.ts computes them) becomes com.microsoft.RotaryEmbedding on the 3-D
// projections, after which the cached attention fuses (GroupQueryAttention on the CPU target,
// MultiHeadAttention on the others).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GraphBuilder, Value } from '../../../src/lower/GraphBuilder.js';
import { attend, causalBias, mergeHeads, positionsFromMask, slice, splitHeads } from '../../../src/lower/transformer.js';
import { ropeInverseFrequencies } from '../../../src/nodes/llama.js';
import { assertClose, compare, ints, tensor, type Build } from './harness.js';

const [N, D] = [2, 8];
const W = N * D;

/** llama.ts's rotate(): x·cos + [-x₂ ; x₁]·sin over the halves of D. */
function rotate(b: GraphBuilder, x: Value, cos: Value, sin: Value, role: string): Value {
  const half = b.concat([b.op('Neg', [slice(b, x, 3, D / 2, D, `${role}_x2`)], {}, { name: `${role}_neg` }), slice(b, x, 3, 0, D / 2, `${role}_x1`)], 3, `${role}_rotated`);
  return b.add(b.mul(x, cos, `${role}_cos`), b.mul(half, sin, `${role}_sin`), role);
}

/** One cached LLaMA attention step, lowered as llama.ts lowers it. */
const step: Build = (b, w) => {
  const h = b.input('h', 'float32', ['B', 'L', W]);
  const mask = b.input('mask', 'int64', ['B', 'T']);
  const past = { key: b.input('past_key', 'float32', ['B', N, 'P', D]), value: b.input('past_value', 'float32', ['B', N, 'P', D]) };
  const pos = b.cast(positionsFromMask(b, mask, h), 'float32', 'positions_f32');
  const freqs = b.mul(b.unsqueeze(pos, [2], 'positions_col'), b.float32(ropeInverseFrequencies(10000, D), [D / 2], 'inv_freq'), 'freqs');
  const angles = b.unsqueeze(b.concat([freqs, freqs], 2, 'angles'), [1], 'angles_heads');
  const cos = b.op('Cos', [angles], {}, { name: 'cos' });
  const sin = b.op('Sin', [angles], {}, { name: 'sin' });
  const q = rotate(b, splitHeads(b, b.linear(h, w('q', [W, W])), N, D, 'query'), cos, sin, 'query_rope');
  const k = rotate(b, splitHeads(b, b.linear(h, w('k', [W, W])), N, D, 'key'), cos, sin, 'key_rope');
  const v = splitHeads(b, b.linear(h, w('v', [W, W])), N, D, 'value');
  const key = b.concat([past.key, k], 2, 'present_key');
  const value = b.concat([past.value, v], 2, 'present_value');
  b.output(mergeHeads(b, attend(b, q, key, value, { scale: D ** -0.5, bias: causalBias(b, mask, h) }), W, 'ctx'), 'y', 'float32');
  b.output(key, 'present.key', 'float32');
  b.output(value, 'present.value', 'float32');
};

test('rotary positions -> RotaryEmbedding (cos/sin tables for the step) and the attention -> GroupQueryAttention (cpu) or MultiHeadAttention (cuda)', async () => {
  const feeds = (B: number, L: number, P: number, seed: number, mask: number[][]) => ({
    h: tensor([B, L, W], seed),
    mask: ints(mask),
    past_key: tensor([B, N, P, D], seed + 1),
    past_value: tensor([B, N, P, D], seed + 2),
  });
  const cases = [
    feeds(2, 4, 0, 1, [
      [1, 1, 1, 1],
      [0, 0, 1, 1],
    ]),
    feeds(2, 1, 4, 5, [
      [1, 1, 1, 1, 1],
      [0, 0, 1, 1, 1],
    ]),
    feeds(1, 1, 40, 9, [Array(41).fill(1)]),
  ];
  const c = await compare(step, cases, { through: 'GroupQueryAttention' });
  assert.equal(c.after['com.microsoft.RotaryEmbedding'], 2);
  assert.equal(c.after['com.microsoft.GroupQueryAttention'], 1);
  const cuda = await compare(step, cases, { target: 'cuda', through: 'MultiHeadAttention' });
  assert.equal(cuda.after['com.microsoft.RotaryEmbedding'], 2);
  assert.equal(cuda.after['com.microsoft.MultiHeadAttention'], 1);
  assertClose(cuda, 2e-5);
  assert.equal(c.after.Neg, 1, 'only positionsFromMask’s slice start; the rotate_half negations are gone');
  assert.equal(c.after.Cos, 1, 'one cos table shared by q and k');
  assertClose(c, 2e-5);
});
