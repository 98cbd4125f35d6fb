// Files with a hundred thousand errors (fuzzing review, round 2): loading one neither overflows the
// stack nor takes time quadratic in the number of errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { load } from './harness.js';

test("440 KB of '; ' in a model: every error is reported, the stack does not overflow", () => {
  const src = 'model m {\n' + '; '.repeat(220_000) + '\n}\n';
  const r = load({ 'main.blip': src });
  assert.ok(r.diagnostics.length > 100_000, String(r.diagnostics.length));
  assert.ok(r.diagnostics.every((d) => !/internal/.test(d.message)));
});
