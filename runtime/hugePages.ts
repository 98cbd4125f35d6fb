// Whether this process's large malloc'd buffers (onnxruntime's prepacked weights and activation
// arena) are backed by transparent huge pages. glibc does so when started with GLIBC_TUNABLES
// glibc.malloc.hugetlb=1 and the kernel's THP mode is `madvise` (with `always` every process gets
// them anyway). bin/blip sets the tunable; a library user sets it before starting node.
import { readFileSync } from 'node:fs';

export interface HugePageStatus {
  /** Large allocations get huge pages. */
  active: boolean;
  /** One line for `blip version --verbose`: what is set and, when off, how to turn it on. */
  line: string;
}

export function hugePageStatus(env: NodeJS.ProcessEnv = process.env, thpFile = '/sys/kernel/mm/transparent_hugepage/enabled'): HugePageStatus {
  if (process.platform !== 'linux') return { active: false, line: `huge pages: not used (${process.platform})` };
  let mode: string | undefined;
  try {
    mode = /\[(\w+)\]/.exec(readFileSync(thpFile, 'utf8'))?.[1];
  } catch {
    mode = undefined;
  }
  if (!mode) return { active: false, line: 'huge pages: not used (the kernel has no transparent huge pages)' };
  if (mode === 'never') return { active: false, line: 'huge pages: not used (transparent huge pages are off: [never])' };
  if (mode === 'always') return { active: true, line: 'huge pages: on (transparent huge pages: [always])' };
  const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime;
  if (!glibc) return { active: false, line: 'huge pages: not used (THP is [madvise] and the C library is not glibc)' };
  const tunable = /(?:^|:)glibc\.malloc\.hugetlb=(\d)/.exec(env.GLIBC_TUNABLES ?? '')?.[1];
  if (tunable === '1' || tunable === '2') return { active: true, line: `huge pages: on (GLIBC_TUNABLES glibc.malloc.hugetlb=${tunable}, THP [madvise], glibc ${glibc})` };
  // (bin/blip steps aside for BLIP_HUGE_PAGES=0: telling whoever set it to start through bin/blip misleads)
  if (env.BLIP_HUGE_PAGES === '0') return { active: false, line: 'huge pages: off (turned off by BLIP_HUGE_PAGES=0; unset it and start through bin/blip to turn them on: a one-shot run is 20-50 % faster)' };
  return {
    active: false,
    line: `huge pages: off (THP is [madvise]; start through bin/blip, or set GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=2097152 (as bin/blip does) before node starts: a one-shot run is 20-50 % faster)`,
  };
}
