// Runs `blip` invocations as a user would, in one child process (the test runner owns this
// process's stdout): the batch runs in order and each one's exit code, stdout and stderr come back
// as JSON. Under tsx the child gets the same --import hook, so this works from source and dist/.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).href;
const hooks = process.execArgv.flatMap((a, i, all) => (a === '--import' || a === '--loader' ? [a, all[i + 1]] : a.startsWith('--import=') ? [a] : []));
const CHILD = `
if (process.argv[2]) process.chdir(process.argv[2]);
const { main } = await import(${JSON.stringify(MAIN)});
const results = [];
const [o, e] = [process.stdout.write, process.stderr.write];
for (const argv of JSON.parse(process.argv[1])) {
  let out = '', err = '';
  process.stdout.write = (s) => ((out += s), true);
  process.stderr.write = (s) => ((err += s), true);
  const code = await main(argv);
  process.stdout.write = o;
  process.stderr.write = e;
  results.push({ code, out, err });
}
process.stdout.write(JSON.stringify(results));
`;

export type CliResult = { code: number; out: string; err: string };

/**
 * Run each argv of `batch` through the CLI's `main`, in order, in one child process; in the folder
 * `cwd` when given (entered by the child itself: the --import hook resolves from where it starts).
 */
export function runCliBatch(batch: string[][], cwd?: string): CliResult[] {
  const r = spawnSync(process.execPath, [...hooks, '--input-type=module', '-e', CHILD, JSON.stringify(batch), ...(cwd ? [cwd] : [])], { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as CliResult[];
}
