// Files the user running blip cannot read — a compiled model's weights.bin, an image — are one line
// naming the file and "permission denied", not onnxruntime's C++ internals or Node's raw text. As
// root (CI containers) the command runs as nobody, for whom the permissions apply.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../runtime/fixtures.js';
import { compiledFixture } from '../server/helpers.js';

const NOBODY = 65534;

test('an unreadable weights.bin or image: one line naming it, permission denied', { timeout: 120_000 }, async (t) => {
  if (process.platform === 'win32') return t.skip('POSIX permissions');
  const root = process.getuid?.() === 0;
  const model = await compiledFixture('blip-caption', 'blip-caption-a');
  const dir = mkdtempSync(join(tmpdir(), 'perm-'));
  try {
    chmodSync(dir, 0o755);
    const copy = join(dir, 'model');
    cpSync(model, copy, { recursive: true });
    chmodSync(copy, 0o755);
    const image = join(dir, 'image.png');
    copyFileSync(join(repoRoot(), 'test', 'fixtures', 'images', 'rgb_37x23.png'), image);
    chmodSync(image, 0o644);
    const blip = (...args: string[]) => spawnSync(process.execPath, [join(repoRoot(), 'bin', 'blip.js'), ...args], { encoding: 'utf8', cwd: dir, ...(root ? { uid: NOBODY, gid: NOBODY } : {}) });
    const ok = blip('run', copy, '--image', image);
    if (ok.status !== 0 && root) return t.skip(`nobody cannot run blip here: ${ok.stderr.split('\n')[0]}`);
    assert.equal(ok.status, 0, ok.stderr);

    chmodSync(image, 0);
    const img = blip('run', copy, '--image', image);
    assert.equal(img.status, 1);
    assert.equal(img.stderr, `error BLIP5010: cannot read image ${image}: permission denied (EACCES)\n`);

    chmodSync(join(copy, 'weights.bin'), 0);
    const weights = blip('run', copy, '--image', image);
    assert.equal(weights.status, 1);
    assert.equal(weights.stderr, `error BLIP5004: ${join(copy, 'weights.bin')} cannot be read: permission denied (EACCES)\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
