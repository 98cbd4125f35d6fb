// The bench's `blip run` RSS column runs the built command (bench/blip_run_rss.mjs imports
// dist/src/cli/main.js, so that the peak RSS is the shipped command's, without tsx compiling in the
// process), while every timing runs from source. `npm run bench` does not build, so a stale dist/
// would measure other code than the timings: the bench refuses to start instead.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** The source folders the built `blip` command comes from. */
export const COMMAND_SOURCES = ['src', 'runtime', 'grammar'];

/** What tsc makes of a source file under dist/, or undefined for a file it does not emit. */
function built(file: string): string | undefined {
  if (file.endsWith('.d.ts')) return undefined;
  if (file.endsWith('.ts')) return file.replace(/\.ts$/, '.js');
  if (file.endsWith('.json')) return file; // imported JSON (resolveJsonModule) is copied
  return undefined;
}

function* files(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (e.isFile()) yield p;
  }
}

/** Why dist/ does not stand for the sources (one line), or undefined when every source file has its built file, no older than itself. */
export function staleDist(root: string, sources = COMMAND_SOURCES): string | undefined {
  if (!existsSync(join(root, 'dist'))) return 'dist/ is missing';
  for (const dir of sources) {
    if (!existsSync(join(root, dir))) continue;
    for (const f of files(join(root, dir))) {
      const rel = relative(root, f);
      const out = built(rel);
      if (!out) continue;
      const dist = join(root, 'dist', out);
      if (!existsSync(dist)) return `dist/${out} is missing (source ${rel})`;
      if (statSync(dist).mtimeMs < statSync(f).mtimeMs) return `dist/${out} is older than ${rel}`;
    }
  }
  return undefined;
}
