// Property test: whatever a checkpoint's side files say, `compile` either writes a model the runtime
// accepts or stops with a checkpoint / compile error (a BLIP4xxx code, one line of message) before
// writing anything — never an internal error (a TypeError, an Error without a code), never an
// artifact `blip run` would refuse. Seeded mutations of config.json, the processor file and
// generation_config.json of three fixtures (ViT + BERT, ViT + Q-Former + OPT, InstructBLIP + T5):
// a value replaced by one of the wrong type or range, or a key deleted.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../../../src/lower/compile.js';
import { readManifest } from '../../../src/artifact/manifest.js';
import { BlipError } from '../../../src/cli/Command.js';
import { FIXTURES, loadModel, tmp } from './harness.js';
import { mulberry32 } from '../seededRandom.js';

const root = tmp('checkpoint-fuzz-');
after(() => rmSync(root, { recursive: true, force: true }));


const VALUES: unknown[] = [null, -1, 0, 1, 3, 2.5, 1e30, 2 ** 53, '', 'x', 'gelu_new', [], {}, true, [1, 2], [7, 7, 7], { height: 8 }];

/** Every path to a value inside `o` (objects and the first items of lists). */
function paths(o: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = at.length ? [at] : [];
  if (Array.isArray(o)) o.slice(0, 3).forEach((v, i) => out.push(...paths(v, [...at, i])));
  else if (o && typeof o === 'object') for (const [k, v] of Object.entries(o)) out.push(...paths(v, [...at, k]));
  return out;
}

const CASES: Array<[graph: string, fixture: string]> = [
  ['graphs/blip-caption.blip', 'blip-caption-a'],
  ['graphs/blip2-opt.blip', 'blip2-opt-a'],
  ['graphs/instructblip-t5.blip', 'instructblip-t5-a'],
];
const FILES = ['config.json', 'config.json', 'processor_config.json', 'generation_config.json'];

for (const [graph, fixture] of CASES) {
  test(`compile either succeeds with a loadable model or stops with a BLIP4xxx error: ${fixture}`, async () => {
    const { model, text } = loadModel(graph);
    const r = mulberry32(fixture.length * 7919);
    const outcomes = { compiled: 0, refused: 0 };
    for (let i = 0; i < 14; i++) {
      const weights = join(root, `${fixture}-${i}`);
      cpSync(join(FIXTURES, fixture, 'checkpoint'), weights, { recursive: true });
      const file = FILES[Math.floor(r() * FILES.length)];
      const json = JSON.parse(readFileSync(join(weights, file), 'utf8'));
      const all = paths(json);
      const path = all[Math.floor(r() * all.length)];
      let parent = json;
      for (const k of path.slice(0, -1)) parent = parent[k];
      const last = path[path.length - 1];
      const value = VALUES[Math.floor(r() * VALUES.length)];
      if (r() < 0.25 && !Array.isArray(parent)) delete parent[last];
      else parent[last] = value;
      writeFileSync(join(weights, file), JSON.stringify(json));
      const what = `${file} ${JSON.stringify(path)} := ${JSON.stringify(value)} (mutation ${i})`;
      const out = join(root, `${fixture}-${i}-out`);
      try {
        await compile({ model, graphFile: graph, graphText: text, weights, out });
        readManifest(out); // the runtime's own check of what was written
        outcomes.compiled++;
      } catch (e) {
        assert.ok(e instanceof BlipError, `${what}: ${e instanceof Error ? e.stack : String(e)}`);
        assert.match(e.code, /^BLIP4\d{3}$/, `${what}: ${e.code} ${e.message}`);
        assert.ok(!e.message.includes('\n') && !/undefined|NaN|\[object Object\]/.test(e.message), `${what}: ${e.message}`);
        assert.ok(!existsSync(out), `${what}: ${out} was left behind`);
        outcomes.refused++;
      } finally {
        rmSync(weights, { recursive: true, force: true });
        rmSync(out, { recursive: true, force: true });
      }
    }
    // the mutations must exercise both ways out, or the test says little
    assert.ok(outcomes.compiled > 0 && outcomes.refused > 0, JSON.stringify(outcomes));
  });
}
