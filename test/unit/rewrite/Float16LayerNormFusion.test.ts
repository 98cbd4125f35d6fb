// Float16LayerNormFusion: a float16 graph's LayerNorm, cast to float32 and back around it (as
// blocks.ts lowers it, torch's float32 statistics), becomes one float16 LayerNormalization on the
// cuda and webgpu targets, which SkipLayerNormFusion then joins with the residual and bias adds.
// Both graphs run on the CPU provider here (it has the float16 kernels too); they agree to float16
// rounding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GraphBuilder, Value } from '../../../src/lower/GraphBuilder.js';
import { assertClose, compare, tensor, type Build } from './harness.js';

const W = 16;
const SLN = 'com.microsoft.SkipLayerNormalization';
const F16LN = 'Float16LayerNormalization';
const WEBGPU = { target: 'webgpu', through: F16LN } as const;
/** One float16 ulp at 2, the largest magnitude the normalised outputs reach here. */
const HALF_ULP = 2 ** -9;

/** blocks.ts layerNorm() in a float16 graph. */
function halfLayerNorm(b: GraphBuilder, x: Value, g: Value, beta: Value, eps: number, role: string): Value {
  const y = b.layerNorm(b.cast(x, 'float32', `${role}_f32`), b.cast(g, 'float32', `${role}_g32`), b.cast(beta, 'float32', `${role}_b32`), eps, role);
  return b.cast(y, 'float16', `${role}_f16`);
}

const lone: Build = (b, w) => {
  const x = b.cast(b.input('x', 'float32', ['B', 'S', W]), 'float16', 'x16');
  b.output(b.cast(halfLayerNorm(b, x, w('g', [W], 0.1, 1), w('beta', [W], 0.1), 1e-5, 'ln'), 'float32', 'y32'), 'y', 'float32');
};

test('float16: Cast → LayerNormalization → Cast becomes one float16 LayerNormalization (its weight casts gone)', async () => {
  const c = await compare(lone, [{ x: tensor([2, 3, W], 1) }], { ...WEBGPU, floatType: 'float16' });
  assert.equal(c.report.Float16LayerNormalization, 1);
  assert.equal(c.after.LayerNormalization, 1);
  assert.equal(c.before.Cast, 6);
  assert.equal(c.after.Cast, 2, 'only the test graph\'s own input and output casts are left');
  assertClose(c, HALF_ULP);
});

test('float16 pre-norm block: the residual add and the dense bias join it in SkipLayerNormalization', async () => {
  const pre: Build = (b, w) => {
    const x = b.cast(b.input('x', 'float32', ['B', 'S', W]), 'float16', 'x16');
    const m = b.cast(b.input('m', 'float32', ['B', 'S', W]), 'float16', 'm16');
    const r = b.add(b.linear(m, w('dense', [W, W]), w('dense_b', [W]), 'dense'), x, 'residual');
    const h = halfLayerNorm(b, r, w('g', [W], 0.1, 1), w('beta', [W], 0.1), 1e-6, 'ln');
    const out = b.add(b.linear(h, w('fc', [W, W]), w('fc_b', [W]), 'fc'), r, 'out');
    b.output(b.cast(out, 'float32', 'y32'), 'y', 'float32');
  };
  for (const target of ['webgpu', 'cuda'] as const) {
    const c = await compare(pre, [{ x: tensor([1, 4, W], 3), m: tensor([1, 4, W], 4) }], { target, floatType: 'float16', through: 'SkipLayerNormalization' });
    assert.equal(c.after[SLN], 1, `${target}: ${JSON.stringify(c.report)} ${JSON.stringify(c.after)}`);
    assert.equal(c.after.LayerNormalization, undefined, target);
    assert.equal(c.after.Add, 2, `${target}: the later bias and residual adds stay`);
    // the sum is rounded to float16 once in the fused kernel, twice (bias, then residual) before
    assertClose(c, 4 * HALF_ULP);
  }
});

test('left alone: float32 graphs, the cpu and plain targets, a norm whose float32 output is read elsewhere', async () => {
  const f32 = await compare(lone, [{ x: tensor([2, 3, W], 1) }], WEBGPU);
  assert.equal(f32.report.Float16LayerNormalization, undefined);
  for (const target of ['cpu', 'plain'] as const) {
    const c = await compare(lone, [{ x: tensor([2, 3, W], 1) }], { target, floatType: 'float16', through: F16LN });
    assert.deepEqual(c.after, c.before, target);
  }
  const shared: Build = (b, w) => {
    const x = b.cast(b.input('x', 'float32', ['B', W]), 'float16', 'x16');
    const y = b.layerNorm(b.cast(x, 'float32', 'ln_f32'), b.cast(w('g', [W], 0.1, 1), 'float32', 'g32'), b.cast(w('beta', [W], 0.1), 'float32', 'b32'), 1e-5, 'ln');
    b.output(b.cast(b.cast(y, 'float16', 'y16'), 'float32', 'y32'), 'y', 'float32');
    b.output(y, 'y_float', 'float32');
  };
  const c = await compare(shared, [{ x: tensor([2, W], 2) }], { ...WEBGPU, floatType: 'float16' });
  assert.equal(c.report.Float16LayerNormalization, undefined);
});
