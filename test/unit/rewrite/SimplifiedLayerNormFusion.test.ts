// SimplifiedLayerNormFusion: transformer.ts's rmsNorm (LLaMA, T5) becomes SimplifiedLayerNormalization
// (ai.onnx domain, as onnxruntime registers it), and with the residual add before it
// com.microsoft.SkipSimplifiedLayerNormalization whose 4th output carries the residual.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmsNorm } from '../../../src/lower/transformer.js';
import { assertClose, compare, tensor, type Build } from './harness.js';

const W = 16;
const SLN = 'SimplifiedLayerNormalization';

test('RMSNorm alone -> SimplifiedLayerNormalization', async () => {
  const lone: Build = (b, w) => b.output(rmsNorm(b, b.input('x', 'float32', ['B', 'S', W]), w('g', [W], 0.1, 1), 1e-6), 'y', 'float32');
  const c = await compare(lone, [{ x: tensor([2, 3, W], 1) }], { through: SLN });
  assert.equal(c.before.ReduceMean, 1);
  assert.deepEqual(c.after, { SimplifiedLayerNormalization: 1 });
  assertClose(c);
});

test('residual + RMSNorm, the sum read by the next residual -> SkipSimplifiedLayerNormalization with the sum output', async () => {
  const layer: Build = (b, w) => {
    const h = b.input('h', 'float32', ['B', 'S', W]);
    const a = b.input('a', 'float32', ['B', 'S', W]);
    const r = b.add(h, a, 'attn_residual');
    const y = rmsNorm(b, r, w('g', [W], 0.1, 1), 1e-5, 'post_attention_layernorm');
    b.output(b.add(r, b.linear(y, w('mlp', [W, W]), undefined, 'mlp'), 'mlp_residual'), 'y', 'float32');
  };
  const c = await compare(layer, [{ h: tensor([1, 4, W], 2), a: tensor([1, 4, W], 3) }], { through: SLN });
  assert.equal(c.after['com.microsoft.SkipSimplifiedLayerNormalization'], 1);
  assert.equal(c.after.Add, 1, 'only the next residual add is left');
  assert.equal(c.after.ReduceMean, undefined);
  assertClose(c);
});

// float16 graphs (cuda, webgpu): rmsNorm casts to float32 for the statistics and rounds the
// normalised value to float16 before the weight; the fused float16 kernels take the float16 value
// and weight and round once. One float16 ulp at 2: the outputs here are O(1).
const HALF_ULP = 2 ** -9;

test('float16: the Cast-wrapped RMSNorm -> float16 SimplifiedLayerNormalization; with its residual add -> SkipSimplifiedLayerNormalization', async () => {
  const lone: Build = (b, w) => {
    const x = b.cast(b.input('x', 'float32', ['B', 'S', W]), 'float16', 'x16');
    b.output(b.cast(rmsNorm(b, x, w('g', [W], 0.1, 1), 1e-6), 'float32', 'y32'), 'y', 'float32');
  };
  const layer: Build = (b, w) => {
    const h = b.cast(b.input('h', 'float32', ['B', 'S', W]), 'float16', 'h16');
    const a = b.cast(b.input('a', 'float32', ['B', 'S', W]), 'float16', 'a16');
    const r = b.add(h, a, 'attn_residual');
    const y = rmsNorm(b, r, w('g', [W], 0.1, 1), 1e-5, 'post_attention_layernorm');
    b.output(b.cast(b.add(r, b.linear(y, w('mlp', [W, W]), undefined, 'mlp'), 'mlp_residual'), 'float32', 'y32'), 'y', 'float32');
  };
  for (const target of ['webgpu', 'cuda'] as const) {
    const c = await compare(lone, [{ x: tensor([2, 3, W], 1) }], { target, floatType: 'float16', through: SLN });
    assert.equal(c.before.ReduceMean, 1);
    assert.deepEqual(c.after, { Cast: 2, SimplifiedLayerNormalization: 1 }, `${target}: only the test's own input and output casts are left`);
    assertClose(c, HALF_ULP);
    const s = await compare(layer, [{ h: tensor([1, 4, W], 2), a: tensor([1, 4, W], 3) }], { target, floatType: 'float16', through: SLN });
    assert.equal(s.after['com.microsoft.SkipSimplifiedLayerNormalization'], 1, target);
    assert.equal(s.after.Add, 1, `${target}: only the next residual add is left`);
    assert.equal(s.after.ReduceMean, undefined);
    assertClose(s, 4 * HALF_ULP);
  }
  // the cpu target keeps float16 graphs as they are (a float16 artifact is for disk there)
  const cpu = await compare(lone, [{ x: tensor([2, 3, W], 1) }], { target: 'cpu', floatType: 'float16', through: SLN });
  assert.deepEqual(cpu.after, cpu.before);
});
