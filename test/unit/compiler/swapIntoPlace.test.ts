// The last step of a compile, swapping the finished model into OUT, when another compile (another
// thread or process) swaps at the same moment: OUT moved away under it, or put back before it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { swapIntoPlace } from '../../../src/lower/partialOutput.js';

function folder(path: string, content: string): void {
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, 'manifest.json'), content);
}

function setup() {
  const root = mkdtempSync(join(tmpdir(), 'swap-'));
  const out = join(root, 'out');
  const tmp = join(root, 'out.tmp-1-a');
  const old = join(root, 'out.old-1-a');
  folder(out, 'before');
  folder(tmp, 'ours');
  return { root, out, tmp, old, done: () => rmSync(root, { recursive: true, force: true }) };
}

test('OUT moved away by another compile just before ours moves it: ours goes in, whole', () => {
  const t = setup();
  try {
    let calls = 0;
    swapIntoPlace(t.tmp, t.out, t.old, (from, to) => {
      if (calls++ === 0) renameSync(t.out, join(t.root, 'out.old-2-b')); // the other compile's first rename
      renameSync(from, to);
    });
    assert.equal(readFileSync(join(t.out, 'manifest.json'), 'utf8'), 'ours');
    assert.ok(!existsSync(t.tmp) && !existsSync(t.old));
  } finally {
    t.done();
  }
});

test("another compile's model put at OUT between our two renames: ours replaces it, whole, and its is removed", () => {
  const t = setup();
  try {
    let calls = 0;
    swapIntoPlace(t.tmp, t.out, t.old, (from, to) => {
      if (calls++ === 1) folder(t.out, 'theirs'); // the other compile's second rename, in between
      renameSync(from, to);
    });
    assert.equal(readFileSync(join(t.out, 'manifest.json'), 'utf8'), 'ours');
    assert.ok(!existsSync(t.tmp) && !existsSync(t.old));
  } finally {
    t.done();
  }
});

test('an error that is not a collision is thrown at once', () => {
  const t = setup();
  try {
    const denied = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    assert.throws(() => swapIntoPlace(t.tmp, t.out, t.old, () => { throw denied; }), (e) => e === denied);
  } finally {
    t.done();
  }
});
