// The shipped graphs as paths into this package: the one for a checkpoint folder (the one README's
// table gives for the transformers class its config.json names; src/lower/pairing.ts holds the
// table), and one by name, for a project that installed the package.
import { readdirSync } from 'node:fs';
import { join, posix, sep } from 'node:path';
import { didYouMean } from './diagnostics/suggest.js';
import { CompileError } from './lower/CompileError.js';
import { shippedGraphFor } from './lower/pairing.js';
import { PACKAGE_ROOT } from './packageRoot.js';
import { Checkpoint } from './weights/checkpoint.js';

/**
 * What the checkpoint in `dir` is (config.json's first `architectures` entry, with the language
 * model of a generating BLIP-2 / InstructBLIP) and the absolute path of its shipped graph, when
 * there is one, from config.json alone: a missing folder or config.json, or one that is unreadable or not JSON, throws BLIP4001.
 */
export function shippedGraphOf(dir: string): { what?: string; path?: string; invalid?: string } {
  // config.json alone: the weights need not be there (or be readable) to say which graph fits
  const shipped = shippedGraphFor(Checkpoint.readConfig(dir));
  return { what: shipped.what, invalid: shipped.invalid, path: shipped.graph ? join(PACKAGE_ROOT, shipped.graph) : undefined };
}

/** The folder of the shipped .blip files inside the installed package (its `graphs/`), as an absolute path. */
export const graphsDir: string = join(PACKAGE_ROOT, 'graphs');

/** The shipped graphs' names: their paths below graphs/ without `.blip` (`blip-caption`, `pinned/blip2-opt-2.7b`), sorted. */
export function shippedGraphNames(): string[] {
  return (readdirSync(graphsDir, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.blip'))
    .map((f) => f.split(sep).join('/').slice(0, -'.blip'.length))
    .sort();
}

/**
 * The absolute path of the shipped graph `name` — its path below the package's graphs/ folder,
 * with or without `.blip`: `blip-caption`, `blip2-opt.blip`, `pinned/blip2-opt-2.7b` — for
 * compile() from a project that installed the package, where `graphs/…` relative to the current
 * folder is not there. A name blip-graph ships no graph by is BLIP4015, listing the names.
 */
export function shippedGraphPath(name: string): string {
  if (typeof name !== 'string') throw new CompileError('BLIP4015', `shippedGraphPath() takes a shipped graph's name as a string (such as 'blip-caption'), found ${name === null ? 'null' : Array.isArray(name) ? 'an array' : typeof name}`);
  const names = shippedGraphNames();
  const wanted = name.replace(/\\/g, '/').replace(/^graphs\//, '').replace(/\.blip$/, '');
  if (!names.includes(wanted)) {
    throw new CompileError('BLIP4015', `blip-graph ships no graph named '${name}'${didYouMean(wanted, names)} (the shipped graphs: ${names.join(', ')}; for a .blip file of your own, pass its path to compile())`);
  }
  return pathOfShipped(wanted);
}

/**
 * The absolute path of the shipped graph a .blip path names, if any: its part below a `graphs/`
 * folder (`graphs/pinned/blip2-opt-2.7b.blip`), else its file name, that of a graph in graphs/ or
 * in one subfolder of it alone (`blip2-opt.blip`, `blip2-opt-2.7b`), with or without `.blip`. For
 * the hint at a missing file (BLIP2001): `graphs/…` is there only in a clone of the repository.
 */
export function shippedGraphNamedBy(file: string): string | undefined {
  let names: string[];
  try {
    names = shippedGraphNames();
  } catch {
    return undefined; // (a package without its graphs/ folder has none to point at)
  }
  const parts = posix.normalize(file.replace(/\\/g, '/')).replace(/\.blip$/, '').split('/');
  const graphs = parts.lastIndexOf('graphs');
  const belowGraphs = graphs >= 0 ? parts.slice(graphs + 1).join('/') : undefined;
  if (belowGraphs !== undefined && names.includes(belowGraphs)) return pathOfShipped(belowGraphs);
  const base = parts[parts.length - 1]!;
  if (names.includes(base)) return pathOfShipped(base);
  const inSubfolder = names.filter((n) => n.endsWith('/' + base));
  return inSubfolder.length === 1 ? pathOfShipped(inSubfolder[0]!) : undefined;
}

/** The absolute path of the shipped graph `name` (one of shippedGraphNames()). */
function pathOfShipped(name: string): string {
  return join(graphsDir, ...name.split('/')) + '.blip';
}
