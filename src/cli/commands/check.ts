import type { Command } from '../Command.js';
import { UsageError } from '../Command.js';
import { unknownOption } from '../options.js';
import { loadProgram, readFailure, type LoadResult } from '../../syntax/load.js';
import { diagnosticsToJson, formatDiagnostics } from '../../diagnostics/format.js';
import { hasErrors, sortDiagnostics, type Diagnostic } from '../../diagnostics/Diagnostic.js';
import { readStdin, STDIN_NAME } from '../stdin.js';

const command: Command = {
  name: 'check',
  summary: 'check .blip files: syntax, names, graph, attribute types and widths',
  help: `Usage: blip check [--json] [--max N] FILE...

Parses and checks each FILE (and the files it imports): syntax, name resolution, node kinds,
ports and edge types, attribute types and ranges (JSON Schemas), cycles, reachability, unused
declarations, and widths along edges as far as the file pins them. Checkpoints are not read:
'blip compile' checks pinned sizes against config.json.

FILE '-' is standard input, shown as <stdin>; its imports are found from the current folder.
Diagnostics go to stderr as 'path:line:col - error BLIPnnnn: message' with a code frame.
Exit status: 0 when no file has errors (warnings are printed but allowed), 1 otherwise.

Options:
  --json    print the diagnostics of all files as one JSON array on stdout instead
            ({code, severity, message, file, line, column, endLine, endColumn, related?})
  --max N   print at most N diagnostics per file, the first in file order (default 20;
            with --json, all of them unless --max is given)

Examples:
  blip check graphs/blip2-opt.blip
  blip check my-model.blip models/*.blip
  blip check --json my-model.blip
  cat my-model.blip | blip check -`,
  async run(argv) {
    let json = false;
    let max: number | undefined;
    const files: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (a === '--json') json = true;
      else if (a === '--max' || a.startsWith('--max=')) {
        const v = a === '--max' ? argv[++i] : a.slice('--max='.length);
        const n = v === undefined || v.trim() === '' ? NaN : Number(v);
        if (!Number.isInteger(n) || n < 1) throw new UsageError(v === undefined ? '--max expects a positive integer' : `--max expects a positive integer, found '${v}'`);
        max = n;
      } else if (a.startsWith('-') && a !== '-') throw unknownOption(a, ['json', 'max']);
      else files.push(a);
    }
    if (!files.length) throw new UsageError('expected at least one FILE');
    let failed = false;
    const all: Diagnostic[] = [];
    const sources = new Map<string, string>();
    for (const file of files) {
      // '-' is standard input; its imports are found from the current folder
      const r = file === '-' ? loadStdin() : loadProgram(file);
      if (hasErrors(r.diagnostics)) failed = true;
      for (const [k, v] of r.sources) sources.set(k, v);
      // (--json keeps the ones the text would print: the first `max` in sorted order; a loop, not
      // push(...), for a file of 100k diagnostics)
      if (json) for (const d of max === undefined ? r.diagnostics : sortDiagnostics(r.diagnostics).slice(0, max)) all.push(d);
      else process.stderr.write(formatDiagnostics(r.diagnostics, r.sources, { max }));
    }
    if (json) process.stdout.write(JSON.stringify(diagnosticsToJson(all, sources), null, 2) + '\n');
    return failed ? 1 : 0;
  },
};
export default command;

function loadStdin(): LoadResult {
  let text: string;
  try {
    text = readStdin();
  } catch (e) {
    return { diagnostics: [readFailure(STDIN_NAME, e)], sources: new Map() };
  }
  return loadProgram(STDIN_NAME, { text });
}
