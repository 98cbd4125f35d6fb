// The bench's memory-bandwidth probe (bench/bandwidth.ts): two onnxruntime kernels stream the same
// tensor and the faster one is the reading. Both must read every element once (here: each gives the
// row sums), and the reading must be the higher of the two — never a sum or an average.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { matmulProbeGraphParts, probeGraphParts, readBandwidthDetail } from '../../../bench/bandwidth.js';

const { onnx } = onnxProto;

async function runParts(parts: onnxProto.onnx.IGraphProto, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const model = onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph: { name: 'bw', ...parts } })).finish();
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  try {
    const out = await s.run(feeds);
    return out.y.data as Float32Array;
  } finally {
    await s.release();
  }
}

test('both probe graphs read every element: each gives the row sums', async () => {
  const [R, C] = [8, 96];
  const x = Float32Array.from({ length: R * C }, (_, i) => ((i * 37) % 11) - 5);
  const sums = Array.from({ length: R }, (_, r) => x.subarray(r * C, (r + 1) * C).reduce((a, b) => a + b, 0));
  const xt = new ort.Tensor('float32', x, [R, C]);
  const viaReduce = await runParts(probeGraphParts(R, C), { x: xt });
  const viaMatMul = await runParts(matmulProbeGraphParts(R, C), { x: xt, ones: new ort.Tensor('float32', new Float32Array(C).fill(1), [C, 1]) });
  assert.deepEqual(Array.from(viaReduce), sums);
  assert.deepEqual(Array.from(viaMatMul), sums);
});

test('the reading is the faster probe', async () => {
  const r = await readBandwidthDetail(1, 8, 2);
  assert.ok(r.reduceSum > 0 && r.matMul > 0, JSON.stringify(r));
  assert.equal(r.gbs, Math.max(r.reduceSum, r.matMul));
});
