// GroupQueryAttentionFusion: a LLaMA decoder step's cached causal self-attention (rotary q/k, the
// causal + padding bias of the mask, grouped or equal key/value heads) becomes one
// com.microsoft.GroupQueryAttention on the CPU target, equal to the decomposed graph on every row
// of left-padded batches, at prefill and over a cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { GraphBuilder, Value } from '../../../src/lower/GraphBuilder.js';
import { attend, causalBias, mergeHeads, positionsFromMask, slice, splitHeads } from '../../../src/lower/transformer.js';
import { ropeInverseFrequencies } from '../../../src/nodes/llama.js';
import { GroupQueryAttentionFusion } from '../../../src/rewrite/GroupQueryAttentionFusion.js';
import { assertClose, compare, ints, tensor, type Build } from './harness.js';
import { compileFixture, tmp } from '../compiler/harness.js';

const GQA = 'com.microsoft.GroupQueryAttention';
const MHA = 'com.microsoft.MultiHeadAttention';

/** llama.ts's rotate(): x·cos + [-x₂ ; x₁]·sin over the halves of D. */
function rotate(b: GraphBuilder, x: Value, cos: Value, sin: Value, D: number, role: string): Value {
  const half = b.concat([b.op('Neg', [slice(b, x, 3, D / 2, D, `${role}_x2`)], {}, { name: `${role}_neg` }), slice(b, x, 3, 0, D / 2, `${role}_x1`)], 3, `${role}_rotated`);
  return b.add(b.mul(x, cos, `${role}_cos`), b.mul(half, sin, `${role}_sin`), role);
}

/** One cached LLaMA attention step with N query heads and Nkv key/value heads, lowered as llama.ts lowers it. */
const llamaStep =
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
function steps(N: number, Nkv: number, D: number) {
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

test('grouped heads (6 query, 2 key/value): cached causal self-attention -> GroupQueryAttention, equal on every row of left-padded batches', async () => {
  const c = await compare(llamaStep(6, 2, 8), steps(6, 2, 8));
  assert.equal(c.before[GQA], undefined);
  assert.equal(c.before.Softmax, 1);
  assert.equal(c.after[GQA], 1);
  assert.equal(c.after['com.microsoft.RotaryEmbedding'], 2);
  for (const op of ['Softmax', 'Concat', 'Transpose']) assert.equal(c.after[op], undefined, `${op} left after the fusion`);
  assert.equal(c.after[MHA], undefined);
  assert.deepEqual(Object.keys(c.diffs).sort(), ['present.key', 'present.value', 'y']);
  assertClose(c, 2e-5);
});

test('equal heads (a LLaMA without grouping) also becomes GroupQueryAttention on the CPU target', async () => {
  const c = await compare(llamaStep(4, 4, 8), steps(4, 4, 8));
  assert.equal(c.after[GQA], 1);
  assert.equal(c.after[MHA], undefined);
  assert.equal(c.after.Softmax, undefined);
  assertClose(c, 2e-5);
});

test('cuda and webgpu targets: no GroupQueryAttention (grouped stays decomposed, equal heads is MultiHeadAttention on cuda)', async () => {
  for (const target of ['cuda', 'webgpu'] as const) {
    const grouped = await compare(llamaStep(6, 2, 8), steps(6, 2, 8).slice(0, 1), { target });
    assert.equal(grouped.after[GQA], undefined, target);
    assert.equal(grouped.after.Softmax, 1, target);
    assertClose(grouped, 2e-5);
    const equal = await compare(llamaStep(4, 4, 8), steps(4, 4, 8).slice(0, 1), { target });
    assert.equal(equal.after[GQA], undefined, target);
    assert.equal(equal.after[MHA], target === 'cuda' ? 1 : undefined, target); // webgpu: attention stays decomposed
  }
});

test('head size not a multiple of 8 (the CPU kernel refuses it) is not fused; nor are float16 graphs', async () => {
  const narrow = await compare(llamaStep(4, 2, 4), steps(4, 2, 4).slice(0, 1));
  assert.equal(narrow.after[GQA], undefined);
  assert.equal(narrow.after.Softmax, 1);
  assertClose(narrow, 2e-5);
  assert.equal(GroupQueryAttentionFusion.applies('float16', { target: 'cpu' }), false);
  assert.equal(GroupQueryAttentionFusion.applies('float32', { target: 'cpu' }), true);
});

test('compiled composition fixture (Q-Former + 2-layer LLaMA, 6 heads over 2 key/value heads): one GroupQueryAttention per layer for cpu only', async () => {
  const dir = tmp('gqa-');
  try {
    const cpu = await compileFixture('graphs/examples/blip2-llama.blip', 'blip2-llama-a', join(dir, 'cpu'), 'float32', 'cpu');
    assert.equal(cpu.rewrites.decoder.GroupQueryAttention, 2);
    assert.equal(cpu.rewrites.decoder.MultiHeadAttention, undefined);
    assert.equal(cpu.rewrites.encode.GroupQueryAttention, undefined, 'the Q-Former and ViT are not causal decoders');
    const cuda = await compileFixture('graphs/examples/blip2-llama.blip', 'blip2-llama-a', join(dir, 'cuda'), 'float32', 'cuda');
    assert.equal(cuda.rewrites.decoder.GroupQueryAttention, undefined);
    const f16 = await compileFixture('graphs/examples/blip2-llama.blip', 'blip2-llama-a', join(dir, 'f16'), 'float16', 'cpu');
    assert.equal(f16.rewrites.decoder.GroupQueryAttention, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
