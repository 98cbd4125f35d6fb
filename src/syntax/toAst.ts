// CST (grammar/cst.generated.d.ts) -> syntax tree (ast.ts). Tolerates the holes error recovery
// leaves: a missing or recovery-inserted token becomes `undefined`. Reports string escapes
// (BLIP1004) and numbers that don't fit a double (BLIP1005).
import type { CstNode, IToken } from 'chevrotain';
import type * as C from '../../grammar/cst.generated.js';
import { diagnostic, type Diagnostic } from '../diagnostics/Diagnostic.js';
import type { SourceFile } from '../diagnostics/SourceFile.js';
import type * as A from './ast.js';

const real = (t: IToken | undefined): t is IToken => !!t && !t.isInsertedInRecovery && Number.isFinite(t.startOffset);
const first = (ts: IToken[] | undefined): IToken | undefined => (ts && real(ts[0]) ? ts[0] : undefined);
const tokEnd = (t: IToken): number => (t.endOffset ?? t.startOffset) + 1;

export class AstBuilder {
  readonly diagnostics: Diagnostic[] = [];
  constructor(readonly src: SourceFile) {}

  /** The span of a CST node: from its first to its last real token. */
  private span(node: CstNode): A.Span {
    const loc = node.location;
    if (loc && Number.isFinite(loc.startOffset)) {
      const end = Number.isFinite(loc.endOffset) ? (loc.endOffset as number) + 1 : loc.startOffset + 1;
      return { start: loc.startOffset, end: Math.max(end, loc.startOffset) };
    }
    let start = Infinity;
    let end = -Infinity;
    const walk = (n: CstNode) => {
      for (const list of Object.values(n.children))
        for (const c of list as Array<CstNode | IToken>) {
          if ('image' in c) {
            if (real(c)) [start, end] = [Math.min(start, c.startOffset), Math.max(end, tokEnd(c))];
          } else walk(c);
        }
    };
    walk(node);
    return Number.isFinite(start) ? { start, end } : { start: 0, end: 0 };
  }

  private name(t: IToken | undefined): A.NameSyntax | undefined {
    return real(t) ? { text: t.image, start: t.startOffset, end: tokEnd(t) } : undefined;
  }

  private string(t: IToken | undefined): A.StringSyntax | undefined {
    if (!real(t)) return undefined;
    return { value: this.unescape(t), raw: t.image, start: t.startOffset, end: tokEnd(t) };
  }

  /**
   * Decodes \" \\ \/ \n \r \t \uXXXX (a surrogate only in a high-low pair, which is one character);
   * anything else is BLIP1004 (and kept as written). As in JSON, a control character U+0000-U+001F
   * must be escaped: written raw it is BLIP1001 (and kept).
   */
  private unescape(t: IToken): string {
    // A string recovered from BLIP1002 has no closing quote.
    const body = t.image.slice(1, (t as IToken & { unterminated?: boolean }).unterminated ? undefined : -1);
    const at = (i: number) => t.startOffset + 1 + i;
    for (const m of body.matchAll(/[\x00-\x1f]/g)) {
      const hex = m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
      this.diagnostics.push(diagnostic('BLIP1001', this.src.loc(at(m.index!), at(m.index!) + 1), `unexpected control character U+${hex} in a string: expected it escaped (\\u${hex})`));
    }
    return body.replace(/\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|\\(u[0-9a-fA-F]{4}|.)/gsu, (m, high: string | undefined, low: string | undefined, esc: string | undefined, i: number) => {
      if (high && low) return String.fromCharCode(parseInt(high, 16), parseInt(low, 16));
      const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', n: '\n', r: '\r', t: '\t' };
      if (esc! in simple) return simple[esc!];
      const code = esc!.length === 5 ? parseInt(esc!.slice(1), 16) : NaN;
      if (code >= 0 && !(code >= 0xd800 && code <= 0xdfff)) return String.fromCharCode(code);
      this.diagnostics.push(
        diagnostic(
          'BLIP1004',
          this.src.loc(at(i), at(i) + m.length),
          Number.isNaN(code)
            ? `invalid escape '${m}' in a string: expected one of \\" \\\\ \\/ \\n \\r \\t \\uXXXX`
            : `invalid escape '${m}' in a string: expected a character, not half of a surrogate pair (\\uD800-\\uDBFF followed by \\uDC00-\\uDFFF)`,
        ),
      );
      return m;
    });
  }

  program(cst: C.ProgramCstNode): A.ProgramSyntax {
    const decls: Array<A.ImportSyntax | A.ModelSyntax> = [
      ...(cst.children.importDecl ?? []).map((c) => this.importDecl(c)),
      ...(cst.children.modelDecl ?? []).map((c) => this.modelDecl(c)),
    ].sort((a, b) => a.start - b.start);
    return { file: this.src.path, decls, comments: [] };
  }

  importDecl(cst: C.ImportDeclCstNode): A.ImportSyntax {
    return { type: 'import', path: this.string(first(cst.children.StringLiteral)), ...this.span(cst) };
  }

  modelDecl(cst: C.ModelDeclCstNode): A.ModelSyntax {
    const c = cst.children;
    const span = this.span(cst);
    const lc = first(c.LCurly);
    return {
      type: 'model',
      bodyStart: lc ? lc.startOffset : span.end,
      name: this.name(first(c.name)),
      base: this.name(first(c.base)),
      members: (c.member ?? []).map((m) => this.member(m)).filter((m): m is A.MemberSyntax => !!m),
      ...span,
    };
  }

  member(cst: C.MemberCstNode): A.MemberSyntax | undefined {
    const c = cst.children;
    if (c.inputDecl) return this.inputDecl(c.inputDecl[0]);
    if (c.nodeDecl) return this.nodeDecl(c.nodeDecl[0]);
    if (c.outputDecl) return this.outputDecl(c.outputDecl[0]);
    if (c.block) return this.block(c.block[0]);
    return undefined;
  }

  inputDecl(cst: C.InputDeclCstNode): A.InputSyntax {
    const c = cst.children;
    return { type: 'input', name: this.name(first(c.name)), valueType: this.name(first(c.type)), ...this.span(cst) };
  }

  nodeDecl(cst: C.NodeDeclCstNode): A.NodeSyntax {
    const c = cst.children;
    const refine = !c.Colon && !c.kind && !c.LParen;
    const recovered = refine && !c.attrBlock?.length;
    return {
      ...(recovered ? { recovered } : {}),
      type: 'node',
      override: !!first(c.Override),
      name: this.name(first(c.name)),
      kind: refine ? undefined : this.name(first(c.kind)),
      args: (c.arg ?? []).map((a) => this.arg(a)),
      frozen: !!first(c.Frozen),
      checkpoint: this.string(first(c.checkpoint)),
      attrs: c.attrBlock?.[0] ? this.attrBlock(c.attrBlock[0]) : undefined,
      ...this.span(cst),
    };
  }

  arg(cst: C.ArgCstNode): A.ArgSyntax {
    const c = cst.children;
    return { port: this.name(first(c.port)), source: this.name(first(c.source)), ...this.span(cst) };
  }

  outputDecl(cst: C.OutputDeclCstNode): A.OutputSyntax {
    const c = cst.children;
    return {
      type: 'output',
      override: !!first(c.Override),
      name: this.name(first(c.name)),
      task: this.name(first(c.task)),
      args: (c.args ?? []).map((t) => this.name(t)).filter((n): n is A.NameSyntax => !!n),
      ...this.span(cst),
    };
  }

  block(cst: C.BlockCstNode): A.BlockSyntax {
    const c = cst.children;
    const kw = first(c.Preprocess) ?? first(c.Generation);
    const span = this.span(cst);
    return {
      type: c.Preprocess ? 'preprocess' : 'generation',
      keyword: kw ? { start: kw.startOffset, end: tokEnd(kw) } : { start: span.start, end: span.start },
      attrs: c.attrBlock?.[0] ? this.attrBlock(c.attrBlock[0]) : undefined,
      ...span,
    };
  }

  attrBlock(cst: C.AttrBlockCstNode): A.AttrBlockSyntax {
    const attrs: A.AttrSyntax[] = [];
    for (const a of cst.children.attr ?? []) {
      const key = this.name(first(a.children.key));
      if (!key) continue;
      const v = a.children.value?.[0];
      attrs.push({ key, value: v ? this.value(v) : undefined, ...this.span(a) });
    }
    return { attrs, ...this.span(cst) };
  }

  value(cst: C.ValueCstNode): A.ValueSyntax | undefined {
    const c = cst.children;
    if (c.list) {
      const l = c.list[0];
      const items = (l.children.value ?? []).map((v) => this.value(v)).filter((v): v is A.ValueSyntax => !!v);
      return { type: 'list', items, ...this.span(l) };
    }
    const t = first(c.Int) ?? first(c.Float) ?? first(c.StringLiteral) ?? first(c.True) ?? first(c.False) ?? first(c.Identifier);
    if (!t) return undefined;
    const span = { start: t.startOffset, end: tokEnd(t), raw: t.image };
    if (c.Int || c.Float) {
      const value = Number(t.image);
      const ok = c.Int ? Number.isSafeInteger(value) : Number.isFinite(value);
      if (!ok && !Number.isNaN(value))
        this.diagnostics.push(
          diagnostic('BLIP1005', this.src.loc(span.start, span.end), `number ${t.image.length > 30 ? t.image.slice(0, 30) + '…' : t.image} is out of range: expected ${c.Int ? 'an integer of magnitude at most 2^53 - 1' : 'a finite number'}`),
        );
      return { type: c.Int ? 'int' : 'float', value, ...span };
    }
    if (c.StringLiteral) return { type: 'string', value: this.unescape(t), ...span };
    if (c.True || c.False) return { type: 'bool', value: !!c.True, ...span };
    return { type: 'name', value: t.image, ...span };
  }
}
