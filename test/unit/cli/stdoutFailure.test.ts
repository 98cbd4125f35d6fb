// bin/blip.js when stdout refuses the output (a full disk): one line on stderr and exit 1, not a
// silent exit 0 with the output lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../runtime/fixtures.js';

const BIN = join(repoRoot(), 'bin', 'blip.js');

test('bin/blip.js: a write to stdout that fails (> /dev/full) is one line on stderr and exit 1', (t) => {
  if (!existsSync('/dev/full')) return t.skip('needs /dev/full');
  const full = openSync('/dev/full', 'w');
  try {
    for (const argv of [['version'], ['--help'], ['graph', 'graphs/blip2-opt.blip', '--format', 'svg'], ['check', '--json', 'graphs/blip2-opt.blip']]) {
      const r = spawnSync(process.execPath, [BIN, ...argv], { cwd: repoRoot(), encoding: 'utf8', stdio: ['ignore', full, 'pipe'] });
      assert.equal(r.status, 1, `${argv.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, 'blip: cannot write to stdout: no space left on the device (ENOSPC)\n', argv.join(' '));
    }
    // nothing written to stdout, nothing to fail
    const quiet = spawnSync(process.execPath, [BIN, 'check', 'graphs/blip2-opt.blip'], { cwd: repoRoot(), encoding: 'utf8', stdio: ['ignore', full, 'pipe'] });
    assert.equal(quiet.status, 0, quiet.stderr);
  } finally {
    closeSync(full);
  }
});
