// Text -> tokens -> CST -> syntax tree, with every lexing and parsing problem as a Diagnostic.
// Never throws: any string (or byte sequence, decoded as UTF-8) gives a tree and diagnostics.
import type { ILexingError, IRecognitionException, IToken, TokenType } from 'chevrotain';
import type * as C from '../../grammar/cst.generated.js';
import { parser } from '../../grammar/parser.js';
import * as T from '../../grammar/tokens.js';
import { diagnostic, type Diagnostic } from '../diagnostics/Diagnostic.js';
import { SourceFile } from '../diagnostics/SourceFile.js';
import type { Code } from '../diagnostics/codes.js';
import { closest } from '../diagnostics/suggest.js';
import type { ProgramSyntax } from './ast.js';
import { AstBuilder } from './toAst.js';
import { refuseBeforeLexing } from './fileChecks.js';

/** Lists nest at most this deep (BLIP1014); deeper ones are dropped before parsing. */
export const MAX_LIST_DEPTH = 32;

export interface ParseResult {
  ast: ProgramSyntax;
  source: SourceFile;
  diagnostics: Diagnostic[];
  /**
   * Offsets of the errors after which the tree may lack text or hold misread text (syntax errors;
   * not lexical ones read as what was meant): src/syntax/load.ts checks less around them.
   */
  damage: number[];
}

function describeChar(ch: string): string {
  const cp = ch.codePointAt(0)!;
  const hex = 'U+' + cp.toString(16).toUpperCase().padStart(4, '0');
  if (cp === 0xfffd) return `bytes that are not UTF-8 (decoded as ${hex})`;
  if (cp === 0xfeff) return `byte-order mark ${hex} (only the file's first character may be one)`;
  if (cp < 0x20 || cp === 0x7f || (cp >= 0x80 && cp < 0xa0)) return `control character ${hex}`;
  if (/\s/u.test(ch)) return `whitespace character ${hex}`;
  return `character '${ch}' (${hex})`;
}

const EXPECTED_CHARS = 'expected a name, number, string, comment or one of { } ( ) [ ] : , @';

/** Lexical problems, each one diagnostic; `damage` gets those the tree is not whole after (see ParseResult). */
function lexDiagnostics(src: SourceFile, errors: ILexingError[], tokens: IToken[], errorTokens: IToken[], damage: number[], stray: Set<IToken>): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const e of errors) {
    const ch = String.fromCodePoint(src.text.codePointAt(e.offset) ?? 0xfffd);
    // (a ';' is what C-like languages end statements with: say what ends one here)
    const why = ch === ';' ? 'expected no separator: a declaration ends where the next begins (a new line reads best)' : EXPECTED_CHARS;
    out.push(diagnostic('BLIP1001', src.loc(e.offset, e.offset + ch.length), `unexpected ${describeChar(ch)}: ${why}`));
  }
  for (const t of tokens) {
    if (t.tokenType !== T.Identifier) continue;
    const m = /[^\x00-\x7f]/u.exec(t.image);
    if (!m) continue;
    const ch = String.fromCodePoint(t.image.codePointAt(m.index)!);
    const at = t.startOffset + m.index;
    damage.push(at); // (other uses of the name may be spelt without the letter)
    out.push(
      diagnostic('BLIP1001', src.loc(at, at + ch.length), `unexpected ${describeChar(ch)} in the name '${t.image}': expected ASCII letters, digits and _ (other text goes in a "string")`),
    );
  }
  for (const t of errorTokens) {
    const at = (n: number) => src.loc(t.startOffset, t.startOffset + n);
    if (t.tokenType === T.MalformedNumber)
      out.push(
        diagnostic('BLIP1006', src.loc(t.startOffset, t.endOffset! + 1), `malformed number '${t.image.length > 40 ? t.image.slice(0, 40) + '…' : t.image}': expected digits with an optional fraction and exponent, then a space or punctuation`),
      );
    else if (t.tokenType === T.UnterminatedString) {
      damage.push(t.startOffset);
      out.push(diagnostic('BLIP1002', at(1), `unterminated string: expected a closing '"' before the end of the line`));
    }
    else if (t.tokenType === T.SingleQuotedString)
      out.push(diagnostic('BLIP1001', at(1), `unexpected character ''' (U+0027): expected a string in double quotes ("${t.image.slice(1, -1)}")`));
    else if (stray.has(t) && t.tokenType === T.Equals) out.push(diagnostic('BLIP1001', at(1), `unexpected character '=' (U+003D): expected '{' to follow the name directly (an attribute block is not assigned)`));
    else if (stray.has(t)) out.push(diagnostic('BLIP1001', at(1), `unexpected character '#' (U+0023): expected ':' to follow the name directly`));
    else if (t.tokenType === T.Equals) out.push(diagnostic('BLIP1001', at(1), `unexpected character '=' (U+003D): expected ':' between a name and its value`));
    else if (t.tokenType === T.HashComment) out.push(diagnostic('BLIP1001', at(1), `unexpected character '#' (U+0023): expected a comment to start with '//' (or to be written /* … */)`));
    else {
      damage.push(t.startOffset);
      out.push(diagnostic('BLIP1003', at(2), `unterminated comment: expected '*/' before the end of the file`));
    }
  }
  return out;
}

interface Lexed {
  tokens: IToken[];
  errorTokens: IToken[];
  comments: IToken[];
  errors: ILexingError[];
}

/** Tokens that cannot follow a string on its line: after one, the "closing" quote opened a string instead. */
const NOT_AFTER_STRING = new Set<unknown>([T.Identifier, T.Int, T.Float, T.MalformedNumber]);

/**
 * A line with a quote left open: the lexer pairs quotes left to right, blaming the last one. When a
 * "closing" quote is directly followed by a name or number (`@ "vision_model { config: "vision_config" }`),
 * the string it closed is the one left open: it is read from its opening quote to the end of the line.
 */
function reopenStrings(text: string, lexed: Lexed): Lexed {
  const open = lexed.errorTokens.filter((t) => t.tokenType === T.UnterminatedString);
  if (!open.length) return lexed;
  const { tokens } = lexed;
  const reopened = new Map<IToken, IToken>(); // the unterminated token -> the string re-read
  let i = 0; // (tokens and open strings are both in file order: one pass)
  for (const u of open) {
    let lineStart = u.startOffset;
    while (lineStart > 0 && text[lineStart - 1] !== '\n' && text[lineStart - 1] !== '\r') lineStart--;
    while (i < tokens.length && tokens[i]!.startOffset < lineStart) i++;
    for (let j = i; j + 1 < tokens.length && tokens[j]!.startOffset < u.startOffset; j++) {
      const t = tokens[j]!;
      if (t.tokenType !== T.StringLiteral || !NOT_AFTER_STRING.has(tokens[j + 1]!.tokenType)) continue;
      reopened.set(u, { ...u, image: text.slice(t.startOffset, u.endOffset! + 1), startOffset: t.startOffset, startLine: t.startLine, startColumn: t.startColumn });
      break;
    }
  }
  if (!reopened.size) return lexed;
  const spans = [...reopened.values()].map((t) => [t.startOffset, t.endOffset!] as const);
  let k = 0;
  const outside = (o: number) => {
    while (k < spans.length && spans[k]![1] < o) k++;
    return !(k < spans.length && o >= spans[k]![0] && o <= spans[k]![1]);
  };
  const keep = <X>(xs: X[], at: (x: X) => number) => ((k = 0), xs.filter((x) => outside(at(x))));
  return {
    tokens: keep(tokens, (t) => t.startOffset),
    comments: keep(lexed.comments, (t) => t.startOffset),
    errors: keep(lexed.errors, (e) => e.offset),
    errorTokens: [...keep(lexed.errorTokens, (t) => t.startOffset), ...reopened.values()].sort((a, b) => a.startOffset - b.startOffset),
  };
}

/**
 * A '#' glued to the end of a name and followed by ':' (`max_new_tokens#: 20`) is a stray character,
 * not a comment: the rest of its line is lexed again, so that the attribute is read whole. The '#'
 * stays an error token (skipped by the parser), added to `stray`.
 */
function splitHashes(text: string, lexed: Lexed, stray: Set<IToken>): Lexed {
  const glued = lexed.errorTokens.filter((t) => t.tokenType === T.HashComment && /[\p{L}\p{N}_]/u.test(text[t.startOffset - 1] ?? '') && /^#[ \t]*:/.test(t.image));
  if (!glued.length) return lexed;
  const out: Lexed = { tokens: [...lexed.tokens], comments: [...lexed.comments], errors: [...lexed.errors], errorTokens: lexed.errorTokens.filter((t) => !glued.includes(t)) };
  for (const h of glued) {
    const from = h.startOffset + 1;
    const shift = (t: IToken): IToken => ({
      ...t,
      startOffset: t.startOffset + from,
      endOffset: t.endOffset! + from,
      startLine: h.startLine,
      endLine: h.startLine,
      startColumn: t.startColumn! + h.startColumn!,
      endColumn: t.endColumn! + h.startColumn!,
    });
    const sub = T.BlipLexer.tokenize(text.slice(from, h.endOffset! + 1));
    const hash = { ...h, image: '#', endOffset: h.startOffset, endColumn: h.startColumn };
    stray.add(hash);
    out.errorTokens.push(hash, ...((sub.groups.errors ?? []) as IToken[]).map(shift));
    out.tokens.push(...sub.tokens.map(shift));
    out.comments.push(...((sub.groups.comments ?? []) as IToken[]).map(shift));
    out.errors.push(...sub.errors.map((e) => ({ ...e, offset: e.offset + from, column: e.column === undefined ? undefined : e.column + h.startColumn!, line: h.startLine })));
  }
  const byStart = (a: { startOffset: number }, b: { startOffset: number }) => a.startOffset - b.startOffset;
  out.tokens.sort(byStart);
  out.comments.sort(byStart);
  out.errorTokens.sort(byStart);
  out.errors.sort((a, b) => a.offset - b.offset);
  return out;
}

/** The keywords a declared name follows: `node NAME`, `input NAME`, `model NAME extends NAME`. */
const NAME_AFTER = new Set<unknown>([T.Node, T.Input, T.Output, T.Model, T.Extends]);

/**
 * A name that starts with a digit (`node 1vision: …`) lexes as a malformed number: where a name
 * goes, it is reported as such (BLIP1001) and read as the name, so that the rest parses.
 */
function digitNames(src: SourceFile, tokens: IToken[], diagnostics: Diagnostic[], handled: Set<IToken>): IToken[] {
  let parens = 0;
  return tokens.map((t, i) => {
    if (t.tokenType === T.LParen) parens++;
    else if (t.tokenType === T.RParen) parens = Math.max(0, parens - 1);
    if (t.tokenType !== T.MalformedNumber || !/^\d+[\p{L}_][\p{L}\p{M}\p{N}_]*$/u.test(t.image)) return t;
    const prev = tokens[i - 1]?.tokenType;
    const inArgs = parens > 0 && (prev === T.LParen || prev === T.Comma || prev === T.Colon);
    if (!inArgs && !NAME_AFTER.has(prev) && tokens[i + 1]?.tokenType !== T.LParen) return t;
    const digits = /^\d+/.exec(t.image)![0];
    diagnostics.push(
      diagnostic('BLIP1001', src.loc(t.startOffset, t.startOffset + 1), `unexpected digit '${digits[0]}' at the start of the name '${t.image}': expected a name to start with a letter or _`),
    );
    handled.add(t);
    return { ...t, tokenType: T.Identifier, tokenTypeIdx: T.Identifier.tokenTypeIdx! };
  });
}

/** Tokens that start a list item. */
const VALUE_START = new Set<unknown>([T.Int, T.Float, T.StringLiteral, T.True, T.False, T.Identifier, T.LBracket]);

/**
 * A missing or doubled comma in a list (`[0.5 0.5]`, `[red green, blue]`, `[0.5,, 0.5]`) is one
 * error, and the list is read as meant (the comma supplied, the extra one left out): the parser's
 * own recovery would read a name after a value as the next attribute's key, or stop at the second
 * comma, and report again at the ']'. A name followed by ':' is a key after a list left open, and
 * a token no list holds ends any open list, as in limitNesting.
 */
function listCommas(src: SourceFile, tokens: IToken[], diagnostics: Diagnostic[]): IToken[] {
  const out: IToken[] = [];
  let depth = 0;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (depth > 0 && !IN_LISTS.has(t.tokenType)) depth = 0;
    const prev = out[out.length - 1]?.tokenType;
    if (depth > 0) {
      if (t.tokenType === T.Comma && (prev === T.LBracket || prev === T.Comma)) {
        diagnostics.push(diagnostic('BLIP1010', src.loc(t.startOffset, t.endOffset! + 1), `expected a value or ']', found ','`));
        continue;
      }
      const item = VALUE_START.has(t.tokenType) && !(t.tokenType === T.Identifier && tokens[i + 1]?.tokenType === T.Colon);
      if (item && AFTER_VALUE.has(prev)) {
        diagnostics.push(diagnostic('BLIP1010', src.loc(t.startOffset, t.endOffset! + 1), `expected ',' or ']', found '${t.image}'`));
        out.push({ ...t, image: ',', tokenType: T.Comma, tokenTypeIdx: T.Comma.tokenTypeIdx!, endOffset: t.startOffset });
      }
    }
    if (t.tokenType === T.LBracket) depth++;
    else if (t.tokenType === T.RBracket) depth = Math.max(0, depth - 1);
    out.push(t);
  }
  return out;
}

/** Drops lists nested deeper than MAX_LIST_DEPTH (reported once each) so parsing stays shallow. */
const IN_LISTS = new Set<unknown>([T.LBracket, T.RBracket, T.Comma, T.Int, T.Float, T.StringLiteral, T.True, T.False, T.Identifier]);

function limitNesting(src: SourceFile, tokens: IToken[], out: Diagnostic[]): IToken[] {
  let depth = 0;
  let dropFrom = -1;
  const kept: IToken[] = [];
  for (const t of tokens) {
    // a token no list holds ('}', '(', ':', a keyword …) ends any list left open: what follows is
    // parsed again, not dropped to the end of the file
    if (depth > 0 && !IN_LISTS.has(t.tokenType)) {
      depth = 0;
      dropFrom = -1;
    }
    if (t.tokenType === T.LBracket) {
      depth++;
      if (depth > MAX_LIST_DEPTH && dropFrom < 0) {
        dropFrom = depth;
        out.push(diagnostic('BLIP1014', src.loc(t.startOffset, t.startOffset + 1), `list nested too deeply: expected at most ${MAX_LIST_DEPTH} levels of '['`));
      }
    }
    if (dropFrom < 0) kept.push(t);
    if (t.tokenType === T.RBracket && depth > 0) {
      if (depth === dropFrom) dropFrom = -1;
      depth--;
    }
  }
  return kept;
}

function parseDiagnostic(src: SourceFile, e: IRecognitionException, tokens: IToken[]): Diagnostic {
  const [code, message] = e.message.includes('|') ? (e.message.split(/\|(.*)/s, 2) as [Code, string]) : (['BLIP1010', e.message] as [Code, string]);
  const t = e.token;
  let start: number;
  let end: number;
  if (t && Number.isFinite(t.startOffset) && !t.isInsertedInRecovery) [start, end] = [t.startOffset, (t.endOffset ?? t.startOffset) + 1];
  else {
    // End of file or a token inserted in recovery (NaN positions): point just after the last real
    // token before it.
    const prev = (e as { previousToken?: IToken }).previousToken;
    const last = prev && Number.isFinite(prev.startOffset) ? prev : tokens[tokens.length - 1];
    start = end = last ? (last.endOffset ?? last.startOffset) + 1 : 0;
  }
  return diagnostic(code, src.loc(start, end), message);
}

/** Tokens that end a value in a list. */
const AFTER_VALUE = new Set<unknown>([T.Int, T.Float, T.StringLiteral, T.True, T.False, T.Identifier, T.RBracket]);

/** The keywords that start a model member (and 'override', which may precede one). */
const MEMBER_START = new Set<unknown>([T.Node, T.Input, T.Output, T.Override, T.Preprocess, T.Generation]);

/** What an output computes (`output caption: generate(decoder)`), as a node's kind follows a node's name. */
const OUTPUT_TASKS = new Set(['generate', 'itm', 'itc']);

/**
 * A reserved word where a declaration's name or an attribute's key goes (`node input: vit(image)`,
 * `generation { input: 10 }`) is reported once and then read as that name, so the rest of the
 * declaration parses instead of failing token by token. `override input` is reported and read
 * as `input`. A reserved word as a node's kind (`node d: output(x)`) is reported and read as a kind.
 */
function reservedWords(src: SourceFile, tokens: IToken[], diagnostics: Diagnostic[]): IToken[] {
  const declared = new Set<string>(); // in the current model
  let parens = 0;
  let braces = 0;
  let brackets = 0; // open '[' since the last token no list holds
  const asName = (t: IToken): IToken => ({ ...t, tokenType: T.Identifier, tokenTypeIdx: T.Identifier.tokenTypeIdx! });
  const out: IToken[] = [];
  const meant = new Map<number, IToken>(); // a token read as the keyword it misspells
  tokens.forEach((t, i) => out.push(...(meant.has(i) ? [meant.get(i)!] : read(t, i))));
  return out;
  function read(t: IToken, i: number): IToken[] {
    if (t.tokenType === T.Model && braces === 0) declared.clear(); // a new model declaration
    else if (t.tokenType === T.LCurly) braces++;
    else if (t.tokenType === T.RCurly) braces = Math.max(0, braces - 1);
    else if (t.tokenType === T.LParen) parens++;
    else if (t.tokenType === T.RParen) parens = Math.max(0, parens - 1);
    if (t.tokenType === T.LBracket) brackets++;
    else if (t.tokenType === T.RBracket) brackets = Math.max(0, brackets - 1);
    else if (!IN_LISTS.has(t.tokenType) && !T.KEYWORDS.has(t.tokenType)) brackets = 0;
    // (true and false are values too: `causal: true` must stay one)
    if (i === 0 || !T.KEYWORDS.has(t.tokenType) || t.tokenType === T.True || t.tokenType === T.False) return [t];
    const loc = src.loc(t.startOffset, t.endOffset! + 1);
    const prev = tokens[i - 1]!.tokenType;
    const next = tokens[i + 1]?.tokenType;
    // in a list, followed by ',' or ']' (`mean: [0.48 input, 0.45]`): not a member starting (recovery
    // would resume at it, ending the model), but a value given as a reserved word, or a stray word
    // after a value, reported and left out
    if (brackets > 0 && braces >= 2 && parens === 0 && (next === T.Comma || next === T.RBracket)) {
      if (prev === T.LBracket || prev === T.Comma) {
        diagnostics.push(diagnostic('BLIP1010', loc, `expected a value, found '${t.image}' ('${t.image}' is a reserved word: write it as a string, "${t.image}")`));
        return [asName(t)];
      }
      if (AFTER_VALUE.has(prev)) {
        diagnostics.push(diagnostic('BLIP1010', loc, `expected ',' or ']', found '${t.image}'`));
        return [];
      }
    }
    brackets = 0;
    if (t.tokenType === T.Override && next === T.Input) {
      diagnostics.push(diagnostic('BLIP1010', loc, `expected 'node' or 'output' after 'override', found 'input' (an input is not overridden: redeclare it with the same type, without 'override')`));
      return [];
    }
    // `override nod x { … }`: one error at the misspelt word, which is then read as 'node' (or
    // 'output', when it is nearer that), so the member parses instead of failing at 'override'.
    // `override vision: vit(…)`: the keyword left out, the word is the name: one error there, and a
    // 'node' (or an 'output', before `generate(`, `itm(`, `itc(`) read before it.
    if (t.tokenType === T.Override && next === T.Identifier) {
      const word = tokens[i + 1]!;
      const named = tokens[i + 2]?.tokenType === T.Identifier;
      const guess = named ? closest(word.image, ['node', 'output']) : undefined;
      diagnostics.push(
        diagnostic('BLIP1010', src.loc(word.startOffset, word.endOffset! + 1), `expected 'node' or 'output' after 'override', found '${word.image}'${guess ? `; did you mean '${guess}'?` : ''}`),
      );
      if (named) {
        const kw = guess === 'output' ? T.Output : T.Node;
        meant.set(i + 1, { ...word, tokenType: kw, tokenTypeIdx: kw.tokenTypeIdx! });
        return [t];
      }
      const task = tokens[i + 2]?.tokenType === T.Colon && tokens[i + 4]?.tokenType === T.LParen ? tokens[i + 3] : undefined;
      const kw = task?.tokenType === T.Identifier && OUTPUT_TASKS.has(task.image) ? T.Output : T.Node;
      // (no text of its own: it ends before the name begins)
      const inserted: IToken = { ...word, image: kw === T.Output ? 'output' : 'node', endOffset: word.startOffset - 1, endColumn: word.startColumn! - 1, tokenType: kw, tokenTypeIdx: kw.tokenTypeIdx! };
      return [t, inserted];
    }
    // a use of the name so declared, as a node's input (`bert(model, cross: v)`): read as the name, not reported again
    if (declared.has(t.image) && parens > 0 && (prev === T.LParen || prev === T.Comma || prev === T.Colon) && (next === T.Comma || next === T.RParen)) return [asName(t)];
    // a key in an attribute block (the model's body is the first brace)
    if (braces >= 2 && parens === 0 && next === T.Colon) {
      diagnostics.push(diagnostic('BLIP1010', loc, `expected an attribute name, found '${t.image}' ('${t.image}' is a reserved word: no attribute has that name)`));
      return [asName(t)];
    }
    // a value in an attribute block (`prompt: model`): a name as a value is a string, but not a reserved word
    // (but a member keyword starting a line after the ':' begins the next member: the value is missing)
    if (braces >= 2 && parens === 0 && prev === T.Colon && !(MEMBER_START.has(t.tokenType) && t.startLine! > tokens[i - 1]!.endLine!)) {
      diagnostics.push(diagnostic('BLIP1010', loc, `expected a value, found '${t.image}' ('${t.image}' is a reserved word: write it as a string, "${t.image}")`));
      return [asName(t)];
    }
    // a node's kind (`node decoder: output(prompt)`): read as a kind no node has, which is then not reported again
    if (prev === T.Colon && next === T.LParen && tokens[i - 3]?.tokenType === T.Node) {
      diagnostics.push(diagnostic('BLIP1010', loc, `expected a node kind, found '${t.image}' ('${t.image}' is a reserved word, not a kind)`));
      return [asName(t)];
    }
    // (`model m extends` then `{`… is not this: only a word followed by what follows a name)
    if (!NAME_AFTER.has(prev) || (next !== T.Colon && next !== T.LCurly && next !== T.Extends)) return [t];
    diagnostics.push(diagnostic('BLIP1010', loc, `expected a name, found '${t.image}' ('${t.image}' is a reserved word: choose another name)`));
    declared.add(t.image);
    return [asName(t)];
  }
}

export function parse(text: string, file: string): ParseResult {
  const source = new SourceFile(file, text);
  const empty: ProgramSyntax = { file, decls: [], comments: [] };
  const refused = refuseBeforeLexing(source);
  if (refused) return { ast: empty, source, damage: [0], diagnostics: [refused] };
  const raw = T.BlipLexer.tokenize(text);
  const stray = new Set<IToken>(); // a '#' glued to a name, '=' before '{'
  const lexed = splitHashes(text, reopenStrings(text, { tokens: raw.tokens, errorTokens: (raw.groups.errors ?? []) as IToken[], comments: (raw.groups.comments ?? []) as IToken[], errors: raw.errors }), stray);
  // Error tokens the parser reads as what was meant (a '#' comment is skipped), sorted in.
  const meant = lexed.errorTokens.filter((t) => t.tokenType !== T.UnterminatedComment && t.tokenType !== T.HashComment);
  const merged = meant.length ? [...lexed.tokens, ...meant].sort((a, b) => a.startOffset - b.startOffset) : lexed.tokens;
  const later: Diagnostic[] = [];
  const asNames = new Set<IToken>();
  const named = digitNames(source, merged, later, asNames).filter((t, i, all) => {
    // `node qformer = {`: the '=' is left out (`node NAME {` refines a node), not read as ':' (a kind to follow)
    if (t.tokenType !== T.Equals || all[i + 1]?.tokenType !== T.LCurly) return true;
    stray.add(t);
    return false;
  });
  // The tree is whole after lexical errors read as what was meant, but for a name misspelt (its
  // other uses may be spelt otherwise) or text an open string or comment swallowed.
  const damage = later.map((d) => d.loc.start);
  const diagnostics = lexDiagnostics(source, lexed.errors, lexed.tokens, lexed.errorTokens.filter((t) => !asNames.has(t)), damage, stray);
  for (const d of later) diagnostics.push(d);
  // Bytes that were not UTF-8 inside a string or a comment, which the lexer takes as they are
  // (outside them the lexer has reported its run of unexpected characters already). They decode
  // to U+FFFD, which is refused wherever it stands: written as such, it marks text an earlier
  // conversion already lost.
  // (the errors are sorted: one pointer walks them, as a search of all for each U+FFFD took 9 s for 200 KB of random bytes)
  const unexpected = lexed.errors.map((e) => [e.offset, e.offset + e.length] as const).sort((x, y) => x[0] - y[0]);
  let u = 0;
  for (let i = text.indexOf('\ufffd'); i >= 0; i = text.indexOf('\ufffd', i + 1)) {
    while (u < unexpected.length && unexpected[u]![1] <= i) u++;
    if (u < unexpected.length && i >= unexpected[u]![0]) continue;
    diagnostics.push(diagnostic('BLIP1001', source.loc(i, i + 1), `unexpected bytes that are not UTF-8, or a U+FFFD replacement character: expected UTF-8 text (save the file as UTF-8)`));
  }
  // An unterminated string is read as if closed at the end of its line, '…' as a string, '=' as
  // ':', a malformed number as a number (its value NaN, not reported again).
  const readAs = (t: IToken, type: TokenType, extra: object = {}): IToken => ({ ...t, tokenType: type, tokenTypeIdx: type.tokenTypeIdx!, ...extra });
  const converted = named.map((t) =>
    t.tokenType === T.MalformedNumber
      ? readAs(t, T.Int)
      : t.tokenType === T.UnterminatedString
        ? readAs(t, T.StringLiteral, { unterminated: true })
        : t.tokenType === T.SingleQuotedString
          ? readAs(t, T.StringLiteral)
          : t.tokenType === T.Equals
            ? readAs(t, T.Colon)
            : t,
  );
  const lexical = diagnostics.length;
  const tokens = limitNesting(source, listCommas(source, reservedWords(source, converted, diagnostics), diagnostics), diagnostics);
  for (const d of diagnostics.slice(lexical)) damage.push(d.loc.start);

  let cst: C.ProgramCstNode | undefined;
  // (the parser throws an exception at every syntax error and catches it: their stack traces, unused,
  // were a fifth of the time taken by a file of 60k errors)
  const stackTraceLimit = Error.stackTraceLimit;
  try {
    parser.input = tokens;
    Error.stackTraceLimit = 0;
    try {
      cst = parser.program() as C.ProgramCstNode;
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
    // (two errors at one place are one mistake: the first says it)
    const seen = new Set<number>(diagnostics.map((d) => d.loc.start));
    for (const e of parser.errors) {
      const d = parseDiagnostic(source, e, tokens);
      damage.push(d.loc.start);
      if (!seen.has(d.loc.start)) diagnostics.push(d);
      seen.add(d.loc.start);
    }
  } finally {
    parser.input = [];
  }
  const builder = new AstBuilder(source);
  const ast = cst ? builder.program(cst) : empty;
  for (const d of builder.diagnostics) diagnostics.push(d);
  ast.comments = lexed.comments.map((t) => ({ text: t.image, start: t.startOffset, end: t.endOffset! + 1 }));
  if (!ast.decls.some((d) => d.type === 'model') && !diagnostics.length) {
    const at = tokens.length ? source.loc(tokens[0].startOffset, tokens[0].endOffset! + 1) : source.loc(text.length, text.length);
    diagnostics.push(diagnostic('BLIP1013', at, `no model declared: expected at least one 'model NAME { … }' declaration, found ${tokens.length ? 'only imports' : text.trim() ? 'only comments' : 'an empty file'}`));
  }
  return { ast, source, diagnostics, damage };
}
