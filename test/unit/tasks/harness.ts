// Shared by the task tests: compile a fixture checkpoint through the library's compile() into a
// temporary directory, and read the fixture's transformers records.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { compile } from '../../../src/index.js';
import { fixturePath, repoRoot } from '../runtime/fixtures.js';

export { fixturePath, repoRoot };

export const GRAPH_OF: Record<string, string> = {
  'blip-caption-a': 'blip-caption',
  'blip-caption-b': 'blip-caption',
  'blip-vqa-a': 'blip-vqa',
  'blip-itm-a': 'blip-itm',
  'blip-itm-b': 'blip-itm',
  'blip2-opt-a': 'blip2-opt',
  'blip2-opt-b': 'blip2-opt',
  'blip2-opt-legacy': 'blip2-opt',
  'blip2-t5-a': 'blip2-t5',
  'blip2-itm-a': 'blip2-itm',
  'instructblip-vicuna-a': 'instructblip-vicuna',
  'instructblip-vicuna-b': 'instructblip-vicuna',
  'instructblip-t5-a': 'instructblip-t5',
  'blip2-llama-a': 'examples/blip2-llama',
};

/** A temporary directory, removed by the returned function. */
export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

const compiled = new Map<string, Promise<string>>();

/** Compile `fixture` with its shipped graph into `root/fixture` (once per root); returns the artifact directory. */
export function compileFixture(fixture: string, root: string): Promise<string> {
  const out = join(root, fixture);
  let p = compiled.get(out);
  if (!p) {
    p = compile(join(repoRoot(), 'graphs', `${GRAPH_OF[fixture]}.blip`), { weights: fixturePath(fixture, 'checkpoint'), out }).then(() => out);
    compiled.set(out, p);
  }
  return p;
}

export interface GenRecord {
  name: string;
  kwargs: Record<string, number | boolean>;
  sequences: number[][];
  new_tokens: number[][];
  prompt_length: number;
  text: string[];
  margins?: number[][];
  sequences_scores?: number[];
}
export interface CaseRecord {
  name: string;
  prompt?: string | string[] | null;
  questions?: string[];
  generation: GenRecord[];
}
export interface Expected {
  images: string[];
  special_ids: Record<string, number | null>;
  generation_config_effective?: Record<string, unknown> | null;
  cases?: CaseRecord[];
  retrieval?: { texts: string[]; itm_probs: number[]; itc_scores: number[] };
}

export function expected(fixture: string): Expected {
  return JSON.parse(readFileSync(fixturePath(fixture, 'expected.json'), 'utf8')) as Expected;
}

/** The fixture's images, as paths, in batch order. */
export function imagesOf(e: Expected): string[] {
  return e.images.map((n) => fixturePath('images', n));
}

/**
 * Runs `fn` with every onnxruntime session run and session creation counted (the prototype's run
 * and InferenceSession.create wrapped, put back afterwards): what a call spent before it failed.
 * `onRun(n)` is called as run n (1-based) starts.
 */
export async function countingSessionWork(fn: () => Promise<void>, onRun?: (n: number) => void): Promise<{ runs: number; opened: number }> {
  const proto = (ort.InferenceSession as unknown as { prototype: unknown }).prototype as { run: (...a: unknown[]) => Promise<unknown> };
  const create = ort.InferenceSession.create;
  const run = proto.run;
  const count = { runs: 0, opened: 0 };
  proto.run = function (this: ort.InferenceSession, ...a: unknown[]) {
    count.runs++;
    onRun?.(count.runs);
    return run.apply(this, a);
  };
  (ort.InferenceSession as { create: unknown }).create = (...a: unknown[]) => (count.opened++, (create as (...b: unknown[]) => unknown).apply(ort.InferenceSession, a));
  try {
    await fn();
  } finally {
    proto.run = run;
    (ort.InferenceSession as { create: unknown }).create = create;
  }
  return count;
}

/** A recorded top-2 logit margin below this is a near tie, which torch and onnxruntime may break apart. */
export const NEAR_TIE = 1e-4;

/** transformers' new tokens of row `b` through the first EOS (what tokenIds holds), and how many of them are certain (before a near tie). */
export function expectedRow(g: { new_tokens: number[][]; margins?: number[][] }, b: number, eos: readonly number[]): { ids: number[]; certain: number } {
  const fresh = g.new_tokens[b]!;
  const cut = fresh.findIndex((t) => eos.includes(t));
  const ids = cut < 0 ? fresh : fresh.slice(0, cut + 1);
  const m = g.margins?.[b] ?? [];
  const low = m.findIndex((x, i) => i < ids.length && x < NEAR_TIE);
  return { ids, certain: low < 0 ? ids.length : low };
}
