// The CapFilt output folder's temp files: which ones a run (or finalize) clears as left by a dead process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { OutputDir } from '../../../src/capfilt/output.js';

test('removeDeadTemps keeps the temps of live processes and fresh ones of other machines; it removes those of a dead process here and those untouched for 7 hours', async () => {
  const root = await mkdtemp(join(tmpdir(), 'capfilt-temps-'));
  const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    const out = new OutputDir(join(root, 'out'));
    await out.prepare();
    const gone = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    await once(gone, 'exit');

    // <name>.<machine>.<pid>.<random>.tmp, as tempPath names them
    const own = basename(out.tempPath('00000.tar'));
    const ofPid = (pid: number, name: string): string => own.replace('00000.tar', name).replace(`.${process.pid}.`, `.${pid}.`);
    const liveTemp = ofPid(live.pid!, '00001.tar');
    const deadTemp = ofPid(gone.pid!, '00002.tar');
    const otherFresh = '00003.tar.elsewhere.4242.0123abcd.tmp';
    const otherStale = '00004.tar.elsewhere.4243.4567cdef.tmp';
    for (const name of [own, liveTemp, deadTemp, otherFresh, otherStale]) await writeFile(join(out.tmpDir, name), 'part of a shard');
    const hoursAgo = (h: number): Date => new Date(Date.now() - h * 3600e3);
    await utimes(join(out.tmpDir, otherFresh), hoursAgo(1), hoursAgo(1));
    await utimes(join(out.tmpDir, otherStale), hoursAgo(7), hoursAgo(7));

    assert.equal(await out.removeDeadTemps(), 2);
    assert.deepEqual((await readdir(out.tmpDir)).sort(), [own, liveTemp, otherFresh].sort());
  } finally {
    live.kill();
    await rm(root, { recursive: true, force: true });
  }
});
