// Streaming decoded text while tokens are generated, as transformers' TextStreamer does for one
// row: text is released up to the last space (whole words), at a newline, or after a CJK character;
// the rest when the stream ends.
import type { TokenEvent } from './types.js';
import { isCjk } from '../tokenizers/cjk.js';

export interface Decoder {
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** The part of the decode that later ids cannot change (HfTokenizer.decodeStable). */
  decodeStable?(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
}

export class TextStreamer {
  private cache: number[] = [];
  /** Code points already released (Python's print_len counts code points, not UTF-16 units). */
  private printLen = 0;
  private finished = false;

  /**
   * @param onText receives each released piece of text; `end` is true for the last one.
   * @param opts.row which batch row to stream (transformers supports batch size 1 only).
   * @param opts.resetAtNewline transformers empties its cache at a newline (default true), so the
   *   tokens after it are decoded alone — for SentencePiece a word after "\n" then loses its space
   *   and the pieces no longer add up to the decoded text. false keeps the cache: the pieces are
   *   slices of one growing decode.
   * @param opts.holdIncomplete release only what later tokens cannot change (Decoder.decodeStable):
   *   not the text of a trailing byte-fallback run or an incomplete character (default false, as
   *   transformers, whose released text a later byte can then rewrite).
   */
  constructor(
    private readonly tokenizer: Decoder,
    private readonly onText: (text: string, end: boolean) => void,
    private readonly opts: { skipSpecialTokens?: boolean; row?: number; resetAtNewline?: boolean; holdIncomplete?: boolean } = {},
  ) {}

  /** Feed new token ids. */
  put(ids: number[]): void {
    this.cache.push(...ids);
    const o = { skipSpecialTokens: this.opts.skipSpecialTokens };
    const cps = [...(this.opts.holdIncomplete && this.tokenizer.decodeStable ? this.tokenizer.decodeStable(this.cache, o) : this.tokenizer.decode(this.cache, o))];
    let printable: string;
    const last = cps.length ? cps[cps.length - 1].codePointAt(0)! : 0;
    if (cps.length > 0 && cps[cps.length - 1] === '\n') {
      printable = cps.slice(this.printLen).join('');
      if (this.opts.resetAtNewline === false) this.printLen = Math.max(this.printLen, cps.length);
      else {
        this.cache = [];
        this.printLen = 0;
      }
    } else if (cps.length > 0 && isCjk(last, 0x2b820)) {
      const piece = cps.slice(this.printLen);
      printable = piece.join('');
      this.printLen += piece.length;
    } else {
      const piece = cps.slice(this.printLen, cps.lastIndexOf(' ') + 1);
      printable = piece.join('');
      this.printLen += piece.length;
    }
    this.onText(printable, false);
  }

  /** Release what is left. */
  end(): void {
    let printable = '';
    if (this.cache.length > 0) {
      const cps = [...this.tokenizer.decode(this.cache, { skipSpecialTokens: this.opts.skipSpecialTokens })];
      printable = cps.slice(this.printLen).join('');
    }
    this.cache = [];
    this.printLen = 0;
    this.finished = true;
    this.onText(printable, true);
  }

  /** An onToken callback for generate(): streams one row and ends when that row finishes. */
  onToken = (e: TokenEvent): void => {
    const row = this.opts.row ?? 0;
    if (this.finished) return;
    this.put([e.tokens[row]]);
    if (e.finished[row]) this.end();
  };
}
