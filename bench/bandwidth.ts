// Memory read bandwidth as onnxruntime sees it: ReduceSum over a float32 tensor far larger than the
// caches (an input, wrapped without a copy), with the benchmark's thread count; the best of a few
// runs, in GB/s. The decode bound of the benchmark divides the bytes a decode step must read by it.
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';

const { onnx } = onnxProto;

/** The probe as graph parts: ReduceSum of a float32 input `x` (rows, cols) over its columns (each thread streams whole rows) into `y`. */
export function probeGraphParts(rows: number, cols: number) {
  const vi = (name: string, dims: number[]) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
  return {
    node: [{ name: 'probe', opType: 'ReduceSum', input: ['x', 'axes'], output: ['y'], attribute: [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] }],
    initializer: [{ name: 'axes', dataType: onnx.TensorProto.DataType.INT64, dims: [1], int64Data: [1] }],
    input: [vi('x', [rows, cols])],
    output: [vi('y', [rows])],
  };
}

export async function readBandwidth(threads: number, megabytes = 512, runs = 7): Promise<number> {
  const n = Math.floor((megabytes * 2 ** 20) / 4);
  const [R, C] = [1024, n / 1024];
  const model = onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph: { name: 'bw', ...probeGraphParts(R, C) } })).finish();
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: threads, graphOptimizationLevel: 'all' });
  const x = new Float32Array(n).fill(1);
  const feeds = { x: new ort.Tensor('float32', x, [R, C]) };
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await s.run(feeds);
    best = Math.min(best, performance.now() - t);
  }
  await s.release();
  return (n * 4) / (best / 1000) / 1e9;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  readBandwidth(Number(process.argv[2] ?? 2)).then((gbs) => console.log(`${gbs.toFixed(2)} GB/s`));
}
