// A source text with its line starts: offsets (UTF-16 units, as JavaScript strings and chevrotain
// count them) to 1-based lines and columns. Columns count code points (the code frame pads its
// caret by display width: codeFrame.ts).
import type { SourceLoc } from '../ir/types.js';

export class SourceFile {
  readonly lineStarts: number[] = [0];
  /** Lines holding a surrogate pair (an emoji, say), where columns must count code points; elsewhere a column is the offset into the line. */
  private readonly astralLines = new Set<number>();

  constructor(
    readonly path: string,
    readonly text: string,
  ) {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) this.lineStarts.push(i + 1);
      else if (c === 13 && text.charCodeAt(i + 1) !== 10) this.lineStarts.push(i + 1);
      else if (c >= 0xd800 && c <= 0xdbff) this.astralLines.add(this.lineStarts.length - 1);
    }
  }

  /** The 0-based index of the line holding `offset`. */
  lineIndex(offset: number): number {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** 1-based line and column (in code points) of an offset. */
  position(offset: number): { line: number; column: number } {
    const o = Math.max(0, Math.min(offset, this.text.length));
    const li = this.lineIndex(o);
    // (not a count from the line's start every time: a long line with many diagnostics was quadratic)
    const column = this.astralLines.has(li) ? codePoints(this.text.slice(this.lineStarts[li], o)) : o - this.lineStarts[li]!;
    return { line: li + 1, column: column + 1 };
  }

  /** The text of a 0-based line, without its line break. */
  lineText(index: number): string {
    const start = this.lineStarts[index] ?? this.text.length;
    const next = this.lineStarts[index + 1] ?? this.text.length;
    return this.text.slice(start, next).replace(/\r?\n$|\r$/, '');
  }

  /** A location from offsets (end exclusive). */
  loc(start: number, end: number): SourceLoc {
    const s = Math.max(0, Math.min(start, this.text.length));
    const e = Math.max(s, Math.min(end, this.text.length));
    return { file: this.path, ...this.position(s), start: s, end: e };
  }
}

export function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff || i + 1 >= s.length) n++;
    else {
      const d = s.charCodeAt(i + 1);
      n++;
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
  }
  return n;
}
