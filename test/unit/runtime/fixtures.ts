// Locating fixtures from a test, whether it runs from source (tsx) or compiled (dist/test/...).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

let root: string | undefined;

/** The repository root: the nearest ancestor holding blip-graph's package.json. */
export function repoRoot(): string {
  if (root) return root;
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(d, 'package.json');
    if (existsSync(p) && (JSON.parse(readFileSync(p, 'utf8')) as { name?: string }).name === 'blip-graph') return (root = d);
    const up = dirname(d);
    if (up === d) throw new Error('blip-graph repository root not found');
    d = up;
  }
}

export function fixturePath(...parts: string[]): string {
  return join(repoRoot(), 'test', 'fixtures', ...parts);
}

export function readFixtureJson<T>(...parts: string[]): T {
  return JSON.parse(readFileSync(fixturePath(...parts), 'utf8')) as T;
}

/** The model inputs a fixture case records (expected.json `cases[]`). */
export interface FixtureInputs {
  input_ids?: number[][];
  attention_mask?: number[][];
  decoder_input_ids?: number[][];
  /** BLIP captions with a prompt per row: the right-padded decoder prompt's mask. */
  decoder_attention_mask?: number[][];
  qformer_input_ids?: number[][];
  qformer_attention_mask?: number[][];
}

/** One of transformers' `generate` runs of a fixture case. */
export interface FixtureGeneration {
  name: string;
  kwargs: Record<string, unknown>;
  sequences: number[][];
  prompt_length?: number;
  /** transformers' top-2 logit margin at each greedy step, per row (where recorded) */
  margins?: number[][];
}

export interface FixtureCase extends FixtureInputs {
  name: string;
  generation: FixtureGeneration[];
}

/** A slice of an oracle's concatenated expected.bin(.gz). */
export interface BlobRef {
  offset?: number;
  length?: number;
  dtype: 'uint8' | 'float32';
  shape: number[];
  sha256: string;
}

export class Blob {
  readonly bytes: Uint8Array;
  constructor(path: string) {
    const raw = readFileSync(path);
    this.bytes = path.endsWith('.gz') ? gunzipSync(raw) : raw;
  }
  u8(ref: BlobRef): Uint8Array {
    if (ref.offset === undefined || ref.length === undefined) throw new Error('this expected array is stored as a digest only');
    return this.bytes.subarray(ref.offset, ref.offset + ref.length);
  }
  f32(ref: BlobRef): Float32Array {
    const b = new Uint8Array(this.u8(ref)); // a fresh, aligned copy
    return new Float32Array(b.buffer, 0, b.length / 4);
  }
}
