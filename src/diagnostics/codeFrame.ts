// The code frame under a diagnostic: one line of context, the line(s) of the span with a gutter,
// and a caret line: `^` under the first character, `~` under the rest of the span (graphql-js
// frame, TypeScript squiggles). Spans over 4 lines show their first 2 and last 2 lines. Lines
// longer than 120 columns are cut to a window around the span. The caret line is padded by display
// width (a wide CJK character or an emoji takes two terminal cells), while reported columns count
// code points.
import { codePoints, type SourceFile } from './SourceFile.js';

const MAX_WIDTH = 120;

/** Wide (East Asian Wide and Fullwidth) characters and emoji shown as such: two cells. */
const WIDE = /[\p{Emoji_Presentation}\u1100-\u115F\u2E80-\u303E\u3041-\u33FF\u3400-\u4DBF\u4E00-\u9FFF\uA000-\uA4CF\uAC00-\uD7A3\uF900-\uFAFF\uFE30-\uFE4F\uFF00-\uFF60\uFFE0-\uFFE6\u{20000}-\u{2FFFD}\u{30000}-\u{3FFFD}]/u;
/** Combining marks, zero-width spaces and joiners, variation selectors: no cell of their own. */
const ZERO = /[\p{Mn}\p{Me}\u200B-\u200F\u2060\uFE00-\uFE0F]/u;

/** Terminal cells the code points take. */
export function displayWidth(chars: string[]): number {
  let w = 0;
  for (const c of chars) w += ZERO.test(c) ? 0 : WIDE.test(c) ? 2 : 1;
  return w;
}

/** Tabs become one space so that the caret line lines up. */
const clean = (s: string): string => s.replace(/\t/g, ' ').replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '\uFFFD');

export function codeFrame(src: SourceFile, start: number, end: number): string {
  const first = src.lineIndex(start);
  const last = Math.max(first, src.lineIndex(Math.max(start, end - 1)));
  const shown: Array<number | '...'> = [];
  if (first > 0 && src.lineText(first - 1).trim() !== '') shown.push(first - 1);
  if (last - first > 3) shown.push(first, first + 1, '...', last - 1, last);
  else for (let i = first; i <= last; i++) shown.push(i);
  const gutter = String(last + 1).length;
  const out: string[] = [];
  for (const li of shown) {
    if (li === '...') {
      out.push(`  ${'.'.repeat(gutter)} |`);
      continue;
    }
    const raw = src.lineText(li);
    const lineStart = src.lineStarts[li];
    // Span within this line, in code points.
    const inSpan = li >= first && li <= last;
    const s = inSpan ? (li === first ? codePoints(raw.slice(0, start - lineStart)) : 0) : 0;
    const lineLen = codePoints(raw);
    const e = inSpan ? (li === last ? Math.max(s + 1, codePoints(raw.slice(0, Math.max(0, end - lineStart)))) : Math.max(s + 1, lineLen)) : 0;
    let text = [...raw];
    let offset = 0;
    if (text.length > MAX_WIDTH) {
      offset = inSpan ? Math.max(0, Math.min(s - 40, text.length - MAX_WIDTH)) : 0;
      text = text.slice(offset, offset + MAX_WIDTH);
    }
    const prefix = offset > 0 ? '…' : '';
    const suffix = offset + text.length < lineLen ? '…' : '';
    out.push(`  ${String(li + 1).padStart(gutter)} | ${prefix}${clean(text.join(''))}${suffix}`);
    if (inSpan) {
      const from = Math.max(0, s - offset);
      const cs = prefix.length + displayWidth(text.slice(0, from));
      const width = displayWidth(text.slice(from, Math.max(from, Math.min(e - offset, text.length))));
      const marks = li === first ? '^' + '~'.repeat(Math.max(0, width - 1)) : '~'.repeat(Math.max(1, width));
      out.push(`  ${' '.repeat(gutter)} | ${' '.repeat(cs)}${marks}`);
    }
  }
  return out.join('\n');
}
