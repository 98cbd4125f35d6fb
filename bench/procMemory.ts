// What a bench process's memory looks like at the end of its run, from /proc (Linux), and what its
// timed calls cost the kernel: the malloc parity of the two sides (bench/mallocEnv.ts) is read off
// these every run. bench/torch_generate.py records the same fields the same way.
import { readFileSync } from 'node:fs';

export interface ProcMemory {
  /** AnonHugePages of /proc/self/smaps_rollup: anonymous memory on transparent huge pages. */
  anon_huge_pages_mb: number;
  /** RssAnon / RssFile of /proc/self/status: the resident set, anonymous and file-backed (the mmapped weights). */
  rss_anon_mb: number;
  rss_file_mb: number;
}

/** The memory parity of one side: its end-of-run memory and the mean kernel cost of a timed call (getrusage). */
export interface MemoryParity extends ProcMemory {
  minor_faults_per_call: number;
  system_s_per_call: number;
}

/** A `Name:   N kB` line's value in MB, NaN where the line is missing. */
function kbField(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) / 1024 : NaN;
}

export function parseProcMemory(smapsRollup: string, status: string): ProcMemory {
  return { anon_huge_pages_mb: kbField(smapsRollup, 'AnonHugePages'), rss_anon_mb: kbField(status, 'RssAnon'), rss_file_mb: kbField(status, 'RssFile') };
}

/**
 * The process's peak RSS in MB: VmHWM of /proc/self/status, the high-water mark of its own memory
 * since its exec. Not getrusage's maxRSS: Linux carries into a child's the RSS of the parent it was
 * forked from (a 39 MB child of bench/run.ts, holding the bandwidth probe's 512 MB buffer, read 516),
 * so every bench child's peak was at least run.ts's RSS at the spawn. maxRSS where there is no /proc.
 */
export function peakRssMb(): number {
  let status = '';
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    // not Linux
  }
  const hwm = kbField(status, 'VmHWM');
  return Number.isFinite(hwm) ? hwm : process.resourceUsage().maxRSS / 1024;
}

export function readProcMemory(): ProcMemory {
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return ''; // not Linux: NaN fields
    }
  };
  return parseProcMemory(read('/proc/self/smaps_rollup'), read('/proc/self/status'));
}
