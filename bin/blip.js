#!/usr/bin/env node
// Entry point of the `blip` command (built code lives in dist/; `npm ci` builds it).
import { writeSync } from 'node:fs';
import { main } from '../dist/src/cli/main.js';
import { systemErrorMeaning } from '../dist/src/filesystem.js';

// A reader that stops early (`blip run ... | head -1`) closes the pipe: stop at once and quietly,
// with the status a Unix tool killed by SIGPIPE has (128 + 13), rather than an unhandled EPIPE.
// Any other failed write to stdout (a full disk, `> /dev/full`) lost the output: say so on stderr
// and fail, as GNU tools do, instead of exiting 0. A failed write to stderr has nowhere to be told.
process.stdout.on('error', (e) => {
  if (e?.code === 'EPIPE') process.exit(141);
  try {
    writeSync(2, `blip: cannot write to stdout: ${e?.code ? systemErrorMeaning(e) : e?.message ?? e}\n`);
  } catch {}
  process.exit(1);
});
process.stderr.on('error', (e) => {
  if (e?.code === 'EPIPE') process.exit(141);
});

// process.exit does not wait for output still queued for a pipe (`blip check --json | jq` would get
// its first 64 KiB): wait until stdout and stderr have taken everything written, then exit.
const flushed = (stream) => new Promise((resolve) => (stream.writableLength === 0 ? resolve() : stream.write('', () => resolve())));

main(process.argv.slice(2)).then(
  async (code) => {
    await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
    // a write to a file or device reports its failure on a later tick: let it arrive (and fail
    // the command above) before exiting with main's status
    await new Promise((resolve) => setImmediate(resolve));
    process.exit(code);
  },
  (e) => {
    process.stderr.write(`blip: internal error: ${e?.stack ?? e}\n`);
    process.exit(2);
  },
);
