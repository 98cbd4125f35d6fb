// Shared by the rewrite tests: build a small graph twice with the lowering helpers the node kinds
// use (same seeded weights), rewrite one copy, write both as ONNX with their weights, run both
// with onnxruntime-node on the CPU with graph optimizations disabled (so that what runs is what
// was written, not ORT's own fusions) and compare.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, type Value } from '../../../src/lower/GraphBuilder.js';
import { WeightStore } from '../../../src/lower/WeightStore.js';
import { encodeModel, toModelProto } from '../../../src/lower/emitOnnx.js';
import { foldOutputIdentities, opHistogram, pruneDead } from '../../../src/lower/graphCheck.js';
import { rewriteGraph, type RewriteOptions, type RewriteReport } from '../../../src/rewrite/index.js';

/** Deterministic N(0, sd)-ish values (sum of uniforms) from a seed. */
export function seeded(n: number, seed: number, sd = 0.5, mean = 0): Float32Array {
  let s = seed >>> 0 || 1;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return Float32Array.from({ length: n }, () => mean + sd * (u() + u() + u() - 1.5) * 2);
}

export type Build = (b: GraphBuilder, w: (key: string, dims: number[], sd?: number, mean?: number) => Value) => void;

/** `transform` may replace a weight's data (e.g. by its quantized-dequantized copy). */
export function build(fn: Build, floatType: 'float32' | 'float16' = 'float32', transform?: (data: Float32Array, dims: number[]) => Float32Array, graphName = 'test'): GraphBuilder {
  const b = new GraphBuilder(graphName, new WeightStore(floatType));
  let seed = 1;
  fn(b, (key, dims, sd = 0.3, mean = 0) => {
    const s = seed++;
    const n = dims.reduce((a, d) => a * d, 1);
    const data = () => seeded(n, 1000 + s, sd, mean);
    return b.weight({ key: `w.${key}`, dims, produce: () => (transform ? transform(data(), dims) : data()) });
  });
  pruneDead(b);
  foldOutputIdentities(b); // as the compile driver does before rewriting
  return b;
}

/** Write a graph and its weights, open it on the CPU with optimizations off. */
export async function open(b: GraphBuilder, level: 'disabled' | 'all' = 'disabled'): Promise<{ session: ort.InferenceSession; dispose(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'blip-rewrite-'));
  const referenced = new Set(b.weightNames);
  await b.weights.writeAll(join(dir, 'weights.bin'), referenced);
  writeFileSync(join(dir, 'model.onnx'), encodeModel(toModelProto(b, b.weights, { dataFile: 'weights.bin', producerVersion: 'test' })));
  const session = await ort.InferenceSession.create(join(dir, 'model.onnx'), { graphOptimizationLevel: level, intraOpNumThreads: 1 });
  return { session, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Compared {
  before: Record<string, number>;
  after: Record<string, number>;
  report: RewriteReport;
  /** Max abs difference per output, over every feed set. */
  diffs: Record<string, number>;
}

/**
 * What a comparison rewrites: the pipeline of `target` (default cpu) through the fusion under test,
 * so that fusions added after it in PIPELINES (src/rewrite/index.ts) do not change what a test sees.
 */
export interface Scope extends Partial<RewriteOptions> {
  /** The fusion under test (its `name`); the pipeline stops after it. */
  through: string;
  floatType?: 'float32' | 'float16';
  /** The graph's name ('decoder' for the fusions of the graph run once per token). */
  graphName?: string;
}

/**
 * Build the graph twice, rewrite the second for `scope`, run both on every feed set and return
 * the op histograms and the max differences (asserting the outputs' shapes agree).
 */
export async function compare(fn: Build, feeds: Array<Record<string, ort.Tensor>>, scope: Scope): Promise<Compared> {
  const { through, floatType = 'float32', graphName = 'test', target = 'cpu', quantize } = scope;
  const plain = build(fn, floatType, undefined, graphName);
  const fused = build(fn, floatType, undefined, graphName);
  const before = opHistogram(fused.nodes);
  const report = rewriteGraph(fused, { target, quantize }, through);
  const after = opHistogram(fused.nodes);
  const [a, b] = [await open(plain), await open(fused)];
  const diffs: Record<string, number> = {};
  try {
    for (const f of feeds) {
      const [x, y] = [await a.session.run(f), await b.session.run(f)];
      for (const k of Object.keys(x)) {
        assert.deepEqual(y[k].dims, x[k].dims, `${k}: shape`);
        const [p, q] = [x[k].data as Float32Array, y[k].data as Float32Array];
        let m = 0;
        for (let i = 0; i < p.length; i++) m = Math.max(m, Math.abs(p[i] - q[i]));
        assert.ok(!Number.isNaN(m), `${k}: NaN`);
        diffs[k] = Math.max(diffs[k] ?? 0, m);
      }
    }
  } finally {
    a.dispose();
    b.dispose();
  }
  return { before, after, report, diffs };
}

export const tensor = (dims: number[], seed: number, sd = 1): ort.Tensor => new ort.Tensor('float32', seeded(dims.reduce((a, d) => a * d, 1), seed, sd), dims);
export const ints = (rows: number[][]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);

/** Assert every output within `tol` (absolute; the graphs' values are O(1)). */
export function assertClose(c: Compared, tol = 1e-5): void {
  for (const [k, d] of Object.entries(c.diffs)) assert.ok(d <= tol, `${k}: fused and unfused differ by ${d.toExponential(3)} (> ${tol})`);
}
