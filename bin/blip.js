#!/usr/bin/env node
// Entry point of the `blip` command (built code lives in dist/; `npm ci` builds it).
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`blip: internal error: ${e?.stack ?? e}\n`);
    process.exit(2);
  },
);
