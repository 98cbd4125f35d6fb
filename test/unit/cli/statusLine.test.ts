// blip run's "loading ..." line: on a terminal only, and gone (erased) before the first output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { statusLine } from '../../../src/cli/commands/run.js';
import { compileFixture, repoRoot, tempDir } from '../tasks/harness.js';

test('statusLine: nothing when not a terminal; one line, erased once', () => {
  const off: string[] = [];
  const s0 = statusLine(false, (x) => off.push(x));
  s0.show('loading');
  s0.clear();
  assert.deepEqual(off, []);
  const on: string[] = [];
  const s1 = statusLine(true, (x) => on.push(x));
  s1.clear(); // nothing shown yet: nothing to erase
  s1.show('loading x');
  s1.clear();
  s1.clear();
  assert.deepEqual(on, ['\rloading x\x1b[K', '\r\x1b[K']);
});

test('blip run on a terminal: the loading line comes first and is erased before the caption', (t) => {
  if (!existsSync('/usr/bin/script')) return t.skip('needs util-linux script(1) for a pseudo-terminal');
  const tmp = tempDir('blip-status-');
  return compileFixture('blip-caption-a', tmp.dir).then((dir) => {
    try {
      const cmd = `'${process.execPath}' '${join(repoRoot(), 'bin', 'blip.js')}' run '${dir}' --image '${join(repoRoot(), 'demo', 'images', 'scene-1000000009.png')}' --max-new-tokens 3`;
      const r = spawnSync('/usr/bin/script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      assert.equal(r.status, 0, r.stderr + r.stdout);
      const m = /^\rloading (.+) \((\d+ MB|[\d.]+ GB) of weights\) and running the first image\.\.\.\x1b\[K\r\x1b\[K(.+)$/s.exec(r.stdout);
      assert.ok(m, JSON.stringify(r.stdout));
      assert.equal(m[1], dir);
      assert.ok(m[3].trim().length > 0, 'a caption follows');
    } finally {
      tmp.remove();
    }
  });
});
