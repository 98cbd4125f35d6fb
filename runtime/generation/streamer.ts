// Streaming decoded text while tokens are generated, as transformers' TextStreamer does for one
// row: text is released up to the last space (whole words), at a newline, or after a CJK character;
// the rest when the stream ends.
import type { TokenEvent } from './types.js';

export interface Decoder {
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
}

function isCjk(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

export class TextStreamer {
  private cache: number[] = [];
  private printLen = 0;
  private finished = false;

  /**
   * @param onText receives each released piece of text; `end` is true for the last one.
   * @param row which batch row to stream (transformers supports batch size 1 only).
   */
  constructor(
    private readonly tokenizer: Decoder,
    private readonly onText: (text: string, end: boolean) => void,
    private readonly opts: { skipSpecialTokens?: boolean; row?: number } = {},
  ) {}

  /** Feed new token ids. */
  put(ids: number[]): void {
    this.cache.push(...ids);
    const text = this.tokenizer.decode(this.cache, { skipSpecialTokens: this.opts.skipSpecialTokens });
    let printable: string;
    const tail = [...text.slice(-2)];
    const last = tail.length ? tail[tail.length - 1].codePointAt(0)! : 0;
    if (text.endsWith('\n')) {
      printable = text.slice(this.printLen);
      this.cache = [];
      this.printLen = 0;
    } else if (text.length > 0 && isCjk(last)) {
      printable = text.slice(this.printLen);
      this.printLen += printable.length;
    } else {
      printable = text.slice(this.printLen, text.lastIndexOf(' ') + 1);
      this.printLen += printable.length;
    }
    this.onText(printable, false);
  }

  /** Release what is left. */
  end(): void {
    let printable = '';
    if (this.cache.length > 0) {
      const text = this.tokenizer.decode(this.cache, { skipSpecialTokens: this.opts.skipSpecialTokens });
      printable = text.slice(this.printLen);
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
