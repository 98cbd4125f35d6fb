// How close a one-row float32 product (a decode step's GEMV) comes to the bandwidth probe at the same
// moment: chains of MatMul([1, K], [K, K]) over the same bytes as the probe's ReduceSum
// (bench/bandwidth.ts), run in turns, each product's GB/s divided by the probe's of the same round.
// This VM's bandwidth moves within minutes, so only readings taken side by side are compared.
//
//   node --import tsx bench/gemv_vs_probe.ts [--threads 2] [--sizes 768,1024,2048,4096] [--rounds 40] [--megabytes 256]
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { flags } from './flags.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const valueInfo = (name: string, dims: number[]) => ({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
const median = (a: number[]) => a.slice().sort((x, y) => x - y)[a.length >> 1];
const model = (graph: Record<string, unknown>) => onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph: { name: 'g', ...graph } })).finish();

/** Deterministic small values (a product of zeros could be special-cased by nobody, but be safe). */
function values(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 4294967296 - 0.5) * 0.05;
  }
  return a;
}

/** L one-row products chained through distinct K × K weights (constant initializers: prepacked, as in a decode step). */
function gemvChain(k: number, layers: number): Uint8Array {
  const node = [], initializer = [];
  for (let l = 0; l < layers; l++) {
    initializer.push({ name: `w${l}`, dataType: FLOAT, dims: [k, k], rawData: new Uint8Array(values(k * k, l + 1).buffer) });
    node.push({ opType: 'MatMul', input: [`x${l}`, `w${l}`], output: [`x${l + 1}`] });
  }
  return model({ node, initializer, input: [valueInfo('x0', [1, k])], output: [valueInfo(`x${layers}`, [1, k])] });
}

function reduceSum(rows: number, cols: number): Uint8Array {
  return model({
    node: [{ opType: 'ReduceSum', input: ['x', 'axes'], output: ['y'], attribute: [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] }],
    initializer: [{ name: 'axes', dataType: onnx.TensorProto.DataType.INT64, dims: [1], int64Data: [1] }],
    input: [valueInfo('x', [rows, cols])],
    output: [valueInfo('y', [rows])],
  });
}


async function main(): Promise<void> {
  const a = flags(process.argv.slice(2));
  const threads = Number(a.threads ?? 2);
  const rounds = Number(a.rounds ?? 40);
  const bytes = Number(a.megabytes ?? 256) * 2 ** 20;
  const sizes = (a.sizes ?? '768,1024,2048,4096').split(',').map(Number);
  const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: threads, graphOptimizationLevel: 'all' };
  const n = bytes / 4;
  const cases: Array<{ name: string; session: ort.InferenceSession; feeds: Record<string, ort.Tensor>; bytes: number }> = [
    { name: 'probe', session: await ort.InferenceSession.create(reduceSum(1024, n / 1024), options), feeds: { x: new ort.Tensor('float32', new Float32Array(n).fill(1), [1024, n / 1024]) }, bytes },
  ];
  for (const k of sizes) {
    const layers = Math.max(1, Math.round(bytes / (k * k * 4)));
    cases.push({ name: `${k} x ${k} (x${layers})`, session: await ort.InferenceSession.create(gemvChain(k, layers), options), feeds: { x0: new ort.Tensor('float32', values(k, 7), [1, k]) }, bytes: layers * k * k * 4 });
  }
  const gbs = cases.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    // Alternate the order so that neither side always runs right after the other.
    const order = r % 2 ? cases.map((_, i) => cases.length - 1 - i) : cases.map((_, i) => i);
    for (const i of order) {
      // Each session has its own intra-op pool, whose threads spin for a while after a run, and a
      // first run after a switch competes with them (and reads 2-3x slower here): four runs back
      // to back, the first one dropped, the median of the other three kept.
      const ms: number[] = [];
      for (let j = 0; j < 4; j++) {
        const t = performance.now();
        await cases[i].session.run(cases[i].feeds);
        ms.push(performance.now() - t);
      }
      gbs[i].push(cases[i].bytes / (median(ms.slice(1)) / 1000) / 1e9);
    }
  }
  console.log(`${threads} threads, ${rounds} rounds of ${Math.round(bytes / 2 ** 20)} MB each`);
  cases.forEach((c, i) => {
    const ratio = gbs[i].map((g, r) => g / gbs[0][r]);
    console.log(`${c.name.padEnd(22)} median ${median(gbs[i]).toFixed(1).padStart(5)} GB/s, highest ${Math.max(...gbs[i]).toFixed(1).padStart(5)}; of the probe in the same round: median ${median(ratio).toFixed(2)}`);
  });
  for (const c of cases) await c.session.release();
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
});
