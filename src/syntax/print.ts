// `blip fmt`: the canonical layout of a `.blip` file. Two-space indent; one declaration per line;
// attribute blocks on one line when they fit in 120 columns and hold no comment, else one
// attribute per line; values as written; single blank lines kept where the source had blank
// lines; comments kept: leading ones above their declaration, trailing ones (`//` or `/* */`) at the
// end of the declaration's line.
// print(parse(print(parse(x)))) === print(parse(x)).
import type * as A from './ast.js';
import { parse } from './parse.js';
import type { Diagnostic } from '../diagnostics/Diagnostic.js';

const WIDTH = 120;
const INDENT = '  ';

interface Item {
  start: number;
  end: number;
  /** Lines at `indent`; containers print their own children (and the comments inside them). */
  print(indent: string): string[];
  container: boolean;
  /** For containers: where the body ('{') starts; comments before it go above the item. */
  bodyStart?: number;
}

class Printer {
  private ci = 0;
  constructor(
    private readonly text: string,
    private readonly comments: A.CommentSyntax[],
  ) {}

  private blankBetween(a: number, b: number): boolean {
    return /\n[ \t\r\uFEFF]*(\r?\n|\r)/.test(this.text.slice(a, b)) || /\r[ \t]*\r/.test(this.text.slice(a, b));
  }

  private sameLine(a: number, b: number): boolean {
    return !/[\r\n]/.test(this.text.slice(a, b));
  }

  /** Unprinted comments starting before `pos`. */
  private takeBefore(pos: number): A.CommentSyntax[] {
    const out: A.CommentSyntax[] = [];
    while (this.ci < this.comments.length && this.comments[this.ci].start < pos) out.push(this.comments[this.ci++]);
    return out;
  }

  hasCommentIn(start: number, end: number): boolean {
    for (let i = this.ci; i < this.comments.length && this.comments[i].start < end; i++) if (this.comments[i].start >= start) return true;
    return false;
  }

  private commentLines(c: A.CommentSyntax, indent: string): string[] {
    if (c.text.startsWith('//')) return [indent + c.text.trimEnd()];
    return c.text.split(/\r?\n|\r/).map((l, i) => (i === 0 ? indent + l : l).trimEnd());
  }

  /**
   * Prints items in order with their comments; `end` is where the container's closing brace is.
   * `forceBlank(prev, next)` puts a blank line between two items regardless of the source.
   */
  items(items: Item[], indent: string, end: number, forceBlank?: (prev: Item, next: Item) => boolean): string[] {
    const out: string[] = [];
    let prevEnd = -1;
    let prev: Item | undefined;
    for (const [index, item] of items.entries()) {
      const leading = this.takeBefore(item.start);
      // Comments inside a one-line item have nowhere to go but above it.
      leading.push(...this.takeBefore(item.container ? (item.bodyStart ?? item.start) : item.end));
      const firstStart = leading[0]?.start ?? item.start;
      if (prev && (this.blankBetween(prevEnd, firstStart) || forceBlank?.(prev, item))) out.push('');
      let last = prevEnd;
      for (const c of leading) {
        if (last >= 0 && c !== leading[0] && this.blankBetween(last, c.start)) out.push('');
        out.push(...this.commentLines(c, indent));
        last = c.end;
      }
      if (leading.length && this.blankBetween(last, item.start)) out.push('');
      const lines = item.print(indent);
      prevEnd = item.end;
      // Comments starting on the line the item ends on trail it there, `//` and `/* */` alike,
      // unless the next item starts on the line such a comment ends on: then it is that item's.
      const following = items[index + 1];
      const limit = following?.start ?? end;
      for (let next = this.comments[this.ci]; next && next.start >= prevEnd && next.start < limit && this.sameLine(prevEnd, next.start); next = this.comments[this.ci]) {
        if (following && this.sameLine(next.end, following.start)) break;
        const [first, ...rest] = this.commentLines(next, '');
        lines[lines.length - 1] += ' ' + first;
        lines.push(...rest);
        prevEnd = next.end;
        this.ci++;
      }
      out.push(...lines);
      prev = item;
    }
    const rest = this.takeBefore(end);
    rest.forEach((c, i) => {
      if ((i > 0 || prev) && this.blankBetween(i > 0 ? rest[i - 1].end : prevEnd, c.start)) out.push('');
      out.push(...this.commentLines(c, indent));
    });
    return out;
  }

  value(v: A.ValueSyntax): string {
    return v.type === 'list' ? `[${v.items.map((i) => this.value(i)).join(', ')}]` : v.raw;
  }

  attr(a: A.AttrSyntax): string {
    return `${a.key.text}: ${a.value ? this.value(a.value) : ''}`;
  }

  /** `head { k: v, … }` on one line if it fits, else a block of lines. */
  withBlock(head: string, block: A.AttrBlockSyntax | undefined, indent: string): string[] {
    if (!block) return [indent + head];
    const sep = head ? ' ' : '';
    const inline = block.attrs.length ? `{ ${block.attrs.map((a) => this.attr(a)).join(', ')} }` : '{}';
    if (!this.hasCommentIn(block.start, block.end) && (indent + head + sep + inline).length <= WIDTH) return [indent + head + sep + inline];
    const inner = indent + INDENT;
    const items: Item[] = block.attrs.map((a) => ({ start: a.start, end: a.end, container: false, print: (ind) => [ind + this.attr(a)] }));
    return [indent + head + sep + '{', ...this.items(items, inner, block.end), indent + '}'];
  }

  member(m: A.MemberSyntax): Item {
    const base = { start: m.start, end: m.end };
    switch (m.type) {
      case 'input':
        return { ...base, container: false, print: (ind) => [`${ind}input ${m.name?.text}: ${m.valueType?.text}`] };
      case 'output':
        return {
          ...base,
          container: false,
          print: (ind) => [`${ind}${m.override ? 'override ' : ''}output ${m.name?.text}: ${m.task?.text}(${m.args.map((a) => a.text).join(', ')})`],
        };
      case 'node': {
        let head = `${m.override ? 'override ' : ''}node ${m.name?.text}`;
        if (m.kind) {
          head += `: ${m.kind.text}(${m.args.map((a) => (a.port ? `${a.port.text}: ${a.source?.text}` : a.source?.text)).join(', ')})`;
          if (m.frozen) head += ' frozen';
          if (m.checkpoint) head += ` @ ${m.checkpoint.raw}`;
        }
        return { ...base, container: !!m.attrs, bodyStart: m.attrs?.start, print: (ind) => this.withBlock(head, m.attrs, ind) };
      }
      default:
        return { ...base, container: !!m.attrs, bodyStart: m.attrs?.start, print: (ind) => this.withBlock(m.type, m.attrs, ind) };
    }
  }

  model(m: A.ModelSyntax, indent: string): string[] {
    const head = `model ${m.name?.text}${m.base ? ` extends ${m.base.text}` : ''} {`;
    const members = m.members.map((x) => this.member(x));
    const body = this.items(members, indent + INDENT, m.end);
    return body.length ? [indent + head, ...body, indent + '}'] : [indent + head + '}'];
  }

  program(p: A.ProgramSyntax): string {
    const items: Item[] = p.decls.map((d) =>
      d.type === 'import'
        ? { start: d.start, end: d.end, container: false, print: (ind: string) => [`${ind}import ${d.path?.raw}`] }
        : { start: d.start, end: d.end, container: true, bodyStart: d.bodyStart, print: (ind: string) => this.model(d, ind) },
    );
    const kinds = new Map(items.map((it, i) => [it, p.decls[i].type]));
    const lines = this.items(items, '', this.text.length + 1, (a, b) => kinds.get(a) === 'model' || kinds.get(b) === 'model');
    return lines.length ? lines.join('\n') + '\n' : '';
  }
}

/** The canonical text of a parsed file (which must have parsed without errors). */
export function formatProgram(ast: A.ProgramSyntax, text: string): string {
  return new Printer(text, ast.comments).program(ast);
}

/** Parses and formats; on syntax errors returns them and no text. */
export function formatSource(text: string, file: string): { text?: string; diagnostics: Diagnostic[] } {
  const { ast, diagnostics } = parse(text, file);
  const syntaxErrors = diagnostics.filter((d) => d.severity === 'error' && d.code !== 'BLIP1013');
  if (syntaxErrors.length) return { diagnostics: syntaxErrors };
  return { text: formatProgram(ast, text), diagnostics: [] };
}
