// Shared helpers for the front-end tests: check in-memory files, simplify diagnostics.
import { loadProgram, type LoadResult } from '../../../src/syntax/load.js';
import type { Diagnostic } from '../../../src/diagnostics/Diagnostic.js';

export interface Simple {
  code: string;
  line: number;
  column: number;
  message: string;
}

export const simple = (d: Diagnostic): Simple => ({ code: d.code, line: d.loc.line, column: d.loc.column, message: d.message });

/** Loads `root` from in-memory `files` (a missing file reads as ENOENT). */
export function load(files: Record<string, string>, root = 'main.blip'): LoadResult {
  return loadProgram(root, {
    readFile: (p) => {
      if (!Object.hasOwn(files, p)) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
      return files[p];
    },
  });
}

export const check = (src: string, more: Record<string, string> = {}): Simple[] => load({ 'main.blip': src, ...more }).diagnostics.map(simple);

/** A valid BLIP-2 OPT model; tests derive malformed programs from it by replacing lines. */
export const BLIP2 = `model m {
  input image: image
  input prompt: text
  node vision: vit(image) frozen @ "vision_model"
  node qformer: qformer(vision) @ "qformer"
  node projection: linear(qformer) @ "language_projection"
  node llm: opt(prefix: projection, text: prompt) frozen @ "language_model"
  output text: generate(llm)
}
`;

/** BLIP2 with `from` replaced by `to` (which must occur). */
export function edit(from: string, to: string, src = BLIP2): string {
  if (!src.includes(from)) throw new Error(`edit: '${from}' not in source`);
  return src.replace(from, to);
}
