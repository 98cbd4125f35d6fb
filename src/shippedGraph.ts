// The shipped graph for a checkpoint folder: the one README's table gives for the transformers
// class its config.json names (src/lower/pairing.ts holds the table), as a path into this package.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shippedGraphFor } from './lower/pairing.js';
import { Checkpoint } from './weights/checkpoint.js';

/** The folder of package.json: the nearest one above this file (dist/src/ when built). */
export const PACKAGE_ROOT = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  return d;
})();

/**
 * What the checkpoint in `dir` is (config.json's first `architectures` entry, with the language
 * model of a generating BLIP-2 / InstructBLIP) and the absolute path of its shipped graph, when
 * there is one. Unreadable checkpoints throw their BLIP400x error.
 */
export function shippedGraphOf(dir: string): { what?: string; path?: string } {
  const ckpt = Checkpoint.open(dir);
  try {
    const shipped = shippedGraphFor(ckpt.config);
    return { what: shipped?.what, path: shipped?.graph ? join(PACKAGE_ROOT, shipped.graph) : undefined };
  } finally {
    ckpt.close();
  }
}
