// What a file must be before it is lexed: not too large, UTF-8 text (not UTF-16, a legacy
// encoding or a binary file), and not too many tokens. Each is one diagnostic instead of an error
// every few bytes: lexed, 7 MB of weights ran ten minutes, 8 MiB of `; ` a minute and 3.5 GB.
import { diagnostic, type Diagnostic } from '../diagnostics/Diagnostic.js';
import type { SourceFile } from '../diagnostics/SourceFile.js';

/** Larger files are refused (BLIP1015): a model description is a few kilobytes. */
export const MAX_FILE_CHARS = 8 * 1024 * 1024;
/**
 * Files of more tokens are refused (BLIP1015) before lexing: a token costs the lexer about a
 * microsecond and 250 bytes, and may be an error, so 8 MiB of `}` or `; ` took a minute and
 * 3.5 GB. A 1 MB model (20k nodes) is 180k.
 */
export const MAX_TOKENS = 500_000;

const isWordChar = (c: number): boolean =>
  (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 46 || c === 45 || c === 43 || c >= 0x80;

/**
 * The tokens, comments and lexical errors the lexer would make of `text`, near enough (a run of
 * punctuation or stray characters counts one each), counted no further than `limit + 1`: one
 * pass over the characters, allocating nothing.
 */
export function countTokens(text: string, limit: number): number {
  let n = 0;
  let i = 0;
  const len = text.length;
  while (i < len && n <= limit) {
    const c = text.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10 || c === 13) {
      i++;
      continue;
    }
    n++;
    const next = text.charCodeAt(i + 1);
    if ((c === 47 && next === 47) || c === 35) {
      // a '//' (or '#') comment: to the end of its line
      const e = text.indexOf('\n', i);
      i = e < 0 ? len : e;
    } else if (c === 47 && next === 42) {
      const e = text.indexOf('*/', i + 2);
      i = e < 0 ? len : e + 2;
    } else if (c === 34 || c === 39) {
      // a string: to its closing quote, or the end of its line
      for (i++; i < len; i++) {
        const d = text.charCodeAt(i);
        if (d === c || d === 10 || d === 13) break;
        if (d === 92) i++;
      }
      i++;
    } else if (isWordChar(c)) {
      while (i < len && isWordChar(text.charCodeAt(i))) i++;
    } else i++;
  }
  return n;
}

/** The first four kilobytes of a binary file are mostly bytes that are not UTF-8 and control characters. */
const SNIFF_CHARS = 4096;

/** What a file that is not UTF-8 text shows itself to be, and where. */
type NotText = { kind: 'utf16'; at: number; bom: boolean; bigEndian: boolean } | { kind: 'legacy' | 'binary'; at: number };

/**
 * Whether `text` (bytes decoded as UTF-8) is not UTF-8 text at all, and what it is then:
 * - UTF-16 (Windows PowerShell 5's '>' writes it): NULs that stand, for the most part, one printable
 *   ASCII character apart ("m\0o\0d\0"), and never three in a row; looked for first, as a
 *   character such as U+4E00 '一' after an ASCII one makes two NULs in a row;
 * - binary: two NULs in a row, or over a quarter of the first characters U+FFFD (bytes not UTF-8)
 *   or control characters other than white space, these a fiftieth or more (compressed data and
 *   floats hold a control character every ten bytes or so);
 * - a legacy encoding (GBK, Shift-JIS, Latin-1): over a quarter U+FFFD, but next to no control characters.
 * Undefined for text, however wrong (one NUL is a stray character, reported as such; a few bytes not
 * UTF-8 are reported where they stand). (Lexed, a binary file is an error every few bytes: 7 MB of
 * weights ran ten minutes.)
 */
function notTextAt(text: string): NotText | undefined {
  const n = Math.min(text.length, SNIFF_CHARS);
  let nuls = 0;
  let spaced = 0; // NULs with another two characters on, an ASCII character between
  let bad = 0; // U+FFFD
  let control = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0) {
      nuls++;
      const between = text.charCodeAt(i + 1);
      if (text.charCodeAt(i + 2) === 0 && ((between >= 0x20 && between < 0x7f) || between === 9 || between === 10 || between === 13)) spaced++;
    } else if (c === 0xfffd) bad++;
    else if ((c < 0x20 && c !== 9 && c !== 10 && c !== 12 && c !== 13 && c !== 0x1b) || c === 0x7f) control++;
  }
  // (UTF-16 text never holds three NULs in a row; a safetensors file's length and a PNG's chunk
  // lengths do, before numbers that may look like UTF-16)
  const run3 = text.indexOf('\0\0\0');
  if (spaced >= 4 && spaced * 2 >= nuls && (run3 < 0 || run3 >= n)) {
    // a byte-order mark, FF FE or FE FF, decodes to two U+FFFD; UTF-16BE puts the NUL before the ASCII character
    const bom = text.startsWith('\ufffd\ufffd');
    return { kind: 'utf16', at: 0, bom, bigEndian: text.charCodeAt(bom ? 2 : 0) === 0 };
  }
  const run = text.indexOf('\0\0');
  if (run >= 0) return { kind: 'binary', at: run };
  if (n < 64 || (bad + nuls + control) * 4 <= n) return undefined;
  return (nuls + control) * 50 < n && bad * 4 > n ? { kind: 'legacy', at: text.indexOf('\ufffd') } : { kind: 'binary', at: 0 };
}

/** The one error for a file `notTextAt` found not UTF-8 text, by what it is. */
function notTextDiagnostic(source: SourceFile, found: NotText): Diagnostic {
  const at = (n: number) => source.loc(found.at, found.at + n);
  switch (found.kind) {
    case 'utf16': {
      const what = `NUL bytes between the characters${found.bom ? ', after a UTF-16 byte-order mark' : ''}`;
      const name = found.bigEndian ? 'UTF-16BE text' : `UTF-16LE text${found.bom ? " (as Windows PowerShell 5's '>' writes)" : ''}`;
      return diagnostic('BLIP1001', at(0), `unexpected ${what}: expected UTF-8 text, found ${name}: save the file as UTF-8`);
    }
    case 'legacy':
      return diagnostic('BLIP1001', at(1), `unexpected bytes that are not UTF-8 (over a quarter of the first 4 KB): expected UTF-8 text, found text in a legacy encoding (GBK, Shift-JIS, Latin-1?): save the file as UTF-8`);
    case 'binary': {
      const nuls = source.text.charCodeAt(found.at) === 0;
      const what = nuls ? 'NUL bytes (U+0000)' : 'bytes that are not UTF-8 or control characters (over a quarter of the first 4 KB)';
      return diagnostic('BLIP1001', at(nuls ? 2 : 0), `unexpected ${what}: expected .blip text, found a binary file (weights or an image?)`);
    }
  }
}

/** The one diagnostic that stops `source` before lexing, if any. */
export function refuseBeforeLexing(source: SourceFile): Diagnostic | undefined {
  const text = source.text;
  if (text.length > MAX_FILE_CHARS) {
    const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
    return diagnostic('BLIP1015', source.loc(0, 0), `file too large: expected at most ${mib(MAX_FILE_CHARS)} MiB of text, found ${mib(text.length)} MiB`);
  }
  const notText = notTextAt(text);
  if (notText) return notTextDiagnostic(source, notText);
  if (countTokens(text, MAX_TOKENS) > MAX_TOKENS) {
    const k = (MAX_TOKENS / 1000).toFixed(0);
    return diagnostic('BLIP1015', source.loc(0, 0), `file too large: expected at most ${k}k tokens (names, numbers, strings, punctuation), found more`);
  }
  return undefined;
}
