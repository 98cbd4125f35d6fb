// MultiHeadAttentionFusion: the attention blocks of transformer.ts (as vit/bert/qformer/opt/t5
// lower them) become com.microsoft.MultiHeadAttention, numerically equal to the decomposed graph.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { attend, f32, mergeHeads, paddingBias, splitHeads } from '../../../src/lower/transformer.js';
import { assertClose, compare, ints, tensor, type Build } from './harness.js';
import { D, MHA, N, W, decoderStep, decoderStepFeeds as step, vitSelf } from './attentionGraphs.js';

const THROUGH = { through: 'MultiHeadAttention' };

test('ViT self-attention (packed q/k/v, scale) -> MultiHeadAttention with 3-D q, k, v', async () => {
  const c = await compare(vitSelf, [{ x: tensor([2, 5, W], 1) }, { x: tensor([1, 3, W], 2) }], THROUGH);
  assert.equal(c.before[MHA], undefined);
  assert.equal(c.before.Softmax, 1);
  assert.equal(c.after[MHA], 1);
  for (const op of ['Softmax', 'Transpose', 'Reshape']) assert.equal(c.after[op], undefined, `${op} left after the fusion`);
  assertClose(c);
});

/** BERT encoder self-attention over padded text: scores / √D, the padding bias of the mask. */
const bertPadded: Build = (b, w) => {
  const x = b.input('x', 'float32', ['B', 'S', W]);
  const mask = b.input('mask', 'int64', ['B', 'S']);
  const h = (t: typeof x, r: string) => splitHeads(b, b.linear(x, w(`${r}_w`, [W, W]), w(`${r}_b`, [W]), r), N, D, `${r}_h`);
  b.output(mergeHeads(b, attend(b, h(x, 'q'), h(x, 'k'), h(x, 'v'), { divide: Math.sqrt(D), bias: paddingBias(b, mask) }), W, 'ctx'), 'y', 'float32');
};

test('padded self-attention: the padding bias becomes key_padding_mask with transformers’ mask value', async () => {
  const c = await compare(bertPadded, [{ x: tensor([2, 4, W], 3), mask: ints([[1, 1, 1, 1], [1, 1, 0, 0]]) }], THROUGH);
  assert.equal(c.after[MHA], 1);
  assert.equal(c.after.Where, undefined, 'the additive bias is no longer built');
  assert.equal(c.after.Cast, 1, 'one int64 -> int32 cast of the mask');
  assertClose(c);
});

test('decoder step: cached self-attention (past -> present, causal) and BNSH cross-attention, prefill and later steps', async () => {
  const c = await compare(decoderStep, [
    step(2, 3, 0, 5, 10, [
      [1, 1, 1],
      [0, 1, 1],
    ]), // prefill, left padding
    step(2, 1, 3, 5, 20, [
      [1, 1, 1, 1],
      [0, 1, 1, 1],
    ]), // one token over a 3-token cache
    step(1, 2, 4, 7, 30, [[1, 1, 1, 1, 1, 1]]),
  ], THROUGH);
  assert.equal(c.before.Softmax, 2);
  assert.equal(c.after[MHA], 2);
  assert.equal(c.after.Softmax, undefined);
  assert.equal(c.after.Concat, undefined, 'present_key/value come from MultiHeadAttention');
  assert.deepEqual(Object.keys(c.diffs).sort(), ['present.key', 'present.value', 'y']);
  assertClose(c);
});

test('grouped-query attention and float16 graphs are left decomposed', async () => {
  const grouped: Build = (b, w) => {
    const x = b.input('x', 'float32', ['B', 'S', W]);
    const q = splitHeads(b, b.linear(x, w('q', [W, W])), N, D, 'q');
    const k = splitHeads(b, b.linear(x, w('k', [W, W / 2])), N / 2, D, 'k');
    const v = splitHeads(b, b.linear(x, w('v', [W, W / 2])), N / 2, D, 'v');
    b.output(mergeHeads(b, attend(b, q, k, v, { scale: D ** -0.5, groups: { heads: N, kvHeads: N / 2 } }), W, 'ctx'), 'y', 'float32');
  };
  const c = await compare(grouped, [{ x: tensor([1, 3, W], 5) }], THROUGH);
  assert.equal(c.after[MHA], undefined);
  assert.equal(c.after.Softmax, 1);
  assertClose(c, 0);

  const half: Build = (b, w) => {
    const x = b.cast(b.input('x', 'float32', ['B', 'S', W]), 'float16', 'x16');
    const h = (r: string) => splitHeads(b, b.linear(x, w(r, [W, W])), N, D, `${r}_h`);
    b.output(b.cast(mergeHeads(b, attend(b, h('q'), h('k'), h('v'), { scale: D ** -0.5 }), W, 'ctx'), 'float32', 'y32'), 'y', 'float32');
  };
  const h = await compare(half, [{ x: tensor([1, 3, W], 6) }], { ...THROUGH, floatType: 'float16' });
  assert.equal(h.after[MHA], undefined);
});

test('an unknown additive bias (T5 relative positions, per head) is attention_bias; no scale is scale 1', async () => {
  const t5: Build = (b, w) => {
    const x = b.input('x', 'float32', ['B', 'S', W]);
    const bias = b.add(b.input('pos_bias', 'float32', [1, N, 'S', 'S']), f32(b, 0), 'bias'); // computed, not a padding pattern
    const h = (r: string) => splitHeads(b, b.linear(x, w(r, [W, W])), N, D, `${r}_h`);
    b.output(mergeHeads(b, attend(b, h('q'), h('k'), h('v'), { bias }), W, 'ctx'), 'y', 'float32');
  };
  const c = await compare(t5, [{ x: tensor([2, 3, W], 7), pos_bias: tensor([1, N, 3, 3], 8, 3) }], THROUGH);
  assert.equal(c.after[MHA], 1);
  assertClose(c);
});

test('the fused graph declares the com.microsoft opset and also runs with ORT’s optimizations on', async () => {
  const { build, open } = await import('./harness.js');
  const { rewriteGraph } = await import('../../../src/rewrite/index.js');
  const b = build(vitSelf);
  rewriteGraph(b, { target: 'cpu' }, THROUGH.through);
  const { session, dispose } = await open(b, 'all');
  try {
    const y = (await session.run({ x: tensor([1, 2, W], 9) })).y as ort.Tensor;
    assert.deepEqual(y.dims, [1, 2, W]);
  } finally {
    dispose();
  }
});
