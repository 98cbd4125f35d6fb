// `blip run` exactly as the command runs it (dist/src/cli/main.js in this process, so the peak RSS
// is the command's own, without tsx compiling sources in it), then one last stderr line:
// {"max_rss_mb": N}, the process's VmHWM (bench/procMemory.ts peakRssMb: getrusage's maxRSS would
// carry the RSS of bench/run.ts, which forked it). The bench's `blip run` RSS column (the target is stated for `blip run`);
// the environment, GLIBC_TUNABLES included, is the caller's. dist/ must be built from the sources
// the timings run: bench/run.ts refuses to start where it is missing or older (bench/distFreshness.ts).
//
//   node bench/blip_run_rss.mjs run DIR --image ... [blip run options]
import { readFileSync } from 'node:fs';
import { main } from '../dist/src/cli/main.js';

/** VmHWM in MB, maxRSS where there is no /proc (as bench/procMemory.ts peakRssMb). */
function peakRssMb() {
  try {
    const kb = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (kb) return Number(kb[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

const code = await main(process.argv.slice(2));
process.stderr.write(`${JSON.stringify({ max_rss_mb: peakRssMb() })}\n`);
process.exit(code);
