// The shipped graph for a checkpoint folder: the one README's table gives for the transformers
// class its config.json names (src/lower/pairing.ts holds the table), as a path into this package.
import { join } from 'node:path';
import { shippedGraphFor } from './lower/pairing.js';
import { PACKAGE_ROOT } from './packageRoot.js';
import { Checkpoint } from './weights/checkpoint.js';

/**
 * What the checkpoint in `dir` is (config.json's first `architectures` entry, with the language
 * model of a generating BLIP-2 / InstructBLIP) and the absolute path of its shipped graph, when
 * there is one. Unreadable checkpoints throw their BLIP400x error.
 */
export function shippedGraphOf(dir: string): { what?: string; path?: string; invalid?: string } {
  const ckpt = Checkpoint.open(dir);
  try {
    const shipped = shippedGraphFor(ckpt.config);
    return { what: shipped.what, invalid: shipped.invalid, path: shipped.graph ? join(PACKAGE_ROOT, shipped.graph) : undefined };
  } finally {
    ckpt.close();
  }
}
