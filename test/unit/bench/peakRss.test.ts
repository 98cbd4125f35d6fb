// The bench's peak RSS columns read each process's VmHWM (bench/procMemory.ts peakRssMb), not
// getrusage's maxRSS: Linux carries into a child's maxRSS the RSS of the parent it was forked from, so
// every process bench/run.ts started (holding the bandwidth probe's 512 MB buffer) read at least
// run.ts's own RSS at the spawn (a 39 MB child: 516 MB; tiny-fixture runs: ~540 MB on both sides).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../tasks/harness.js';

const ROOT = repoRoot();
const linux = existsSync('/proc/self/status') ? false : 'no /proc';

/** Runs `argv` (node) while this process holds 600 MB resident; the child's stdout and stderr. */
function childOfABigParent(argv: string[]): { stdout: string; stderr: string } {
  const ballast = new Float32Array(150 * 2 ** 20).fill(1);
  const r = spawnSync(process.execPath, argv, { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(ballast[7], 1);
  return r;
}

test("bench/ours.ts's peak RSS is the process's own, not its parent's", { skip: linux }, () => {
  const r = childOfABigParent(['--import', 'tsx', '-e', `import('${join(ROOT, 'bench', 'procMemory.ts')}').then((m) => console.log(m.peakRssMb()))`]);
  const mb = Number(r.stdout.trim());
  assert.ok(mb > 0 && mb < 400, `peak ${mb} MB`);
});

const dist = existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js')) ? false : 'dist/ not built';
test("bench/blip_run_rss.mjs's peak RSS is the command's own, not its parent's", { skip: linux || dist }, () => {
  const r = childOfABigParent([join(ROOT, 'bench', 'blip_run_rss.mjs'), '--version']);
  const mb = JSON.parse(r.stderr.trim().split('\n').pop()!).max_rss_mb;
  assert.ok(mb > 0 && mb < 400, `peak ${mb} MB`);
});
