// `blip run` exactly as the command runs it (dist/src/cli/main.js in this process, so the peak RSS
// is the command's own, without tsx compiling sources in it), then one last stderr line:
// {"max_rss_mb": N}. The bench's `blip run` RSS column (the target is stated for `blip run`);
// the environment, GLIBC_TUNABLES included, is the caller's. dist/ must be built from the sources
// the timings run: bench/run.ts refuses to start where it is missing or older (bench/distFreshness.ts).
//
//   node bench/blip_run_rss.mjs run DIR --image ... [blip run options]
import { main } from '../dist/src/cli/main.js';

const code = await main(process.argv.slice(2));
process.stderr.write(`${JSON.stringify({ max_rss_mb: process.resourceUsage().maxRSS / 1024 })}\n`);
process.exit(code);
