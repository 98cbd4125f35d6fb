// QkvPackFusion: an attention's projections that read the same input become one MatMul over their
// weights side by side and a Split; outputs equal to the decomposed graph's, weights stored once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphView } from '../../../src/rewrite/graph.js';
import { rewriteGraph } from '../../../src/rewrite/index.js';
import { mergeHeads, attend, splitHeads } from '../../../src/lower/transformer.js';
import { assertClose, build, compare, tensor, type Build } from './harness.js';
import { BLOCK_SIZE, dequantizeBlockwise, quantizeBlockwise } from '../../../src/rewrite/MatMulNBitsFusion.js';
import { D, MHA, N, W, decoderStep, decoderStepFeeds as step, llamaStep, llamaSteps, optSelf } from './attentionGraphs.js';

const THROUGH = { through: 'QkvPack' };

const elements = (b: ReturnType<typeof build>) => [...b.weightNames].reduce((n, k) => n + b.weights.spec(k)!.dims.reduce((x, y) => x * y, 1), 0);

/** The packed MatMuls of a rewritten graph: their weights' shapes. */
function packed(b: ReturnType<typeof build>): number[][] {
  const g = new GraphView(b);
  return b.nodes.filter((n) => n.opType === 'MatMul' && g.consumers(n.output![0]!).some((c) => c.opType === 'Split') && g.isWeight(n.input![1]!)).map((n) => g.dims(n.input![1]!)!);
}

test('decoder step: the self-attention q, k, v (one input) packed, the cross-attention query alone is not; outputs equal', async () => {
  const feeds = [
    step(2, 3, 0, 5, 50, [
      [1, 1, 1],
      [0, 1, 1],
    ]),
    step(2, 1, 3, 5, 60, [
      [1, 1, 1, 1],
      [0, 1, 1, 1],
    ]),
  ];
  const c = await compare(decoderStep, feeds, THROUGH);
  assert.equal(c.report.QkvPack, 1);
  assert.equal(c.after.MatMul, 2, 'the packed projection and the cross-attention query');
  assert.equal(c.after.Split, 1);
  assertClose(c, 2e-6);
  const b = build(decoderStep);
  rewriteGraph(b, { target: 'cpu' }, THROUGH.through);
  assert.deepEqual(packed(b), [[W, 3 * W]]);
  const unpacked = build(decoderStep);
  rewriteGraph(unpacked, { target: 'cpu' }, 'UnitScale');
  assert.equal(elements(b), elements(unpacked), 'the packed weight replaces the three');
});

test('the packed weight is each part row by row: [Wq | Wk | Wv]', async () => {
  const parts = build(optSelf());
  rewriteGraph(parts, { target: 'cpu' }, 'UnitScale');
  const g = new GraphView(parts);
  const mha = parts.nodes.find((n) => n.opType === 'MultiHeadAttention')!;
  const ws = await Promise.all([0, 1, 2].map(async (i) => (await parts.weights.spec(g.producer(mha.input![i], 'MatMul')!.input![1]!)!.produce()) as Float32Array));
  const b = build(optSelf());
  rewriteGraph(b, { target: 'cpu' }, THROUGH.through);
  const v = new GraphView(b);
  const mm = b.nodes.find((n) => n.opType === 'MatMul' && v.consumers(n.output![0]!).some((c) => c.opType === 'Split'))!;
  const p = (await b.weights.spec(mm.input![1]!)!.produce()) as Float32Array;
  for (let r = 0; r < W; r++) for (let j = 0; j < 3; j++) assert.deepEqual(p.subarray(r * 3 * W + j * W, r * 3 * W + (j + 1) * W), ws[j].subarray(r * W, (r + 1) * W), `row ${r} part ${j}`);
  const c = await compare(optSelf(), [{ x: tensor([2, 4, W], 13) }], THROUGH);
  assert.equal(c.report.QkvPack, 1);
  assertClose(c, 2e-6);
});

/** A Q-Former's cross-attention: the query from the queries, key and value from the image. */
const crossFromImage: Build = (b, w) => {
  const x = b.input('x', 'float32', ['B', 'S', W]);
  const img = b.input('img', 'float32', ['B', 'L', 2 * W]);
  const lin = (t: typeof x, r: string, K: number) => splitHeads(b, b.linear(t, w(`${r}_w`, [K, W]), w(`${r}_b`, [W]), r), N, D, `${r}_h`);
  b.output(mergeHeads(b, attend(b, lin(x, 'q', W), lin(img, 'k', 2 * W), lin(img, 'v', 2 * W), { divide: Math.sqrt(D) }), W, 'ctx'), 'y', 'float32');
};

test('cross-attention with key and value from one input: those two are packed', async () => {
  const c = await compare(crossFromImage, [{ x: tensor([2, 3, W], 14), img: tensor([2, 7, 2 * W], 15) }], THROUGH);
  assert.equal(c.report.MultiHeadAttention, 1);
  assert.equal(c.report.QkvPack, 1);
  assertClose(c, 2e-6);
  const b = build(crossFromImage);
  rewriteGraph(b, { target: 'cpu' }, THROUGH.through);
  assert.deepEqual(packed(b), [[2 * W, 2 * W]]);
});

test('LLaMA (GroupQueryAttention, rotary q and k, 6 query and 2 key/value heads): packed through the RotaryEmbeddings, outputs equal', async () => {
  const c = await compare(llamaStep(6, 2, 8), llamaSteps(6, 2, 8), THROUGH);
  assert.equal(c.report.GroupQueryAttention, 1);
  assert.equal(c.report.QkvPack, 1);
  assertClose(c, 2e-5);
  const b = build(llamaStep(6, 2, 8));
  rewriteGraph(b, { target: 'cpu' }, THROUGH.through);
  assert.deepEqual(packed(b), [[48, 48 + 16 + 16]]);
  const split = b.nodes.find((n) => n.opType === 'Split')!;
  assert.deepEqual(
    split.output!.map((o) => new GraphView(b).consumers(o!)[0].opType),
    ['RotaryEmbedding', 'RotaryEmbedding', 'GroupQueryAttention'],
  );
});

/** Self-attention whose key weight is also read by another product. */
const sharedKey: Build = (b, w) => {
  const x = b.input('x', 'float32', ['B', 'S', W]);
  const wk = w('k_w', [W, W]);
  const lin = (r: string, weight = w(`${r}_w`, [W, W])) => splitHeads(b, b.linear(x, weight, w(`${r}_b`, [W]), r), N, D, `${r}_h`);
  b.output(mergeHeads(b, attend(b, lin('q'), lin('k', wk), lin('v'), { divide: Math.sqrt(D) }), W, 'ctx'), 'y', 'float32');
  b.output(b.matmul(x, wk, 'reuse'), 'z', 'float32');
};

test('a weight read elsewhere too stays out of the pack (it would be stored twice)', async () => {
  const c = await compare(sharedKey, [{ x: tensor([1, 3, W], 16) }], THROUGH);
  assert.equal(c.report.QkvPack, 1);
  assertClose(c, 2e-6);
  const b = build(sharedKey);
  rewriteGraph(b, { target: 'cpu' }, THROUGH.through);
  assert.deepEqual(packed(b), [[W, 2 * W]], 'query and value only');
});

test('CPU target and float32 only', () => {
  for (const target of ['cuda', 'webgpu'] as const) assert.equal(rewriteGraph(build(decoderStep), { target }).QkvPack, undefined, target);
  assert.equal(rewriteGraph(build(decoderStep, 'float16'), { target: 'cpu' }).QkvPack, undefined);
});

test('--quantize after packing: one MatMulNBits whose blocks are those of each part alone, stacked', async () => {
  for (const quantize of ['int8', 'int4'] as const) {
    const [bits, bs] = [quantize === 'int8' ? 8 : 4, BLOCK_SIZE[quantize]] as const;
    const b = build(decoderStep);
    assert.equal(rewriteGraph(b, { target: 'cpu', quantize }).QkvPack, 1, quantize);
    const g = new GraphView(b);
    const nbits = b.nodes.filter((n) => n.opType === 'MatMulNBits');
    assert.equal(nbits.length, 2, `${quantize}: the packed projection and the cross-attention query`);
    const node = nbits.find((n) => g.consumers(n.output![0]!).some((c) => c.opType === 'Split'))!;
    const spec = (i: number) => b.weights.spec(node.input![i]!)!;
    const K = Number(g.attrInt(node, 'K')), N = Number(g.attrInt(node, 'N'));
    assert.deepEqual([K, N], [W, 3 * W]);
    const q = { packed: (await spec(1).produce()) as Uint8Array, scales: (await spec(2).produce()) as Float32Array, zeros: (await spec(3).produce()) as Uint8Array, kBlocks: Math.ceil(K / bs) };
    const got = dequantizeBlockwise(q, N, K, bits, bs);
    // Each part alone: its (K, W) weight as a MatMul reads it, quantized by output column.
    const parts = build(decoderStep);
    rewriteGraph(parts, { target: 'cpu' }, 'UnitScale');
    const pg = new GraphView(parts);
    const self = parts.nodes.find((n) => n.opType === 'MultiHeadAttention')!;
    let row = 0;
    for (const i of [0, 1, 2]) {
      const w = (await parts.weights.spec(pg.producer(self.input![i], 'MatMul')!.input![1]!)!.produce()) as Float32Array;
      const t = new Float32Array(W * K);
      for (let r = 0; r < K; r++) for (let c = 0; c < W; c++) t[c * K + r] = w[r * W + c];
      const alone = dequantizeBlockwise(quantizeBlockwise(t, W, K, bits, bs), W, K, bits, bs);
      assert.deepEqual(got.subarray(row * K, (row + W) * K), alone, `${quantize}: part ${i}`);
      row += W;
    }
  }
});
