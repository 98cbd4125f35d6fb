// Files with tens of thousands of errors (fuzzing review, round 2): loading one neither overflows
// the stack nor reports an echo twice. (Their load time, quadratic in the errors before 8e9d1f5 —
// 40 s for 1 MB of malformed numbers, now 1.5 s — is measured by hand, not asserted: tests time
// nothing.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { load } from './harness.js';

test("440 KB of '; ' in a model: every error is reported, the stack does not overflow", () => {
  const src = 'model m {\n' + '; '.repeat(220_000) + '\n}\n';
  const r = load({ 'main.blip': src });
  assert.ok(r.diagnostics.length > 100_000, String(r.diagnostics.length));
  assert.ok(r.diagnostics.every((d) => !/internal/.test(d.message)));
});

const count = (src: string): number => load({ 'main.blip': src }).diagnostics.length;

test('600 KB of malformed numbers: one error each, the check that echoes it left out', () => {
  const src = 'model m { node v: vit(image) {\n' + ' image_size: 12layers\n'.repeat(50_000) + '}}\n';
  const ds = load({ 'main.blip': src }).diagnostics;
  assert.equal(ds.filter((d) => d.code === 'BLIP1006').length, 50_000);
  assert.equal(ds.filter((d) => d.code === 'BLIP3002').length, 0); // the type check's echo of each
});

test('600 KB of broken node heads (40k syntax errors in one model) are reported', () => {
  const src = 'model m {\n' + '  node x: vit(\n'.repeat(40_000) + '}\n';
  assert.ok(count(src) >= 40_000);
});
