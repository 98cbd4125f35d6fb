// AttentionBiasFusion: the Adds of the query / key / value biases before a MultiHeadAttention move
// into its bias input (zeros for BNSH keys and values); the
// outputs stay equal to the decomposed graph's within float rounding. The CPU pipeline runs up to
// this fusion (the later ones rescale and pack what it produced).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphView, type Node } from '../../../src/rewrite/graph.js';
import { rewriteGraph } from '../../../src/rewrite/index.js';
import { assertClose, build, compare, tensor } from './harness.js';
import { attend, mergeHeads, splitHeads } from '../../../src/lower/transformer.js';
import { MHA, W, decoderStep, decoderStepFeeds as step, groupedDecoderStep, groupedDecoderStepFeeds, optSelf, vitSelf } from './attentionGraphs.js';

const mhaNodes = (b: ReturnType<typeof build>): Node[] => b.nodes.filter((n) => n.opType === 'MultiHeadAttention');

test('decoder step: the self-attention q/k/v biases and the cross-attention query bias go into MultiHeadAttention, outputs equal', async () => {
  const feeds = [
    step(2, 3, 0, 5, 10, [
      [1, 1, 1],
      [0, 1, 1],
    ]),
    step(2, 1, 3, 5, 20, [
      [1, 1, 1, 1],
      [0, 1, 1, 1],
    ]),
  ];
  const c = await compare(decoderStep, feeds, { through: 'AttentionBias' });
  assert.equal(c.report.AttentionBias, 2);
  assert.equal(c.after[MHA], 2);
  const onCuda = build(decoderStep); // the same pipeline without this fusion
  rewriteGraph(onCuda, { target: 'cuda' });
  assert.equal(onCuda.nodes.filter((n) => n.opType === 'Add').length - (c.after.Add ?? 0), 4, 'the q, k, v and cross-query bias Adds are gone');
  assertClose(c);

  const b = build(decoderStep);
  rewriteGraph(b, { target: 'cpu' }, 'AttentionBias');
  const [self, cross] = mhaNodes(b);
  const g = new GraphView(b);
  for (const n of [self, cross]) {
    assert.ok(n.input![3], 'a bias input');
    assert.deepEqual(g.dims(n.input![3]), [3 * W]);
    for (const i of [0, 1, 2]) assert.notEqual(g.producer(n.input![i])?.opType, 'Add');
  }
  // The cross-attention's key and value are BNSH graph inputs: their part of the bias is zeros.
  const bias = (await b.weights.spec(cross.input![3]!)!.produce()) as Float32Array;
  assert.ok(bias.subarray(0, W).some((x) => x !== 0), 'the query bias is there');
  assert.ok(bias.subarray(W).every((x) => x === 0), 'zeros for the BNSH key and value');
});

test('a cross-attention query put in groups of beams (QueryGroups) gives its bias too: the Reshape reads the bare product; outputs equal', async () => {
  const feeds = [groupedDecoderStepFeeds(2, 3, 1, 4, 5, 70), groupedDecoderStepFeeds(1, 2, 3, 0, 6, 80)];
  const c = await compare(groupedDecoderStep, feeds, { through: 'AttentionBias' });
  assert.equal(c.report.AttentionBias, 2);
  assertClose(c);
  const b = build(groupedDecoderStep);
  rewriteGraph(b, { target: 'cpu' }, 'AttentionBias');
  const g = new GraphView(b);
  const cross = mhaNodes(b)[1];
  const grouped = g.producer(cross.input![0], 'Reshape');
  assert.ok(grouped, 'the query is the grouping Reshape');
  assert.equal(g.producer(grouped.input![0])?.opType, 'MatMul', 'which reads the product without its bias');
  const bias = (await b.weights.spec(cross.input![3]!)!.produce()) as Float32Array;
  assert.deepEqual(bias.subarray(0, W), (await b.weights.spec('w.cq_b')!.produce()) as Float32Array);
});

test('a Reshape that changes the width of the rows keeps the bias Add where it is', () => {
  const b = build((b, w) => {
    const x = b.input('x', 'float32', ['B', 'S', 2 * W]);
    const q = b.reshape(b.linear(x, w('q_w', [2 * W, 2 * W]), w('q_b', [2 * W]), 'q'), [0, -1, W], 'q_rows'); // (B, 2S, W)
    const kv = b.linear(b.reshape(x, [0, -1, W]), w('kv_w', [W, W]), undefined, 'kv');
    const h = (t: typeof x, r: string) => splitHeads(b, t, 4, W / 4, r);
    b.output(mergeHeads(b, attend(b, h(q, 'qh'), h(kv, 'kh'), h(kv, 'vh'), { scale: 0.5 }), W, 'ctx'), 'y', 'float32');
  });
  const report = rewriteGraph(b, { target: 'cpu' }, 'AttentionBias');
  assert.equal(report.MultiHeadAttention, 1);
  assert.equal(report.AttentionBias, undefined);
});

test('ViT: the packed projection’s bias becomes the bias input as it is, the Split reads the MatMul', async () => {
  const c = await compare(vitSelf, [{ x: tensor([2, 5, W], 1) }], { through: 'AttentionBias' });
  assert.equal(c.report.AttentionBias, 1);
  assert.equal(c.after.Add, undefined);
  assertClose(c);
  const b = build(vitSelf);
  rewriteGraph(b, { target: 'cpu' }, 'AttentionBias');
  const [mha] = mhaNodes(b);
  assert.equal(mha.input![3], 'w.qkv_b');
  assert.equal(new GraphView(b).producer(b.nodes.find((n) => n.opType === 'Split')!.input![0])?.opType, 'MatMul');
});

test('OPT: with its query scale moved into the kernel (QueryScaleFusion), all three biases move', async () => {
  const c = await compare(optSelf(), [{ x: tensor([2, 3, W], 4) }], { through: 'AttentionBias' });
  assert.deepEqual(c.report, { MultiHeadAttention: 1, QueryScale: 1, AttentionBias: 1 });
  assert.equal(c.after.Add, undefined);
  assertClose(c);
  const b = build(optSelf());
  rewriteGraph(b, { target: 'cpu' }, 'AttentionBias');
  const bias = (await b.weights.spec(mhaNodes(b)[0].input![3]!)!.produce()) as Float32Array;
  for (const i of [0, 1, 2]) assert.ok(bias.subarray(i * W, (i + 1) * W).some((x) => x !== 0), `part ${i}`);
});

test('only on the CPU target: on CUDA the Adds stay', () => {
  const b = build(decoderStep);
  const report = rewriteGraph(b, { target: 'cuda' });
  assert.equal(report.MultiHeadAttention, 2);
  assert.equal(report.AttentionBias, undefined);
  for (const n of mhaNodes(b)) assert.ok(!n.input![3], 'no bias input');
});
