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

// process.exit does not wait for output still queued for a pipe (`blip check --json | jq` would get
// its first 64 KiB): wait until stdout and stderr have taken everything written, then exit.
const flushed = (stream) => new Promise((resolve) => (stream.writableLength === 0 ? resolve() : stream.write('', () => resolve())));

main(process.argv.slice(2)).then(
  async (code) => {
    await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
    process.exit(code);
  },
  (e) => {
    process.stderr.write(`blip: internal error: ${e?.stack ?? e}\n`);
    process.exit(2);
  },
);
