// The code frame under a diagnostic: one line of context, the line(s) of the span with a gutter,
// and a caret line: `^` under the first character, `~` under the rest of the span (graphql-js
// frame, TypeScript squiggles). Spans over 4 lines show their first 2 and last 2 lines. Lines
// longer than 120 columns are cut to a window around the span.
import { codePoints, type SourceFile } from './SourceFile.js';

const MAX_WIDTH = 120;

/** Tabs become one space so that the caret line (built from code-point counts) lines up. */
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
      const cs = s - offset + prefix.length;
      const ce = Math.min(e - offset, text.length) + prefix.length;
      const marks = li === first ? '^' + '~'.repeat(Math.max(0, ce - cs - 1)) : '~'.repeat(Math.max(1, ce - cs));
      out.push(`  ${' '.repeat(gutter)} | ${' '.repeat(Math.max(0, cs))}${marks}`);
    }
  }
  return out.join('\n');
}
