// The pictures in docs/graphs/ are what `blip graph --format svg` draws today (scripts/draw-graphs.mjs
// redraws them after a graph or src/draw/ changes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

test('docs/graphs/*.svg are up to date', () => {
  const r = spawnSync(process.execPath, ['scripts/draw-graphs.mjs', '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});
