// `npm run bench` refuses to start where dist/ does not stand for the sources (bench/distFreshness.ts):
// its `blip run` RSS column runs dist/src/cli/main.js while the timings run from source, and the
// bench never builds, so a stale dist/ measured other code than the timings.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { staleDist } from '../../../bench/distFreshness.js';
import { tempDir } from '../tasks/harness.js';

const tmp = tempDir('blip-bench-dist-');
after(() => tmp.remove());

function file(rel: string, mtimeS: number): void {
  const p = join(tmp.dir, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, '');
  utimesSync(p, mtimeS, mtimeS);
}

test('dist/ missing, a built file missing, or one older than its source: refused, naming the file', () => {
  assert.equal(staleDist(tmp.dir), 'dist/ is missing');
  file('src/cli/main.ts', 1000);
  file('runtime/model.ts', 1000);
  file('grammar/cst.generated.d.ts', 5000); // declarations only: nothing built from it
  file('src/ir/schema/ir.schema.json', 1000); // imported JSON: copied
  file('src/ir/notes.md', 5000); // not built
  file('dist/src/cli/main.js', 2000);
  file('dist/src/ir/schema/ir.schema.json', 2000);
  assert.equal(staleDist(tmp.dir), 'dist/runtime/model.js is missing (source runtime/model.ts)');
  file('dist/runtime/model.js', 999);
  assert.equal(staleDist(tmp.dir), 'dist/runtime/model.js is older than runtime/model.ts');
  file('dist/runtime/model.js', 1000);
  assert.equal(staleDist(tmp.dir), undefined);
  file('src/ir/schema/ir.schema.json', 3000);
  assert.equal(staleDist(tmp.dir), 'dist/src/ir/schema/ir.schema.json is older than src/ir/schema/ir.schema.json');
});
