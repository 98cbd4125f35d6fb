#!/usr/bin/env node
// npm run bench [-- options]: runs bench/run.ts (blip-graph vs transformers' PyTorch generate) with tsx.
// Everything it starts — the bandwidth probe, blip-graph, PyTorch — gets the same malloc settings:
// GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=1048576, as bin/blip gives the
// blip command (PyTorch's allocator goes through the same glibc malloc), unless --huge-pages off.
import { spawnSync } from 'node:child_process';
const argv = process.argv.slice(2);
const at = argv.indexOf('--huge-pages');
const huge = at < 0 ? 'on' : argv[at + 1];
if (huge !== 'on' && huge !== 'off') {
  console.error(`npm run bench: --huge-pages must be on or off, got ${huge}`);
  process.exit(2);
}
const env = { ...process.env };
const ours = ['glibc.malloc.hugetlb=1', 'glibc.malloc.mmap_threshold=1048576'];
const kept = (env.GLIBC_TUNABLES ?? '').split(':').filter((t) => t && !ours.some((o) => t.startsWith(o.split('=')[0] + '=')));
env.GLIBC_TUNABLES = [...kept, ...(huge === 'on' ? ours : [])].join(':');
if (!env.GLIBC_TUNABLES) delete env.GLIBC_TUNABLES;
const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...argv], { stdio: 'inherit', env });
process.exit(r.status ?? 1);
