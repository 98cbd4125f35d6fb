// The shipped graph for a checkpoint folder: the one README's table gives for the transformers
// class its config.json names (src/lower/pairing.ts holds the table), as a path into this package.
import { join } from 'node:path';
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
