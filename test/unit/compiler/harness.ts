// Shared by the compiler tests: compile a shipped graph against an oracle fixture into a temporary
// directory, read the fixture's expected arrays, run ONNX graphs, compare within tolerance.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { loadProgram } from '../../../src/syntax/load.js';
import type { IrModel } from '../../../src/ir/types.js';
import { compile, type CompileResult } from '../../../src/lower/compile.js';
import type { Target } from '../../../src/rewrite/index.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';

export const FIXTURES = 'test/fixtures';

export function loadModel(graph: string): { model: IrModel; text: string } {
  const r = loadProgram(graph);
  assert.ok(r.program, `${graph} does not load: ${r.diagnostics.map((d) => d.message).join('; ')}`);
  return { model: r.program.models[0], text: readFileSync(graph, 'utf8') };
}

export function tmp(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function compileFixture(graph: string, fixture: string, out: string, dtype: 'float32' | 'float16' = 'float32', target: Target = 'plain'): Promise<CompileResult> {
  const { model, text } = loadModel(graph);
  return compile({ model, graphFile: graph, graphText: text, weights: join(FIXTURES, fixture, 'checkpoint'), out, dtype, target });
}

export interface Expected {
  json: Record<string, any>;
  has(name: string): boolean;
  array(name: string): { data: Float32Array; shape: number[] };
}

export function expected(fixture: string): Expected {
  const json = JSON.parse(readFileSync(join(FIXTURES, fixture, 'expected.json'), 'utf8'));
  const st = SafetensorsFile.open(join(FIXTURES, fixture, 'expected.safetensors'));
  const cache = new Map<string, { data: Float32Array; shape: number[] }>();
  return {
    json,
    has: (name) => st.info(name) !== undefined,
    array(name) {
      if (!cache.has(name)) {
        const info = st.info(name);
        assert.ok(info, `${fixture}/expected.safetensors has no "${name}"`);
        cache.set(name, { data: Float32Array.from(st.readFloat32(name)), shape: info.shape });
      }
      return cache.get(name)!;
    },
  };
}

export const i64 = (rows: number[][]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);
export const f32 = (a: { data: Float32Array; shape: number[] }): ort.Tensor => new ort.Tensor('float32', a.data, a.shape);

/** Rows [start, end) of the second axis of a (B, S, ...) array, flattened in batch order. */
export function rows(a: { data: Float32Array; shape: number[] }, start: number, end: number): Float32Array {
  const [B, S] = a.shape;
  const inner = a.data.length / (B * S);
  const out = new Float32Array(B * (end - start) * inner);
  for (let b = 0; b < B; b++) out.set(a.data.subarray((b * S + start) * inner, (b * S + end) * inner), b * (end - start) * inner);
  return out;
}

/** max |a - e|, and the tolerance 1e-4 · max(1, max |e|) it must stay under (the bar). */
export function diff(actual: ArrayLike<number>, want: ArrayLike<number>): { max: number; tol: number } {
  assert.equal(actual.length, want.length, `length ${actual.length}, expected ${want.length}`);
  let max = 0;
  let scale = 1;
  for (let i = 0; i < want.length; i++) {
    max = Math.max(max, Math.abs(actual[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  assert.ok(!Number.isNaN(max), 'NaN in the output');
  return { max, tol: 1e-4 * scale };
}

/** Assert closeness and return the max difference (recorded in the test's diagnostic output). */
export function close(what: string, actual: ArrayLike<number>, want: ArrayLike<number>, diffs?: Record<string, number>): number {
  const { max, tol } = diff(actual, want);
  assert.ok(max <= tol, `${what}: max abs difference ${max.toExponential(3)} exceeds ${tol.toExponential(3)}`);
  if (diffs) diffs[what] = Math.max(diffs[what] ?? 0, max);
  return max;
}

export async function session(path: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path, { graphOptimizationLevel: 'all', intraOpNumThreads: 1 });
}

/** The compile targets every exactness test runs: plain ONNX, and the CPU target's fused operators (src/rewrite/). */
export const TEST_TARGETS: readonly Target[] = ['plain', 'cpu'];
/** Test-name suffix of a target ('' for plain). */
export const targetTag = (t: Target): string => (t === 'plain' ? '' : ` [--target ${t}]`);

/** Empty past key/values (P = 0) for a decoder session. */
export function emptyPast(s: ort.InferenceSession, batch: number, kvHeads: number, headDim: number): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const n of s.inputNames) if (n.startsWith('past.')) out[n] = new ort.Tensor('float32', new Float32Array(0), [batch, kvHeads, 0, headDim]);
  return out;
}

/**
 * position_ids of a step of `ids` after `past` columns, when the decoder takes them (BLIP's text
 * decoder): column numbers, as transformers numbers an unpadded prompt and its forward() numbers a
 * sequence it is given without them.
 */
export function stepPositions(s: ort.InferenceSession, past: number, ids: number[][]): Record<string, ort.Tensor> {
  return s.inputNames.includes('position_ids') ? { position_ids: i64(ids.map((r) => r.map((_, j) => past + j))) } : {};
}

/** present.* outputs of one step as the next step's past.* inputs. */
export function nextPast(o: ort.InferenceSession.OnnxValueMapType): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(o)) if (k.startsWith('present.')) out[k.replace('present.', 'past.')] = v as ort.Tensor;
  return out;
}
