// A command given a checkpoint folder and no .blip file takes the shipped graph for it (compile,
// graph), and says which on stderr.
import { existsSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { UsageError } from './Command.js';
import { shippedGraphOf } from '../shippedGraph.js';
import { PACKAGE_ROOT, packagePath } from '../packageRoot.js';

/** The shipped graph for the checkpoint in `dir` (src/lower/pairing.ts), said on stderr; a usage error when there is none. */
export function shippedGraphArg(command: string, dir: string): string {
  const { what, path, invalid } = shippedGraphOf(dir); // a missing or unreadable config.json is its one-line BLIP4001
  if (!path) {
    const why = invalid ? invalid : what ? `says ${what}, for which blip-graph ships no graph` : 'names no "architectures"';
    throw new UsageError(`expected GRAPH.blip: ${join(dir, 'config.json')} ${why}; name the graph (README's table) or write one (docs/language.md)`);
  }
  const file = packagePath(relative(PACKAGE_ROOT, path));
  process.stderr.write(`blip ${command}: ${join(dir, 'config.json')} says ${what}: ${command === 'compile' ? 'compiling' : 'drawing'} ${file}\n`);
  return file;
}

/** A folder holding config.json: a checkpoint given where a .blip file belongs. */
export function isCheckpointFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory() && existsSync(join(path, 'config.json'));
  } catch {
    return false;
  }
}
