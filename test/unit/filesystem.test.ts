import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSystemError, makeDirectories, systemErrorLine } from '../../src/filesystem.js';

test('makeDirectories creates missing parents and accepts an existing folder', () => {
  const root = mkdtempSync(join(tmpdir(), 'mkdirs-'));
  try {
    makeDirectories(join(root, 'a', 'b', 'c'));
    assert.ok(statSync(join(root, 'a', 'b', 'c')).isDirectory());
    makeDirectories(join(root, 'a', 'b', 'c'));
    makeDirectories(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('makeDirectories throws the system error of the component it cannot create, and returns (no retry loop)', () => {
  const root = mkdtempSync(join(tmpdir(), 'mkdirs-'));
  try {
    writeFileSync(join(root, 'f'), '');
    assert.throws(() => makeDirectories(join(root, 'f', 'sub')), (e) => isSystemError(e) && e.code === 'ENOTDIR');
    assert.throws(() => makeDirectories(join(root, 'f')), (e) => isSystemError(e) && e.code === 'ENOTDIR');
    // Node 20's mkdirSync(recursive) spins forever here
    if (statSync('/proc', { throwIfNoEntry: false })?.isDirectory()) {
      assert.throws(() => makeDirectories('/proc/blip-graph-test/x'), (e) => isSystemError(e) && e.code === 'ENOENT' && e.path === '/proc/blip-graph-test');
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('systemErrorLine says what was refused, where and why, on one line', () => {
  const e = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: 'ENOSPC', syscall: 'write', path: '/out/weights.bin' });
  assert.ok(isSystemError(e));
  assert.equal(systemErrorLine(e), 'cannot write /out/weights.bin: no space left on the device (ENOSPC)');
  const odd = Object.assign(new Error('EWHATEVER: strange thing happened, open \'/x\''), { code: 'EWHATEVER', syscall: 'open', path: '/x' });
  assert.equal(systemErrorLine(odd), 'cannot open /x: strange thing happened (EWHATEVER)');
  assert.ok(!isSystemError(new TypeError('x')));
  assert.ok(!isSystemError(Object.assign(new Error('x'), { code: 'BLIP5001' })));
});
