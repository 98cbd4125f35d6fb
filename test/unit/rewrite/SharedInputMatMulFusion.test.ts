// SharedInputMatMulFusion: linear layers reading one activation become one MatMul over the
// concatenated weights (and biases) and a Split; the outputs are the unfused ones exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertClose, build, compare, tensor, type Build } from './harness.js';
import { rewriteGraph } from '../../../src/rewrite/index.js';

const W = 16;

test('Q, K, V projections with biases -> MatMul + Add + Split (3 outputs)', async () => {
  const qkv: Build = (b, w) => {
    const x = b.input('x', 'float32', ['B', 'S', W]);
    for (const p of ['q', 'k', 'v']) b.output(b.linear(x, w(p, [W, W]), w(`${p}_b`, [W]), p), `y_${p}`, 'float32');
  };
  const c = await compare(qkv, [{ x: tensor([2, 3, W], 1) }, { x: tensor([1, 1, W], 2) }]);
  assert.deepEqual(c.before, { MatMul: 3, Add: 3 });
  assert.deepEqual(c.after, { MatMul: 1, Add: 1, Split: 1 });
  assert.equal(c.report.SharedInputMatMul, 1);
  assertClose(c, 0); // the same dot products in the same order: bit-identical
});

test('unequal widths without biases (gate and up of a gated MLP) -> one MatMul + Split', async () => {
  const gated: Build = (b, w) => {
    const x = b.input('x', 'float32', ['B', W]);
    const g = b.matmul(x, w('gate', [W, 3 * W]), 'gate');
    const u = b.matmul(x, w('up', [W, 2 * W]), 'up');
    b.output(g, 'y_gate', 'float32');
    b.output(u, 'y_up', 'float32');
  };
  const c = await compare(gated, [{ x: tensor([3, W], 3) }]);
  assert.deepEqual(c.after, { MatMul: 1, Split: 1 });
  assertClose(c, 0);
});

test('a member without a bias: the Split takes over the MatMul outputs and the Adds stay', async () => {
  const mixed: Build = (b, w) => {
    const x = b.input('x', 'float32', ['B', W]);
    b.output(b.linear(x, w('a', [W, W]), w('a_b', [W]), 'a'), 'y_a', 'float32');
    b.output(b.linear(x, w('c', [W, W]), undefined, 'c'), 'y_c', 'float32');
  };
  const c = await compare(mixed, [{ x: tensor([2, W], 4) }]);
  assert.deepEqual(c.after, { MatMul: 1, Split: 1, Add: 1 });
  assertClose(c, 0);
});

test('left alone: a single MatMul, different inputs, a weight read elsewhere, plain target', async () => {
  const alone: Build = (b, w) => {
    const x = b.input('x', 'float32', ['B', W]);
    const z = b.input('z', 'float32', ['B', W]);
    const shared = w('shared', [W, W]);
    b.output(b.matmul(x, w('p', [W, W]), 'p'), 'y_p', 'float32');
    b.output(b.matmul(z, w('r', [W, W]), 'r'), 'y_r', 'float32'); // another activation
    b.output(b.matmul(x, shared, 's1'), 'y_s1', 'float32'); // same activation as p, but its weight is read twice
    b.output(b.matmul(z, shared, 's2'), 'y_s2', 'float32');
  };
  const c = await compare(alone, [{ x: tensor([2, W], 5), z: tensor([2, W], 6) }]);
  assert.equal(c.report.SharedInputMatMul, undefined);
  assert.deepEqual(c.after, c.before);
  const g = build(alone);
  assert.deepEqual(rewriteGraph(g, { target: 'plain' }), {});
});

test('the packed weight is one initializer made from the sources; the sources are no longer stored', () => {
  const qkv: Build = (b, w) => {
    const x = b.input('x', 'float32', ['B', W]);
    for (const p of ['q', 'k', 'v']) b.output(b.linear(x, w(p, [W, W]), w(`${p}_b`, [W]), p), `y_${p}`, 'float32');
  };
  const g = build(qkv);
  rewriteGraph(g, { target: 'cpu' });
  const names = [...g.weightNames].sort();
  assert.deepEqual(names, ['packed(w.q,w.k,w.v)', 'packed(w.q_b,w.k_b,w.v_b)']);
  assert.deepEqual(g.weights.spec('packed(w.q,w.k,w.v)')!.dims, [W, 3 * W]);
});
