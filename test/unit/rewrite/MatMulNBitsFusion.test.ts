// MatMulNBitsFusion (--quantize int8|int4): block quantization round trip, and the rewritten graph
// (com.microsoft.MatMulNBits over the packed weights) equal to the float graph run with the
// dequantized weights — which checks the packing (nibble order, zero points, scales) against
// onnxruntime's kernel — and close to the float graph.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BLOCK_SIZE, dequantizeBlockwise, quantizeBlockwise } from '../../../src/rewrite/MatMulNBitsFusion.js';
import { rewriteGraph } from '../../../src/rewrite/index.js';
import { opHistogram } from '../../../src/lower/graphCheck.js';
import { build, open, seeded, tensor, type Build } from './harness.js';

test('block quantization: every weight within half a step of its block, padding of a short last block', () => {
  for (const [bits, bs] of [
    [4, 32],
    [8, 128],
    [4, 16],
  ] as const) {
    const [N, K] = [5, 2 * bs + 7]; // K not a multiple of the block
    const w = seeded(N * K, 42, 0.5);
    w[3] = 2.5; // an outlier widens one block only
    const q = quantizeBlockwise(w, N, K, bits, bs);
    assert.equal(q.kBlocks, 3);
    assert.equal(q.packed.length, N * 3 * ((bs * bits) / 8));
    const back = dequantizeBlockwise(q, N, K, bits, bs);
    for (let n = 0; n < N; n++)
      for (let k = 0; k < K; k++) {
        const step = q.scales[n * 3 + Math.floor(k / bs)];
        assert.ok(Math.abs(back[n * K + k] - w[n * K + k]) <= step / 2 + 1e-7, `${bits}-bit: w[${n},${k}] ${w[n * K + k]} -> ${back[n * K + k]} (step ${step})`);
      }
  }
});

// The block's range always includes 0, as onnxruntime's MLAS blockwise quantizer makes it
// (q4_dq.cpp: min = min(min, 0), max = max(max, 0)): a block all of one sign still has every weight
// within half a step (its zero point at the end of the range), and a zero weight comes back exactly 0.
test('block quantization: a block all positive, one all negative, one of zeros and positives: within half a step, zeros exact', () => {
  for (const [bits, bs] of [
    [4, 32],
    [8, 128],
  ] as const) {
    const K = 3 * bs;
    const w = new Float32Array(K);
    for (let k = 0; k < bs; k++) {
      w[k] = 0.5 + (0.5 * k) / (bs - 1); // 0.5 .. 1.0
      w[bs + k] = -1 + (0.5 * k) / (bs - 1); // -1.0 .. -0.5
      w[2 * bs + k] = k % 3 === 0 ? 0 : 0.25 + (0.5 * k) / bs;
    }
    const q = quantizeBlockwise(w, 1, K, bits, bs);
    const back = dequantizeBlockwise(q, 1, K, bits, bs);
    for (let k = 0; k < K; k++) {
      const step = q.scales[Math.floor(k / bs)];
      assert.ok(Math.abs(back[k] - w[k]) <= step / 2 + 1e-7, `${bits}-bit block ${Math.floor(k / bs)}: w[${k}] ${w[k]} -> ${back[k]} (step ${step})`);
      if (w[k] === 0) assert.equal(back[k], 0, `${bits}-bit: w[${k}] 0 -> ${back[k]}`);
    }
  }
});

const [K, N, V] = [64, 48, 40];
/** A linear layer with bias, then a tied LM head (Gemm, transB) as the decoders lower it. */
const model: Build = (b, w) => {
  const x = b.input('x', 'float32', ['B', K]);
  const h = b.linear(x, w('fc', [K, N]), w('fc_b', [N], 0.1), 'fc');
  const emb = w('embeddings', [V, N]);
  b.output(b.op('Gemm', [h, emb, w('head_b', [V], 0.1)], { transB: 1 }, { name: 'logits' }), 'logits', 'float32');
  b.output(b.gather(emb, b.int64([1, 3], [2], 'ids'), 0, 'tokens'), 'tokens', 'float32'); // the embeddings are read as floats too
};

for (const quantize of ['int8', 'int4'] as const) {
  test(`--quantize ${quantize}: MatMulNBits equals the float graph over the dequantized weights`, async () => {
    const bits = quantize === 'int4' ? 4 : 8;
    const bs = BLOCK_SIZE[quantize];
    const qdq = (data: Float32Array, dims: number[]) => {
      if (dims.length !== 2) return data;
      // MatMul weights are (K, N): quantized per output column; the head's (V, N) per row.
      const [rows, cols] = dims[0] === K ? [dims[1], dims[0]] : [dims[0], dims[1]];
      const t = dims[0] === K ? transpose(data, dims[0], dims[1]) : data;
      const back = dequantizeBlockwise(quantizeBlockwise(t, rows, cols, bits, bs), rows, cols, bits, bs);
      return dims[0] === K ? transpose(back, dims[1], dims[0]) : back;
    };
    // accuracy_level 0 (the GPU targets' setting; the kernel runs on the CPU here): float arithmetic
    // over the dequantized weights, so the packing can be checked exactly.
    const quantized = build(model);
    const report = rewriteGraph(quantized, { target: 'cuda', quantize });
    assert.deepEqual(report, { MatMulNBits: 2 });
    assert.deepEqual(opHistogram(quantized.nodes), { 'com.microsoft.MatMulNBits': 2, Gather: 1 });
    assert.ok([...quantized.weightNames].some((n) => n.endsWith('embeddings')), 'the float embeddings stay for the Gather');
    const reference = build(model, 'float32', qdq);
    const float = build(model);
    const [q, r, f] = [await open(quantized), await open(reference), await open(float)];
    try {
      const feeds = { x: tensor([3, K], 7) };
      const [yq, yr, yf] = [await q.session.run(feeds), await r.session.run(feeds), await f.session.run(feeds)];
      const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
      const lq = yq.logits.data as Float32Array;
      assert.ok(maxDiff(lq, yr.logits.data as Float32Array) < 1e-4, `against dequantized weights: ${maxDiff(lq, yr.logits.data as Float32Array)}`);
      // Against the float weights: a real but bounded error, relative to the logits' scale.
      const lf = yf.logits.data as Float32Array;
      const scale = lf.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const rel = maxDiff(lq, lf) / scale;
      assert.ok(rel > 0 && rel < (bits === 4 ? 0.2 : 0.02), `against float weights: max error ${rel} of the largest logit`);
      // The CPU target: accuracy_level 4 (int8 activations, MLAS's integer kernels), still close to float.
      const cpu = build(model);
      rewriteGraph(cpu, { target: 'cpu', quantize });
      const levels = cpu.nodes.filter((n) => n.opType === 'MatMulNBits').map((n) => Number(n.attribute!.find((a) => a.name === 'accuracy_level')?.i));
      assert.deepEqual(levels, [4, 4]);
      const c = await open(cpu);
      try {
        const lc = (await c.session.run(feeds)).logits.data as Float32Array;
        const relCpu = maxDiff(lc, lf) / scale;
        assert.ok(relCpu < (bits === 4 ? 0.2 : 0.03), `accuracy_level 4 against float weights: ${relCpu}`);
      } finally {
        c.dispose();
      }
    } finally {
      [q, r, f].forEach((s) => s.dispose());
    }
  });
}

function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = src[i * cols + j];
  return out;
}

// Plain builds run where onnxruntime's CPU provider is the default: they get the CPU target's
// accuracy_level 4 (int8 at level 0 is onnxruntime's dequantizing path, 7-10x slower per BLIP-base
// decode step than level 4, docs/performance.md); cuda and webgpu leave it unset (their kernels).
test('--quantize: accuracy_level 4 for plain and --target cpu builds, unset for cuda and webgpu', () => {
  for (const [target, want] of [['plain', 4], ['cpu', 4], ['cuda', undefined], ['webgpu', undefined]] as const) {
    const g = build(model);
    rewriteGraph(g, { target, quantize: 'int8' });
    const levels = g.nodes.filter((n) => n.opType === 'MatMulNBits').map((n) => n.attribute!.find((a) => a.name === 'accuracy_level')?.i);
    assert.deepEqual(levels.map((l) => (l === undefined || l === null ? undefined : Number(l))), [want, want], target);
  }
});
