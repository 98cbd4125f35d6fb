// How close a one-row float32 product (a decode step's GEMV) comes to the bandwidth probe at the same
// moment. One graph holds the probe's two readers (bench/bandwidth.ts: ReduceSum, and MatMul by a
// vector of ones; the faster is the probe) over the same B bytes and, for each shape
// K x N, about B bytes of MatMul([1, K], [K, N]) products (distinct weights, constant initializers:
// prepacked, as in a decode step; chained when K = N); one session runs it, onnxruntime's profiler times every node,
// and each chain's GB/s is divided by the probe's of the same run. One session, so one thread pool:
// separate sessions in turns would compete with each other's spinning workers. The profiler adds
// its own few microseconds to every node: a chain of 64 x 64 products (~1 us of work each, one
// thread) measures that floor, and each share is also given with the floor taken off every product.
//
//   node --import tsx bench/gemv_vs_probe.ts [--threads 2] [--shapes 768x768,768x3072,...] [--runs 20] [--megabytes 128] [--spinning 1|0]
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { matmulProbeGraphParts, probeGraphParts } from './bandwidth.js';
import { flags } from './flags.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const valueInfo = (name: string, dims: number[]) => ({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
const median = (a: number[]) => a.slice().sort((x, y) => x - y)[a.length >> 1];

function values(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 4294967296 - 0.5) * 0.05;
  }
  return a;
}

async function main(): Promise<void> {
  const a = flags(process.argv.slice(2));
  const threads = Number(a.threads ?? 2);
  const runs = Number(a.runs ?? 20);
  const bytes = Number(a.megabytes ?? 128) * 2 ** 20;
  // The decode steps' products: BLIP-base (768 wide), OPT-350m / the LLaMA layout (1024), square ones up to 4096.
  const shapes = (a.shapes ?? '768x768,768x2304,768x3072,3072x768,1024x1024,1024x3072,1024x4096,4096x1024,2048x2048,4096x4096').split(',').map((s) => s.split('x').map(Number));
  const cols = bytes / 4 / 1024;
  const probeParts = probeGraphParts(1024, cols);
  const mmParts = matmulProbeGraphParts(1024, cols);
  const node: object[] = [...probeParts.node, ...mmParts.node.map((n) => ({ ...n, name: 'probe_mm', output: ['y_mm'] }))];
  const initializer: object[] = [...probeParts.initializer];
  const input = [...probeParts.input, ...mmParts.input.filter((i) => i.name !== 'x')];
  const output = [...probeParts.output, { ...mmParts.output[0], name: 'y_mm' }];
  const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor('float32', new Float32Array(bytes / 4).fill(1), [1024, cols]), ones: new ort.Tensor('float32', new Float32Array(cols).fill(1), [cols, 1]) };
  shapes.unshift([64, 64]); // the floor: see above
  const chains = shapes.map(([k, n], c) => {
    const layers = c === 0 ? 256 : Math.max(1, Math.round(bytes / (k * n * 4)));
    input.push(valueInfo(`c${c}_x0`, [1, k]));
    feeds[`c${c}_x0`] = new ort.Tensor('float32', values(k, 7), [1, k]);
    for (let l = 0; l < layers; l++) {
      initializer.push({ name: `c${c}_w${l}`, dataType: FLOAT, dims: [k, n], rawData: new Uint8Array(values(k * n, 1000 * c + l + 1).buffer) });
      const x = k === n ? `c${c}_x${l}` : `c${c}_x0`;
      node.push({ name: `c${c}_mm${l}`, opType: 'MatMul', input: [x, `c${c}_w${l}`], output: [`c${c}_x${l + 1}`] });
      if (k !== n || l === layers - 1) output.push(valueInfo(`c${c}_x${l + 1}`, [1, n]));
    }
    return { name: `${k} x ${n} (x${layers})`, prefix: `c${c}_mm`, bytes: layers * k * n * 4, layers };
  });
  const model = onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph: { name: 'gemv_vs_probe', node, initializer, input, output } })).finish();
  const prefix = join(tmpdir(), `gemv-vs-probe-${process.pid}`);
  const spinning = a.spinning ?? '1';
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: threads, graphOptimizationLevel: 'all', enableProfiling: true, profileFilePrefix: prefix, extra: { session: { 'intra_op.allow_spinning': spinning } } });
  for (let r = 0; r < runs + 1; r++) await session.run(feeds); // the first run is dropped below
  session.endProfiling();
  await session.release();
  // Kernel time (µs) per run, the dropped first run included, of the probe ('probe') and of each chain (its prefix).
  const totals = new Map<string, number[]>();
  const runOf = new Map<string, number>(); // node name -> runs seen so far
  for (const e of readProfile(prefix)) if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) {
    const name = e.name.slice(0, -'_kernel_time'.length);
    const key = name === 'probe' || name === 'probe_mm' ? name : name.replace(/(?<=_mm)\d+$/, '');
    const r = runOf.get(name) ?? 0;
    runOf.set(name, r + 1);
    const t = totals.get(key) ?? totals.set(key, []).get(key)!;
    t[r] = (t[r] ?? 0) + e.dur;
  }
  const reduceSum = totals.get('probe')!.slice(1).map((us) => bytes / us / 1e3);
  const matMul = totals.get('probe_mm')!.slice(1).map((us) => bytes / us / 1e3);
  const probe = reduceSum.map((g, r) => Math.max(g, matMul[r]));
  console.log(`${threads} threads (spinning ${spinning}), ${runs} runs (after one dropped), probes over ${Math.round(bytes / 2 ** 20)} MB: ReduceSum median ${median(reduceSum).toFixed(1)} GB/s, MatMul by a vector median ${median(matMul).toFixed(1)}; the faster of the two each run: median ${median(probe).toFixed(1)}, highest ${Math.max(...probe).toFixed(1)}`);
  const perRun = (c: (typeof chains)[number]) => totals.get(c.prefix)!.slice(1);
  const floorUs = median(perRun(chains[0])) / chains[0].layers;
  console.log(`profiler floor: a 64 x 64 product is profiled at ${floorUs.toFixed(1)} us (about 1 us of it the product itself, timed without the profiler)`);
  for (const c of chains.slice(1)) {
    const us = perRun(c);
    const gbs = us.map((t) => c.bytes / t / 1e3);
    const share = median(gbs.map((g, r) => g / probe[r]));
    const shareOff = median(us.map((t, r) => c.bytes / Math.max(t - c.layers * floorUs, 1) / 1e3 / probe[r]));
    console.log(`${c.name.padEnd(20)} median ${median(gbs).toFixed(1).padStart(5)} GB/s (${(median(us) / c.layers).toFixed(0).padStart(4)} us a product), highest ${Math.max(...gbs).toFixed(1).padStart(5)}; of the probe in the same run: median ${share.toFixed(2)}, ${shareOff.toFixed(2)} with the floor off`);
  }
}

/** The events of the profile onnxruntime wrote for this prefix (its name ends in a timestamp); the file is removed. */
function readProfile(prefix: string): Array<{ cat: string; name: string; dur: number }> {
  const dir = tmpdir();
  const base = prefix.slice(dir.length + 1);
  const found = readdirSync(dir).filter((f) => f.startsWith(base)).map((f) => join(dir, f));
  if (found.length !== 1) throw new Error(`expected one profile ${prefix}_*.json, found ${found.length}`);
  try {
    return JSON.parse(readFileSync(found[0], 'utf8'));
  } finally {
    rmSync(found[0], { force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
});
