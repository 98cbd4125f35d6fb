// QueryScaleFusion: a query multiplied by a constant before MultiHeadAttention (OPT's D^-½) gives
// the factor to the kernel's scale attribute; outputs equal to the decomposed graph's within float
// rounding (the fused graph also takes the kernel's path with a bias: 2e-7 on O(1) outputs). The
// CPU pipeline runs up to this fusion (UnitScaleFusion later moves the kernel's scale into the weights).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphView } from '../../../src/rewrite/graph.js';
import { rewriteGraph } from '../../../src/rewrite/index.js';
import { assertClose, build, compare, tensor } from './harness.js';
import { D, W, optSelf } from './attentionGraphs.js';

const mhaScale = (fn: ReturnType<typeof optSelf>, target: 'cpu' | 'cuda' = 'cpu') => {
  const b = build(fn);
  const report = rewriteGraph(b, { target }, 'QueryScale');
  const mha = b.nodes.find((n) => n.opType === 'MultiHeadAttention')!;
  return { report, scale: new GraphView(b).attrFloat(mha, 'scale'), muls: b.nodes.filter((n) => n.opType === 'Mul').length };
};

test('OPT query scale D^-½: the Mul goes, the kernel scales by it, outputs equal', async () => {
  const c = await compare(optSelf(), [{ x: tensor([2, 3, W], 7) }, { x: tensor([1, 5, W], 8) }], { through: 'QueryScale' });
  assert.equal(c.report.QueryScale, 1);
  assert.equal(c.before.Mul, 1);
  assert.equal(c.after.Mul, undefined);
  assertClose(c, 1e-6);
  const { scale } = mhaScale(optSelf());
  assert.equal(scale, D ** -0.5);
});

test('a factor that is not a power of two: scale multiplied in, outputs equal within rounding', async () => {
  const c = await compare(optSelf(0.3), [{ x: tensor([2, 4, W], 9) }], { through: 'QueryScale' });
  assert.equal(c.report.QueryScale, 1);
  assertClose(c, 1e-6);
  assert.equal(mhaScale(optSelf(0.3)).scale, Math.fround(0.3));
});

test('a scale the scores already had is multiplied, not replaced', async () => {
  const c = await compare(optSelf(0.3, 0.7), [{ x: tensor([2, 4, W], 10) }], { through: 'QueryScale' });
  assert.equal(c.report.QueryScale, 1);
  assertClose(c, 1e-6);
  assert.equal(mhaScale(optSelf(0.3, 0.7)).scale, Math.fround(Math.fround(0.7) * Math.fround(0.3)));
});

test('CPU target only: on CUDA the Mul stays and the kernel scale is 1', () => {
  const r = mhaScale(optSelf(), 'cuda');
  assert.equal(r.report.QueryScale, undefined);
  assert.equal(r.muls, 1);
  assert.equal(r.scale, 1);
});
