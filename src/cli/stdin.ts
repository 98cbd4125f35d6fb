// FILE '-' of `blip check` and `blip fmt`: the text on standard input, read once.
import { readFileSync } from 'node:fs';

/** How diagnostics name standard input. */
export const STDIN_NAME = '<stdin>';

let text: string | undefined;

/** Standard input as UTF-8 text (invalid bytes as U+FFFD, which the parser reports). */
export function readStdin(): string {
  text ??= new TextDecoder('utf-8').decode(readFileSync(0));
  return text;
}
