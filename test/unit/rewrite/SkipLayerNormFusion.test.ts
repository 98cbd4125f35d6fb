// SkipLayerNormFusion: residual add + LayerNormalization (post-norm BERT/Q-Former, pre-norm
// ViT/OPT, embeddings + learned positions) become com.microsoft.SkipLayerNormalization on the cuda
// and webgpu targets (the fused graphs run here on the CPU provider, which has the kernel too).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertClose, compare, tensor, type Build } from './harness.js';

const W = 16;
const SLN = 'com.microsoft.SkipLayerNormalization';
const THROUGH = 'SkipLayerNormalization';
const CUDA = { target: 'cuda', through: THROUGH } as const;

/** Post-norm (BERT): LN(dense(x) + residual). */
const post: Build = (b, w) => {
  const x = b.input('x', 'float32', ['B', 'S', W]);
  const r = b.input('r', 'float32', ['B', 'S', W]);
  const h = b.add(b.linear(x, w('dense', [W, W]), w('dense_b', [W]), 'dense'), r, 'residual');
  b.output(b.layerNorm(h, w('g', [W], 0.1, 1), w('beta', [W], 0.1), 1e-12), 'y', 'float32');
};

test('post-norm: LN(dense(x) + residual) folds the dense bias; the sum is not kept', async () => {
  const c = await compare(post, [{ x: tensor([2, 3, W], 1), r: tensor([2, 3, W], 2) }], CUDA);
  assert.equal(c.before.LayerNormalization, 1);
  assert.equal(c.after[SLN], 1);
  assert.equal(c.after.LayerNormalization, undefined);
  assert.equal(c.after.Add, undefined, 'bias and residual adds are both inside the fused node');
  assertClose(c);
});

test('pre-norm: the residual sum read by the next block comes from the 4th output', async () => {
  const pre: Build = (b, w) => {
    const x = b.input('x', 'float32', ['B', 'S', W]);
    const m = b.input('m', 'float32', ['B', 'S', W]);
    const r = b.add(m, x, 'residual'); // neither operand is a biased linear layer
    const h = b.layerNorm(r, w('g', [W], 0.1, 1), w('beta', [W], 0.1), 1e-6);
    b.output(b.add(b.linear(h, w('fc', [W, W]), w('fc_b', [W]), 'fc'), r, 'out'), 'y', 'float32');
  };
  const c = await compare(pre, [{ x: tensor([1, 4, W], 3), m: tensor([1, 4, W], 4) }], CUDA);
  assert.equal(c.after[SLN], 1);
  assert.equal(c.after.Add, 2, 'the later bias and residual adds stay; the fused residual add is gone');
  assertClose(c);
});

test('embeddings: words (B, S, W) + learned positions (S, W) broadcast as the skip', async () => {
  const emb: Build = (b, w) => {
    const words = b.input('words', 'float32', ['B', 3, W]);
    const pos = b.gather(w('positions', [8, W]), b.int64([0, 1, 2], [3], 'ids'), 0, 'pos'); // (3, W)
    b.output(b.layerNorm(b.add(words, pos, 'sum'), w('g', [W], 0.1, 1), w('beta', [W], 0.1), 1e-12), 'y', 'float32');
  };
  const c = await compare(emb, [{ words: tensor([2, 3, W], 5) }], CUDA);
  assert.equal(c.after[SLN], 1);
  assertClose(c);
});

test('a plain LayerNormalization (no residual add) and the plain target are left alone', async () => {
  const lone: Build = (b, w) => {
    const x = b.input('x', 'float32', ['B', W]);
    b.output(b.layerNorm(b.add(x, w('shift', [W]), 'shifted'), w('g', [W], 0.1, 1), w('beta', [W], 0.1), 1e-5), 'y', 'float32');
  };
  const c = await compare(lone, [{ x: tensor([2, W], 6) }], CUDA);
  assert.equal(c.after[SLN], undefined);
  assert.equal(c.after.LayerNormalization, 1);
  const p = await compare(lone, [{ x: tensor([2, W], 6) }], { target: 'plain', through: THROUGH });
  assert.deepEqual(p.after, p.before);
});

test('the cpu target keeps the adds and LayerNormalization (its SkipLayerNormalization kernel is the slower one)', async () => {
  const c = await compare(post, [{ x: tensor([2, 3, W], 1), r: tensor([2, 3, W], 2) }], { target: 'cpu', through: THROUGH });
  assert.equal(c.after[SLN], undefined);
  assert.equal(c.after.LayerNormalization, 1);
  assert.equal(c.after.Add, 2);
  assert.equal(c.report.SkipLayerNormalization, undefined);
});
