// FILE '-' of `blip check` and `blip fmt`: the text on standard input, read once.
import { readBlipFile } from '../syntax/load.js';

/** How diagnostics name standard input. */
export const STDIN_NAME = '<stdin>';

let text: string | undefined;

/** Standard input as UTF-8 text (invalid bytes as U+FFFD, which the parser reports); refused past the size limit, as files are. */
export function readStdin(): string {
  text ??= readBlipFile(0);
  return text;
}
