// BiasGeluFusion: GraphBuilder.gelu (exact erf GELU) after a biased linear layer becomes
// com.microsoft.BiasGelu, elsewhere com.microsoft.Gelu.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertClose, compare, tensor, type Build } from './harness.js';

const W = 16;
const BIAS_GELU = { through: 'BiasGelu' };

test('dense + GELU -> BiasGelu(MatMul, bias)', async () => {
  const mlp: Build = (b, w) => {
    const x = b.input('x', 'float32', ['B', 'S', W]);
    b.output(b.gelu(b.linear(x, w('fc1', [W, 2 * W], 1), w('fc1_b', [2 * W], 1), 'fc1')), 'y', 'float32');
  };
  const c = await compare(mlp, [{ x: tensor([2, 3, W], 1, 2) }], BIAS_GELU);
  assert.equal(c.before.Erf, 1);
  assert.deepEqual(c.after, { MatMul: 1, 'com.microsoft.BiasGelu': 1 });
  assertClose(c, 1e-5);
});

test('GELU of a value that is not a biased linear output (or whose sum is read elsewhere) -> Gelu', async () => {
  const plain: Build = (b, w) => {
    const x = b.input('x', 'float32', ['B', W]);
    const h = b.linear(x, w('fc', [W, W], 1), w('fc_b', [W], 1), 'fc');
    b.output(b.gelu(h), 'y', 'float32');
    b.output(h, 'h', 'float32'); // the biased sum is an output too: the bias cannot move into the GELU
    b.output(b.gelu(x, 'gelu_x'), 'z', 'float32');
  };
  const c = await compare(plain, [{ x: tensor([3, W], 2, 3) }], BIAS_GELU);
  assert.equal(c.after['com.microsoft.Gelu'], 2);
  assert.equal(c.after['com.microsoft.BiasGelu'], undefined);
  assert.equal(c.after.Erf, undefined);
  assertClose(c, 1e-5);
});

test('tanh GELU is not the erf pattern and stays as it is', async () => {
  const tanh: Build = (b) => b.output(b.geluTanh(b.input('x', 'float32', ['B', W])), 'y', 'float32');
  const c = await compare(tanh, [{ x: tensor([2, W], 3) }], BIAS_GELU);
  assert.deepEqual(c.after, c.before);
});
