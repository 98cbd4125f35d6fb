#!/usr/bin/env node
// npm run bench [-- options]: runs bench/run.ts (blip-graph vs transformers' PyTorch generate) with tsx.
// blip-graph's processes — the bandwidth probe, bench/ours.ts, `blip run` — get the malloc settings
// bin/blip gives the blip command, GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=2097152,
// unless --huge-pages off (glibc reads tunables only at start-up, hence this launcher). PyTorch's
// processes get their own from bench/run.ts (bench/mallocEnv.ts: neither tunable works for it in the
// reference chroot; THP_MEM_ALLOC_ENABLE=1 does), and both sides' huge pages are recorded.
import { spawnSync } from 'node:child_process';
const argv = process.argv.slice(2);
const at = argv.indexOf('--huge-pages');
const huge = at < 0 ? 'on' : argv[at + 1];
if (huge !== 'on' && huge !== 'off') {
  console.error(`npm run bench: --huge-pages must be on or off, got ${huge}`);
  process.exit(2);
}
const env = { ...process.env };
const ours = ['glibc.malloc.hugetlb=1', 'glibc.malloc.mmap_threshold=2097152'];
const kept = (env.GLIBC_TUNABLES ?? '').split(':').filter((t) => t && !ours.some((o) => t.startsWith(o.split('=')[0] + '=')));
env.GLIBC_TUNABLES = [...kept, ...(huge === 'on' ? ours : [])].join(':');
if (!env.GLIBC_TUNABLES) delete env.GLIBC_TUNABLES;
const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...argv], { stdio: 'inherit', env });
process.exit(r.status ?? 1);
