// UnitScaleFusion: a MultiHeadAttention's score scale moves into its query projection's weight and
// bias, and the kernel's scale becomes 1 (MLAS's one-row kernels need alpha = 1); outputs equal to
// the decomposed graph's within float rounding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphView } from '../../../src/rewrite/graph.js';
import { rewriteGraph } from '../../../src/rewrite/index.js';
import { mergeHeads, attend, splitHeads } from '../../../src/lower/transformer.js';
import { assertClose, build, compare, tensor, type Build } from './harness.js';
import { D, MHA, N, W, decoderStep, decoderStepFeeds as step, groupedDecoderStep, groupedDecoderStepFeeds, optSelf } from './attentionGraphs.js';

const feeds = [
  step(2, 3, 0, 5, 30, [
    [1, 1, 1],
    [0, 1, 1],
  ]),
  step(2, 1, 3, 5, 40, [
    [1, 1, 1, 1],
    [0, 1, 1, 1],
  ]),
];

const mhas = (b: ReturnType<typeof build>) => b.nodes.filter((n) => n.opType === 'MultiHeadAttention');

test('decoder step (self- and cross-attention, scores / √D): both kernels at scale 1, weights and query biases scaled, outputs equal', async () => {
  const c = await compare(decoderStep, feeds, { through: 'UnitScale' });
  assert.equal(c.report.UnitScale, 2);
  assert.equal(c.after[MHA], 2);
  assertClose(c, 2e-6);

  const before = build(decoderStep);
  rewriteGraph(before, { target: 'cpu' }, 'AttentionBias');
  const after = build(decoderStep);
  rewriteGraph(after, { target: 'cpu' }, 'UnitScale');
  const [gb, ga] = [new GraphView(before), new GraphView(after)];
  const s = Math.fround(1 / Math.sqrt(D));
  for (const [i, mha] of mhas(after).entries()) {
    const old = mhas(before)[i];
    assert.equal(gb.attrFloat(old, 'scale'), s);
    assert.equal(ga.attrFloat(mha, 'scale'), 1);
    const weight = async (g: GraphView, n: typeof mha) => (await g.b.weights.spec(g.producer(n.input![0], 'MatMul')!.input![1]!)!.produce()) as Float32Array;
    const [w0, w1] = [await weight(gb, old), await weight(ga, mha)];
    assert.deepEqual(w1, w0.map((x) => x * s), 'Wq·s, rounded to float32 once');
    const [b0, b1] = [(await gb.b.weights.spec(old.input![3]!)!.produce()) as Float32Array, (await ga.b.weights.spec(mha.input![3]!)!.produce()) as Float32Array];
    assert.deepEqual(b1.subarray(0, W), b0.subarray(0, W).map((x) => x * s), 'the query bias scaled');
    assert.deepEqual(b1.subarray(W), b0.subarray(W), 'key and value biases as they were');
  }
  const elements = (b: ReturnType<typeof build>) => [...b.weightNames].reduce((n, k) => n + b.weights.spec(k)!.dims.reduce((x, y) => x * y, 1), 0);
  assert.equal(elements(after), elements(before), 'the scaled copies replace the originals');
});

test('a cross-attention query put in groups of beams (QueryGroups): its weight scaled under the Reshape, kernel at scale 1, outputs equal', async () => {
  const c = await compare(groupedDecoderStep, [groupedDecoderStepFeeds(2, 3, 1, 4, 5, 90), groupedDecoderStepFeeds(1, 2, 3, 0, 6, 95)], { through: 'UnitScale' });
  assert.equal(c.report.UnitScale, 2);
  assertClose(c, 2e-6);
  const b = build(groupedDecoderStep);
  rewriteGraph(b, { target: 'cpu' }, 'UnitScale');
  const g = new GraphView(b);
  for (const mha of mhas(b)) assert.equal(g.attrFloat(mha, 'scale'), 1);
});

test("OPT's query scale, moved into the kernel by QueryScaleFusion, ends in the weights", async () => {
  const c = await compare(optSelf(0.3), [{ x: tensor([2, 4, W], 11) }], { through: 'UnitScale' });
  assert.equal(c.report.QueryScale, 1);
  assert.equal(c.report.UnitScale, 1);
  assert.equal(c.after.Mul, undefined);
  assertClose(c, 2e-6);
});

/** Self-attention whose query weight is also read by another product. */
const sharedQuery: Build = (b, w) => {
  const x = b.input('x', 'float32', ['B', 'S', W]);
  const wq = w('q_w', [W, W]);
  const lin = (r: string, weight = w(`${r}_w`, [W, W])) => splitHeads(b, b.linear(x, weight, w(`${r}_b`, [W]), r), N, D, `${r}_h`);
  b.output(mergeHeads(b, attend(b, lin('q', wq), lin('k'), lin('v'), { divide: Math.sqrt(D) }), W, 'ctx'), 'y', 'float32');
  b.output(b.matmul(x, wq, 'reuse'), 'z', 'float32');
};

test('a query weight read elsewhere too is left as it is (a scaled copy would be stored beside it)', async () => {
  const c = await compare(sharedQuery, [{ x: tensor([1, 3, W], 12) }], { through: 'UnitScale' });
  assert.equal(c.report.MultiHeadAttention, 1);
  assert.equal(c.report.UnitScale, undefined);
  assertClose(c, 2e-6);
});

test('CPU target and float32 only', () => {
  const b = build(decoderStep);
  const report = rewriteGraph(b, { target: 'cuda' });
  assert.equal(report.UnitScale, undefined);
  const g = new GraphView(b);
  for (const n of mhas(b)) assert.notEqual(g.attrFloat(n, 'scale'), 1);
  const h = build(decoderStep, 'float16');
  assert.equal(rewriteGraph(h, { target: 'cpu' }).UnitScale, undefined);
});
