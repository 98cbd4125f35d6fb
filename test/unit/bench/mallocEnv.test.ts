// PyTorch's malloc environment in `npm run bench` (bench/mallocEnv.ts): blip-graph's glibc tunables
// must not reach it. In the reference chroot (no /sys) glibc.malloc.hugetlb=1 gave PyTorch no huge
// pages, and a fixed glibc.malloc.mmap_threshold (1048576, blip-graph's before 2026-11-30) turned every
// activation of 1 MiB or more into a fresh mmap (full-size BLIP-base: 169k -> 278k minor faults, 0.73 -> 1.05 s system time per call).
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../runtime/fixtures.js';
import assert from 'node:assert/strict';
import { BLIP_GRAPH_TUNABLES, mallocSettings, pytorchEnv } from '../../../bench/mallocEnv.js';
import { parseProcMemory } from '../../../bench/procMemory.js';

const ROOT = repoRoot();
const blipGraphEnv = { PATH: '/usr/bin', GLIBC_TUNABLES: BLIP_GRAPH_TUNABLES.join(':') };

test("PyTorch gets neither of blip-graph's tunables, and THP_MEM_ALLOC_ENABLE=1 with huge pages on", () => {
  const env = pytorchEnv(blipGraphEnv, true);
  assert.deepEqual(mallocSettings(env), { GLIBC_TUNABLES: '', THP_MEM_ALLOC_ENABLE: '1' });
  assert.equal('GLIBC_TUNABLES' in env, false, 'an empty GLIBC_TUNABLES is left out, not set to ""');
  assert.equal(env.PATH, '/usr/bin');
  assert.equal(blipGraphEnv.GLIBC_TUNABLES, BLIP_GRAPH_TUNABLES.join(':'), "blip-graph's environment is not changed");
});

test('with huge pages off PyTorch gets no THP switch, even one the caller had set', () => {
  const env = pytorchEnv({ THP_MEM_ALLOC_ENABLE: '1' }, false);
  assert.deepEqual(mallocSettings(env), { GLIBC_TUNABLES: '', THP_MEM_ALLOC_ENABLE: '' });
});

test("the caller's other tunables reach PyTorch, whatever values blip-graph's two had", () => {
  const env = pytorchEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=4194304:glibc.malloc.hugetlb=2' }, true);
  assert.equal(env.GLIBC_TUNABLES, 'glibc.malloc.arena_max=2');
});

test('each side records AnonHugePages, RssAnon and RssFile from /proc in MB', () => {
  const smaps = 'Rss:             1200 kB\nAnonymous:     1000 kB\nAnonHugePages:    266240 kB\n';
  const status = 'VmRSS:\t 900000 kB\nRssAnon:\t  409600 kB\nRssFile:\t  102400 kB\nRssShmem:\t       0 kB\n';
  assert.deepEqual(parseProcMemory(smaps, status), { anon_huge_pages_mb: 260, rss_anon_mb: 400, rss_file_mb: 100 });
  assert.ok(Number.isNaN(parseProcMemory('', status).anon_huge_pages_mb), 'a missing field is NaN, not 0');
});

test("the bench gives blip-graph's side exactly the tunables bin/blip gives the blip command (and hugePages.ts suggests)", () => {
  const launcher = readFileSync(join(ROOT, 'bin', 'blip'), 'utf8');
  const fromLauncher = [...launcher.matchAll(/^\s*add_tunable (\S+) (\S+)$/gm)].map((m) => `${m[1]}=${m[2]}`);
  assert.deepEqual(fromLauncher, BLIP_GRAPH_TUNABLES);
  const script = readFileSync(join(ROOT, 'scripts', 'bench.mjs'), 'utf8');
  const fromScript = /const ours = (\[[^\]]*\])/.exec(script)?.[1];
  assert.ok(fromScript, 'scripts/bench.mjs lists its tunables in `const ours = [...]`');
  assert.deepEqual(JSON.parse(fromScript.replace(/'/g, '"')), BLIP_GRAPH_TUNABLES);
  // the line `blip version --verbose` prints where huge pages are off names the same setting
  const hint = readFileSync(join(ROOT, 'runtime', 'hugePages.ts'), 'utf8');
  assert.deepEqual([...hint.matchAll(/GLIBC_TUNABLES=(glibc[^\s`]*)/g)].map((m) => m[1]), [BLIP_GRAPH_TUNABLES.join(':')]);
});
