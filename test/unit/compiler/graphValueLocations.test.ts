// A value the graph's own preprocess block wrote and the compile refuses is reported at that
// attribute, not at the output line of the base file the graph extends (graphs/blip2-opt.blip:12).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadProgram } from '../../../src/syntax/load.js';
import { compile } from '../../../src/lower/compile.js';
import { CompileError } from '../../../src/lower/CompileError.js';
import { FIXTURES, tmp } from './harness.js';

test("a preprocess image_size the vision encoder does not take is reported at the preprocess block's attribute", async () => {
  const text = 'import "./blip2-opt.blip"\nmodel m extends blip2_opt {\n  override node vision { image_size: 32 }\n  preprocess { image_size: 64 }\n}\n';
  const loaded = loadProgram('graphs/user.blip', { text });
  assert.ok(loaded.program, loaded.diagnostics.map((d) => d.message).join('; '));
  const out = join(tmp('preprocess-loc-'), 'out');
  let error: unknown;
  await compile({ model: loaded.program.models[0]!, graphFile: 'graphs/user.blip', graphText: text, weights: join(FIXTURES, 'blip2-opt-a', 'checkpoint'), out }).catch((e) => (error = e));
  assert.ok(error instanceof CompileError, String(error));
  assert.ok(!existsSync(out));
  const [p] = error.problems;
  assert.equal(p?.message, "the graph's preprocess block gives 64 for the image size, but the vision encoder takes 32 × 32 images");
  assert.deepEqual([p?.loc?.file, p?.loc?.line, text.slice(p!.loc!.start, p!.loc!.end)], ['graphs/user.blip', 4, '64']);
});
