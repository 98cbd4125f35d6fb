#!/usr/bin/env node
// Entry point of the `blip` command (built code lives in dist/; `npm ci` builds it).
import { main } from '../dist/src/cli/main.js';

// A reader that stops early (`blip run ... | head -1`) closes the pipe: stop at once and quietly,
// with the status a Unix tool killed by SIGPIPE has (128 + 13), rather than an unhandled EPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e?.code === 'EPIPE') process.exit(141);
    throw e;
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`blip: internal error: ${e?.stack ?? e}\n`);
    process.exit(2);
  },
);
