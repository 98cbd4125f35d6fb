// Memory read bandwidth as onnxruntime sees it: two of its kernels stream a float32 tensor far larger
// than the caches (an input, wrapped without a copy), with the benchmark's thread count, and the
// faster of them, best of a few runs, is the reading in GB/s. The decode bound of the benchmark
// divides the bytes a decode step must read by it, so it must be what this machine's memory can
// deliver, not what one kernel happens to draw from it:
// - ReduceSum over each row (each thread streams whole rows) — the probe alone until 2026-11-29;
//   on the AMD EPYC VMs of runs A-AF it read as much as MLAS's one-row products, but on an Intel
//   Xeon (Emerald Rapids, 260 MiB L3) it read 20-21 GB/s where they read 29-30, and decodes came out
//   at 127 % of "the bound";
// - MatMul of the tensor by a vector of ones (MLAS's SGEMM with one column): the kernel family a
//   decode step spends its time in, reading the same bytes once.
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const valueInfo = (name: string, dims: number[]) => ({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });

/** The ReduceSum probe as graph parts: ReduceSum of a float32 input `x` (rows, cols) over its columns into `y`. */
export function probeGraphParts(rows: number, cols: number) {
  return {
    node: [{ name: 'probe', opType: 'ReduceSum', input: ['x', 'axes'], output: ['y'], attribute: [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] }],
    initializer: [{ name: 'axes', dataType: onnx.TensorProto.DataType.INT64, dims: [1], int64Data: [1] }],
    input: [valueInfo('x', [rows, cols])],
    output: [valueInfo('y', [rows])],
  };
}

/** The MatMul probe as graph parts: `x` (rows, cols) times a (cols, 1) input `ones` into `y`. */
export function matmulProbeGraphParts(rows: number, cols: number) {
  return {
    node: [{ name: 'probe', opType: 'MatMul', input: ['x', 'ones'], output: ['y'] }],
    initializer: [],
    input: [valueInfo('x', [rows, cols]), valueInfo('ones', [cols, 1])],
    output: [valueInfo('y', [rows, 1])],
  };
}

export interface BandwidthReading {
  /** The faster probe's best run, GB/s: the reading. */
  gbs: number;
  /** Each probe's best run, GB/s. */
  reduceSum: number;
  matMul: number;
}

export async function readBandwidthDetail(threads: number, megabytes = 512, runs = 7): Promise<BandwidthReading> {
  const n = Math.floor((megabytes * 2 ** 20) / 4);
  const [R, C] = [1024, Math.floor(n / 1024)];
  const x = new ort.Tensor('float32', new Float32Array(R * C).fill(1), [R, C]);
  const time = async (parts: onnxProto.onnx.IGraphProto, feeds: Record<string, ort.Tensor>): Promise<number> => {
    const model = onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph: { name: 'bw', ...parts } })).finish();
    const s = await ort.InferenceSession.create(model, { intraOpNumThreads: threads, graphOptimizationLevel: 'all' });
    let best = Infinity;
    try {
      for (let i = 0; i < runs; i++) {
        const t = performance.now();
        await s.run(feeds);
        best = Math.min(best, performance.now() - t);
      }
    } finally {
      await s.release();
    }
    return (R * C * 4) / (best / 1000) / 1e9;
  };
  const reduceSum = await time(probeGraphParts(R, C), { x });
  const matMul = await time(matmulProbeGraphParts(R, C), { x, ones: new ort.Tensor('float32', new Float32Array(C).fill(1), [C, 1]) });
  return { gbs: Math.max(reduceSum, matMul), reduceSum, matMul };
}

export async function readBandwidth(threads: number, megabytes = 512, runs = 7): Promise<number> {
  return (await readBandwidthDetail(threads, megabytes, runs)).gbs;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  readBandwidthDetail(Number(process.argv[2] ?? 2)).then((r) => console.log(`${r.gbs.toFixed(2)} GB/s (ReduceSum ${r.reduceSum.toFixed(2)}, MatMul by a vector ${r.matMul.toFixed(2)})`));
}
