// The malloc environment of each side of `npm run bench`. blip-graph's processes (node: the bandwidth
// probe, bench/ours.ts, `blip run`) inherit what scripts/bench.mjs sets before node starts (glibc reads
// tunables only at start-up), what bin/blip gives the `blip` command:
// GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=2097152. PyTorch's processes get
// neither tunable:
// - hugetlb=1 does nothing there: ../shared/oracle/py runs python in a chroot without /sys, so glibc
//   cannot read the kernel's THP mode and never madvises (AnonHugePages 0 kB). PyTorch's own switch,
//   THP_MEM_ALLOC_ENABLE=1 (its CPU allocator aligns blocks of 2 MiB or more to 2 MiB and madvises
//   them), does work in the chroot: 260 MB of AnonHugePages after filling a 256 MB tensor, 0 without;
// - a fixed mmap_threshold costs PyTorch, whose CPU allocator keeps no cache: at 1 MiB (blip-graph's
//   before 2026-11-30) every activation of 1 MiB or more became a fresh mmap, faulted in page by
//   page (full-size BLIP-base generate: 169k -> 278k minor faults and 0.73 -> 1.05 s of system time
//   per call).
// Each side's AnonHugePages, RSS split, minor faults and system time are recorded every run
// (bench/procMemory.ts), so the parity is checked rather than assumed.

/** The tunables scripts/bench.mjs gives blip-graph's side (--huge-pages on). */
export const BLIP_GRAPH_TUNABLES = ['glibc.malloc.hugetlb=1', 'glibc.malloc.mmap_threshold=2097152'];

/** PyTorch's environment from the bench's own: blip-graph's tunables out, PyTorch's huge-page switch in (--huge-pages on) or out. */
export function pytorchEnv(env: NodeJS.ProcessEnv, hugePages: boolean): NodeJS.ProcessEnv {
  const ours = BLIP_GRAPH_TUNABLES.map((t) => t.split('=')[0]);
  const kept = (env.GLIBC_TUNABLES ?? '').split(':').filter((t) => t && !ours.includes(t.split('=')[0]));
  const out: NodeJS.ProcessEnv = { ...env, GLIBC_TUNABLES: kept.join(':'), THP_MEM_ALLOC_ENABLE: '1' };
  if (!kept.length) delete out.GLIBC_TUNABLES;
  if (!hugePages) delete out.THP_MEM_ALLOC_ENABLE;
  return out;
}

/** The malloc settings an environment holds, as the results record them. */
export function mallocSettings(env: NodeJS.ProcessEnv): { GLIBC_TUNABLES: string; THP_MEM_ALLOC_ENABLE: string } {
  return { GLIBC_TUNABLES: env.GLIBC_TUNABLES ?? '', THP_MEM_ALLOC_ENABLE: env.THP_MEM_ALLOC_ENABLE ?? '' };
}
