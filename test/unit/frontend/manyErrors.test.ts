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

/** Loads `src` and returns the diagnostics and the seconds it took. */
function timed(src: string): { n: number; s: number } {
  const t = performance.now();
  const r = load({ 'main.blip': src });
  return { n: r.diagnostics.length, s: (performance.now() - t) / 1000 };
}

test('600 KB of malformed numbers (50k lexical errors, each echoed by a check) loads in seconds, not a minute', () => {
  const src = 'model m { node v: vit(image) {\n' + ' a: 12layers\n'.repeat(50_000) + '}}\n';
  const { n, s } = timed(src);
  assert.ok(n >= 50_000, String(n));
  // (each lexical error was compared with every other diagnostic: 15 s here; now under 1.5 s)
  assert.ok(s < 5, `${s.toFixed(1)} s`);
});

test('600 KB of broken node heads (40k syntax errors in one model) loads in seconds', () => {
  const src = 'model m {\n' + '  node x: vit(\n'.repeat(40_000) + '}\n';
  const { n, s } = timed(src);
  assert.ok(n >= 40_000, String(n));
  // (every diagnostic was looked for among every damaged span: 8 s here; now about 2 s)
  assert.ok(s < 5, `${s.toFixed(1)} s`);
});
