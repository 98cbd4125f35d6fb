import { chmodSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { Command } from '../Command.js';
import { UsageError } from '../Command.js';
import { unknownOption } from '../options.js';
import { formatSource } from '../../syntax/print.js';
import { formatDiagnostics } from '../../diagnostics/format.js';
import { readBlipFile, readFailure } from '../../syntax/load.js';
import { readStdin, STDIN_NAME } from '../stdin.js';

const command: Command = {
  name: 'fmt',
  summary: 'print a .blip file in canonical layout (--write to rewrite it)',
  help: `Usage: blip fmt [--write | --check] FILE...

Prints FILE in the canonical layout: two-space indent, one declaration per line, attribute
blocks on one line when they fit in 120 columns (else one attribute per line), values as
written, blank lines between groups kept, comments kept. Formatting formatted text changes
nothing. A file with syntax errors is not formatted: its diagnostics go to stderr (exit 1).

Options:
  --write   rewrite each FILE in place (only when it changes); prints nothing
  --check   print the names of files that are not formatted; exit 1 if there are any

Without --write or --check, exactly one FILE is printed to stdout. FILE '-' is standard input
(an editor's format-on-save: blip fmt - < model.blip).

Examples:
  blip fmt graphs/blip2-opt.blip
  blip fmt --write my-model.blip models/*.blip
  blip fmt --check models/*.blip`,
  async run(argv) {
    let write = false;
    let check = false;
    const files: string[] = [];
    for (const a of argv) {
      if (a === '--write' || a === '-w') write = true;
      else if (a === '--check') check = true;
      else if (a.startsWith('-') && a !== '-') throw unknownOption(a, ['write', 'check']);
      else files.push(a);
    }
    if (write && check) throw new UsageError('--write and --check exclude each other');
    if (!files.length) throw new UsageError('expected a FILE');
    if (!write && !check && files.length > 1) throw new UsageError('expected one FILE (use --write or --check for several)');
    if (write && files.includes('-')) throw new UsageError("--write rewrites files: '-' (standard input) has none to rewrite");
    let status = 0;
    for (const given of files) {
      const file = given === '-' ? STDIN_NAME : given;
      let text: string;
      try {
        text = given === '-' ? readStdin() : readBlipFile(file);
      } catch (e) {
        process.stderr.write(formatDiagnostics([readFailure(file, e)], new Map()));
        status = 1;
        continue;
      }
      const r = formatSource(text, file);
      if (r.text === undefined) {
        process.stderr.write(formatDiagnostics(r.diagnostics, new Map([[file, text]])));
        status = 1;
        continue;
      }
      if (check) {
        if (r.text !== text) {
          process.stdout.write(file + '\n');
          status = 1;
        }
      } else if (write) {
        if (r.text !== text) {
          const problem = replaceFile(file, r.text);
          if (problem) {
            process.stderr.write(`${file}:1:1 - error BLIP2001: cannot write the formatted file: ${problem}\n`);
            status = 1;
          }
        }
      } else process.stdout.write(r.text);
    }
    return status;
  },
};
export default command;

/**
 * Writes `text` beside `file` and renames it over it (same mode), so `file` is never half-written.
 * A symbolic link is followed: renaming over the link would replace it and leave its target as it was.
 */
function replaceFile(given: string, text: string): string | undefined {
  let tmp: string | undefined;
  try {
    const file = realpathSync(given);
    tmp = `${file}.fmt-${process.pid}`;
    writeFileSync(tmp, text);
    chmodSync(tmp, statSync(file).mode & 0o7777);
    renameSync(tmp, file);
    return undefined;
  } catch (e) {
    if (tmp) rmSync(tmp, { force: true });
    return (e as Error).message;
  }
}
