// Where this package is installed: the shipped graphs (graphs/) are found from here.
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder of package.json: the nearest one above this file (dist/src/ when built). */
export const PACKAGE_ROOT = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  return d;
})();

/** A file of the package (`graphs/blip2-opt.blip`) as a user in the current folder would type it: relative when below it, else absolute. */
export function packagePath(file: string): string {
  const path = join(PACKAGE_ROOT, file);
  const shown = relative(process.cwd(), path);
  return shown.startsWith('..') || isAbsolute(shown) ? path : shown;
}
