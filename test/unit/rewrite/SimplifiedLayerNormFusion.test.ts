// SimplifiedLayerNormFusion: transformer.ts's rmsNorm (LLaMA, T5) becomes SimplifiedLayerNormalization
// (ai.onnx domain, as onnxruntime registers it), and with the residual add before it
// com.microsoft.SkipSimplifiedLayerNormalization whose 4th output carries the residual.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmsNorm } from '../../../src/lower/transformer.js';
import { assertClose, compare, tensor, type Build } from './harness.js';

const W = 16;

test('RMSNorm alone -> SimplifiedLayerNormalization', async () => {
  const lone: Build = (b, w) => b.output(rmsNorm(b, b.input('x', 'float32', ['B', 'S', W]), w('g', [W], 0.1, 1), 1e-6), 'y', 'float32');
  const c = await compare(lone, [{ x: tensor([2, 3, W], 1) }]);
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
  const c = await compare(layer, [{ h: tensor([1, 4, W], 2), a: tensor([1, 4, W], 3) }]);
  assert.equal(c.after['com.microsoft.SkipSimplifiedLayerNormalization'], 1);
  assert.equal(c.after.Add, 1, 'only the next residual add is left');
  assert.equal(c.after.ReduceMean, undefined);
  assertClose(c);
});
