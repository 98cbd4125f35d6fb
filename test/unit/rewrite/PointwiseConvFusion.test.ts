// PointwiseConvFusion: in the graph run once per token ("decoder"), products with a weight become
// 1×1 Convs over the rows (bias Adds folded in), equal to the MatMul graph's outputs, with
// onnxruntime's optimizations off and on (its NCHWc pass then takes them); other graphs, shared or
// odd-sized weights and --quantize are left alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rewriteGraph } from '../../../src/rewrite/index.js';
import { GraphView } from '../../../src/rewrite/graph.js';
import { assertClose, build, compare, open, tensor, type Build } from './harness.js';
import { decoderStep, decoderStepFeeds as step, groupedDecoderStep, groupedDecoderStepFeeds } from './attentionGraphs.js';

/** x (B, S, 32) -> linear 32→64 (+b) -> Relu -> linear 64→32 (+b); a 32→20 linear beside it; a weight read twice. */
const mlp: Build = (b, w) => {
  const x = b.input('x', 'float32', ['B', 'S', 32]);
  const h = b.op('Relu', [b.linear(x, w('fc1', [32, 64]), w('fc1_b', [64]), 'fc1')]);
  b.output(b.linear(h, w('fc2', [64, 32]), w('fc2_b', [32]), 'fc2'), 'y', 'float32');
  b.output(b.linear(x, w('odd', [32, 20]), undefined, 'odd'), 'odd', 'float32');
  const shared = w('shared', [32, 32]);
  b.output(b.add(b.matmul(x, shared), b.matmul(b.op('Relu', [x]), shared)), 'shared', 'float32');
};

const mlpFeeds = [{ x: tensor([2, 3, 32], 1) }, { x: tensor([8, 1, 32], 2) }, { x: tensor([1, 40, 32], 3) }];

test('decoder graph: products with a weight become Convs, their bias Adds folded; outputs equal', async () => {
  const c = await compare(mlp, mlpFeeds, { through: 'PointwiseConv', graphName: 'decoder' });
  assert.equal(c.report.PointwiseConv, 2, 'fc1 and fc2; not the 20-wide one, not the shared weight');
  assert.equal(c.before.MatMul, 5);
  assert.equal(c.after.MatMul, 3);
  assert.equal(c.after.Conv, 2);
  assert.equal(c.before.Add - c.after.Add, 2, 'both bias Adds are the Convs’ bias inputs');
  assertClose(c, 2e-6);
  const b = build(mlp, 'float32', undefined, 'decoder');
  rewriteGraph(b, { target: 'cpu' }, 'PointwiseConv');
  const g = new GraphView(b);
  for (const conv of b.nodes.filter((n) => n.opType === 'Conv')) {
    const [K, N] = [g.dims(conv.input![1]!)![1], g.dims(conv.input![1]!)![0]];
    assert.deepEqual(g.dims(conv.input![1]!), [N, K, 1, 1]);
    assert.equal(conv.input!.length, 3, 'bias');
  }
  assert.ok(!b.weightNames.has('w.fc1') && b.weightNames.has('w.fc1:pointwise'), 'the transposed weight replaces the original');
});

test('with onnxruntime’s optimizations on (its NCHWc pass) the outputs stay those of the MatMul graph', async () => {
  const plain = build(mlp, 'float32', undefined, 'decoder');
  const fused = build(mlp, 'float32', undefined, 'decoder');
  rewriteGraph(fused, { target: 'cpu' }, 'PointwiseConv');
  const [a, b] = [await open(plain), await open(fused, 'all')];
  try {
    for (const f of mlpFeeds) {
      const [x, y] = [await a.session.run(f), await b.session.run(f)];
      for (const k of Object.keys(x)) {
        assert.deepEqual(y[k].dims, x[k].dims);
        const [p, q] = [x[k].data as Float32Array, y[k].data as Float32Array];
        for (let i = 0; i < p.length; i++) assert.ok(Math.abs(p[i] - q[i]) <= 2e-6, `${k}[${i}]: ${p[i]} vs ${q[i]}`);
      }
    }
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('a decoder step: the packed q/k/v and the cross query become Convs after the attention fusions; outputs equal', async () => {
  const feeds = [
    step(2, 3, 0, 5, 70, [
      [1, 1, 1],
      [0, 1, 1],
    ]),
    step(2, 1, 3, 5, 80, [
      [1, 1, 1, 1],
      [0, 1, 1, 1],
    ]),
  ];
  const c = await compare(decoderStep, feeds, { through: 'PointwiseConv', graphName: 'decoder' });
  assert.equal(c.report.PointwiseConv, 2);
  assert.equal(c.after.MatMul, undefined);
  assert.equal(c.after['com.microsoft.MultiHeadAttention'], 2);
  assertClose(c, 2e-6);
});

/** Nodes of the rewritten graph that read a product's leading dimensions (Shape) or build its output shape (Concat). */
const shapeNodes = (b: ReturnType<typeof build>) => ({
  lead: b.nodes.filter((n) => n.output!.some((o) => o.includes('pointwise_lead'))).length,
  shapes: b.nodes.filter((n) => n.output!.some((o) => o.includes('pointwise_shape'))).length,
});

test('one Shape for all the products of a step: attention, a Split, residual Adds and the grouped cross-attention keep the rows; outputs equal', async () => {
  const feeds = [groupedDecoderStepFeeds(2, 3, 1, 4, 5, 110), groupedDecoderStepFeeds(1, 2, 3, 0, 6, 120)];
  const c = await compare(groupedDecoderStep, feeds, { through: 'PointwiseConv', graphName: 'decoder' });
  assert.equal(c.report.PointwiseConv, 4, 'packed q/k/v, self output, cross query, cross output');
  assertClose(c, 2e-6);
  const b = build(groupedDecoderStep, 'float32', undefined, 'decoder');
  rewriteGraph(b, { target: 'cpu' }, 'PointwiseConv');
  assert.deepEqual(shapeNodes(b), { lead: 1, shapes: 2 }, 'the rows of x; widths 3W and W');
});

test('values whose rows are not known to be the same get their own Shape: a broadcast Add, a Reshape; outputs equal', async () => {
  const fn: Build = (b, w) => {
    const x = b.input('x', 'float32', ['B', 'S', 32]);
    const p = b.input('p', 'float32', [1, 'S', 32]); // broadcast over the batch
    const sum = b.add(x, p, 'sum'); // (B, S, 32): not p's rows
    b.output(b.linear(sum, w('a', [32, 32]), undefined, 'a'), 'a', 'float32');
    b.output(b.linear(p, w('b', [32, 32]), undefined, 'b'), 'b', 'float32');
    const rows = b.reshape(x, [-1, 2, 32], 'regrouped'); // (B·S/2, 2, 32)
    b.output(b.linear(b.op('Relu', [rows]), w('c', [32, 32]), undefined, 'c'), 'c', 'float32');
    b.output(b.linear(b.mul(b.op('Relu', [x]), x), w('d', [32, 32]), undefined, 'd'), 'd', 'float32'); // x's rows
    b.output(b.linear(x, w('e', [32, 32]), undefined, 'e'), 'e', 'float32');
  };
  const c = await compare(fn, [{ x: tensor([2, 4, 32], 5), p: tensor([1, 4, 32], 6) }], { through: 'PointwiseConv', graphName: 'decoder' });
  assert.equal(c.report.PointwiseConv, 5);
  assertClose(c, 2e-6);
  const b = build(fn, 'float32', undefined, 'decoder');
  rewriteGraph(b, { target: 'cpu' }, 'PointwiseConv');
  assert.deepEqual(shapeNodes(b), { lead: 4, shapes: 4 }, 'sum, p, the regrouped rows; x shared by d and e');
});

test('left alone: graphs other than the decoder, other targets, float16, --quantize', async () => {
  for (const [name, opts, ft] of [
    ['encode', { target: 'cpu' }, 'float32'],
    ['decoder', { target: 'cuda' }, 'float32'],
    ['decoder', { target: 'cpu' }, 'float16'],
    ['decoder', { target: 'cpu', quantize: 'int8' }, 'float32'],
  ] as const) {
    const b = build(mlp, ft, undefined, name);
    const report = rewriteGraph(b, opts);
    assert.equal(report.PointwiseConv, undefined, `${name} ${JSON.stringify(opts)} ${ft}`);
    assert.equal(b.nodes.filter((n) => n.opType === 'Conv').length, 0);
  }
});
