// AttentionBiasFusion: the Adds of the query / key / value biases before a MultiHeadAttention move
// into its bias input (zeros for BNSH keys and values and for a query scaled after its bias); the
// outputs stay equal to the decomposed graph's within float rounding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attend, causalBias, mergeHeads, paddingBias, splitHeads } from '../../../src/lower/transformer.js';
import { GraphView, type Node } from '../../../src/rewrite/graph.js';
import { rewriteGraph } from '../../../src/rewrite/index.js';
import { assertClose, build, compare, ints, tensor, type Build } from './harness.js';

const [W, N, D] = [16, 4, 4];
const MHA = 'com.microsoft.MultiHeadAttention';

const mhaNodes = (b: ReturnType<typeof build>): Node[] => b.nodes.filter((n) => n.opType === 'MultiHeadAttention');

/** A BERT decoder layer: cached self-attention (q, k, v each with a bias) and cross-attention over BNSH keys/values. */
const decoderStep: Build = (b, w) => {
  const x = b.input('x', 'float32', ['B', 'S', W]);
  const mask = b.input('mask', 'int64', ['B', 'T']);
  const past = { key: b.input('past_key', 'float32', ['B', N, 'P', D]), value: b.input('past_value', 'float32', ['B', N, 'P', D]) };
  const cross = { key: b.input('cross_key', 'float32', ['B', N, 'L', D]), value: b.input('cross_value', 'float32', ['B', N, 'L', D]) };
  const crossMask = b.input('cross_mask', 'int64', ['B', 'L']);
  const h = (t: typeof x, r: string) => splitHeads(b, b.linear(t, w(`${r}_w`, [W, W]), w(`${r}_b`, [W]), r), N, D, `${r}_h`);
  const k = b.concat([past.key, h(x, 'k')], 2, 'present_key');
  const v = b.concat([past.value, h(x, 'v')], 2, 'present_value');
  const self = mergeHeads(b, attend(b, h(x, 'q'), k, v, { divide: Math.sqrt(D), bias: causalBias(b, mask, x) }), W, 'self');
  const crossOut = mergeHeads(b, attend(b, h(self, 'cq'), cross.key, cross.value, { divide: Math.sqrt(D), bias: paddingBias(b, crossMask, 'cross_bias') }), W, 'cross');
  b.output(crossOut, 'y', 'float32');
  b.output(k, 'present.key', 'float32');
  b.output(v, 'present.value', 'float32');
};

const step = (B: number, S: number, P: number, L: number, seed: number, maskRows: number[][]) => ({
  x: tensor([B, S, W], seed),
  mask: ints(maskRows),
  past_key: tensor([B, N, P, D], seed + 1),
  past_value: tensor([B, N, P, D], seed + 2),
  cross_key: tensor([B, N, L, D], seed + 3),
  cross_value: tensor([B, N, L, D], seed + 4),
  cross_mask: ints(Array.from({ length: B }, (_, r) => Array.from({ length: L }, (_, j) => (r === 1 && j >= L - 2 ? 0 : 1)))),
});

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
  const c = await compare(decoderStep, feeds);
  assert.equal(c.report.AttentionBias, 2);
  assert.equal(c.after[MHA], 2);
  const onCuda = build(decoderStep); // the same pipeline without this fusion
  rewriteGraph(onCuda, { target: 'cuda' });
  assert.equal(onCuda.nodes.filter((n) => n.opType === 'Add').length - (c.after.Add ?? 0), 4, 'the q, k, v and cross-query bias Adds are gone');
  assertClose(c);

  const b = build(decoderStep);
  rewriteGraph(b, { target: 'cpu' });
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

/** ViT: one packed q/k/v projection with one bias, split in three. */
const vitSelf: Build = (b, w) => {
  const x = b.input('x', 'float32', ['B', 'S', W]);
  const qkv = b.linear(x, w('qkv', [W, 3 * W]), w('qkv_b', [3 * W]), 'qkv');
  const [q, k, v] = b.ops('Split', [qkv], { axis: -1 }, { outputs: ['q', 'k', 'v'] });
  const h = (t: typeof x, r: string) => splitHeads(b, t, N, D, r);
  b.output(mergeHeads(b, attend(b, h(q, 'q'), h(k, 'k'), h(v, 'v'), { scale: D ** -0.5 }), W, 'ctx'), 'y', 'float32');
};

test('ViT: the packed projection’s bias becomes the bias input as it is, the Split reads the MatMul', async () => {
  const c = await compare(vitSelf, [{ x: tensor([2, 5, W], 1) }]);
  assert.equal(c.report.AttentionBias, 1);
  assert.equal(c.after.Add, undefined);
  assertClose(c);
  const b = build(vitSelf);
  rewriteGraph(b, { target: 'cpu' });
  const [mha] = mhaNodes(b);
  assert.equal(mha.input![3], 'w.qkv_b');
  assert.equal(new GraphView(b).producer(b.nodes.find((n) => n.opType === 'Split')!.input![0])?.opType, 'MatMul');
});

/** OPT: the query is scaled after its bias, (x·Wq + bq)·D^-½; key and value are plain linear layers. */
const optSelf: Build = (b, w) => {
  const x = b.input('x', 'float32', ['B', 'S', W]);
  const lin = (r: string) => b.linear(x, w(`${r}_w`, [W, W]), w(`${r}_b`, [W]), r);
  const q = splitHeads(b, b.mul(lin('q'), b.scalar(D ** -0.5), 'q_scaled'), N, D, 'q_h');
  b.output(mergeHeads(b, attend(b, q, splitHeads(b, lin('k'), N, D, 'k_h'), splitHeads(b, lin('v'), N, D, 'v_h'), {}), W, 'ctx'), 'y', 'float32');
};

test('OPT: a query scaled after its bias keeps its Add; key and value biases move, the query part is zeros', async () => {
  const c = await compare(optSelf, [{ x: tensor([2, 3, W], 4) }]);
  assert.equal(c.report.AttentionBias, 1);
  assert.equal(c.after.Add, 1, 'the query bias Add stays (a Mul follows it)');
  assertClose(c);
  const b = build(optSelf);
  rewriteGraph(b, { target: 'cpu' });
  const bias = (await b.weights.spec(mhaNodes(b)[0].input![3]!)!.produce()) as Float32Array;
  assert.ok(bias.subarray(0, W).every((x) => x === 0));
  assert.ok(bias.subarray(W).some((x) => x !== 0));
});

test('only on the CPU target: on CUDA the Adds stay', () => {
  const b = build(decoderStep);
  const report = rewriteGraph(b, { target: 'cuda' });
  assert.equal(report.MultiHeadAttention, 2);
  assert.equal(report.AttentionBias, undefined);
  for (const n of mhaNodes(b)) assert.ok(!n.input![3], 'no bias input');
});
