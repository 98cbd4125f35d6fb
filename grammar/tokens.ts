// The tokens of the `.blip` language. Order matters: chevrotain tries patterns in this order and
// takes the first match, so keywords (with `longer_alt: Identifier`) precede Identifier, BlockComment
// precedes UnterminatedComment, Float precedes Int. Each LABEL is how parse errors name the token.
// Spec: grammar/grammar.md ("Lexical structure").
import { createToken, Lexer, type TokenType } from 'chevrotain';

// Whitespace, including CR of CRLF line ends. Newlines are not significant.
export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n]+/, group: Lexer.SKIPPED, line_breaks: true });
/** A byte-order mark as the file's first character, skipped; one anywhere else is BLIP1001. */
export const ByteOrderMark = createToken({
  name: 'ByteOrderMark',
  pattern: { exec: (text: string, offset: number) => (offset === 0 && text.charCodeAt(0) === 0xfeff ? (['\ufeff'] as unknown as RegExpExecArray) : null) },
  group: Lexer.SKIPPED,
  line_breaks: false,
});
export const LineComment = createToken({ name: 'LineComment', pattern: /\/\/[^\r\n]*/, group: 'comments' });
export const BlockComment = createToken({ name: 'BlockComment', pattern: /\/\*[\s\S]*?\*\//, group: 'comments', line_breaks: true });
/** `/*` with no closing `*\/` before the end of the file: reported as BLIP1003. */
export const UnterminatedComment = createToken({ name: 'UnterminatedComment', pattern: /\/\*[\s\S]*/, group: 'errors', line_breaks: true });

/**
 * Names are ASCII letters, digits and `_`. Other letters are matched too, so that `visión` is one
 * name with one error (BLIP1001, reported by src/syntax/parse.ts) rather than three tokens.
 */
const NAME = /[\p{L}_][\p{L}\p{M}\p{N}_]*/uy;
export const Identifier = createToken({
  name: 'Identifier',
  // A custom matcher: chevrotain's own regex handling drops the `u` flag that \p{L} needs.
  pattern: {
    exec(text: string, offset: number): RegExpExecArray | null {
      NAME.lastIndex = offset;
      return NAME.exec(text);
    },
  },
  line_breaks: false,
  label: 'a name',
});

/** The reserved words, which cannot be names. */
export const KEYWORDS = new Set<TokenType>();

function keyword(word: string): TokenType {
  const name = word[0].toUpperCase() + word.slice(1);
  const t = createToken({ name, pattern: new RegExp(word), longer_alt: Identifier, label: `'${word}'` });
  KEYWORDS.add(t);
  return t;
}
export const Import = keyword('import');
export const Model = keyword('model');
export const Extends = keyword('extends');
export const Input = keyword('input');
export const Node = keyword('node');
export const Override = keyword('override');
export const Frozen = keyword('frozen');
export const Output = keyword('output');
export const Preprocess = keyword('preprocess');
export const Generation = keyword('generation');
export const True = keyword('true');
export const False = keyword('false');

/** A double-quoted string; escapes \" \\ \/ \n \r \t \uXXXX (checked when building the syntax tree). */
export const StringLiteral = createToken({ name: 'StringLiteral', pattern: /"(?:[^"\\\r\n]|\\[^\r\n])*"/, label: 'a string' });
/** A string in single quotes, as other languages write them: reported (BLIP1001), then read as a string. */
export const SingleQuotedString = createToken({ name: 'SingleQuotedString', pattern: /'(?:[^'\\\r\n]|\\[^\r\n])*'/, group: 'errors' });
/** A string with no closing quote on its line: reported as BLIP1002. */
export const UnterminatedString = createToken({ name: 'UnterminatedString', pattern: /"(?:[^"\\\r\n]|\\[^\r\n])*\\?/, group: 'errors' });
/** A token matched by a sticky `u` regex (chevrotain's own regex handling drops the `u` flag that \p{L} needs). */
const sticky = (re: RegExp) => ({
  exec(text: string, offset: number): RegExpExecArray | null {
    re.lastIndex = offset;
    return re.exec(text);
  },
});
// A number must not run into a letter (any script), digit, `_` or another dot: `12layers`, `12é`,
// `1.` and `1.2.3` are MalformedNumber.
export const Float = createToken({ name: 'Float', pattern: sticky(/-?\d+(?:\.\d+(?:[eE][+-]?\d+)?|[eE][+-]?\d+)(?![\p{L}\p{M}\p{N}_.])/uy), line_breaks: false, label: 'a number' });
export const Int = createToken({ name: 'Int', pattern: sticky(/-?\d+(?![\p{L}\p{M}\p{N}_.])/uy), line_breaks: false, label: 'an integer' });
/** Digits run into letters or dots (`102vocab_size`, `1.`, `1e-5.0`): reported as BLIP1006, parsed as a number. An exponent's sign stays in it. */
export const MalformedNumber = createToken({ name: 'MalformedNumber', pattern: sticky(/-?\d(?:[eE][+-]|[\p{L}\p{M}\p{N}_.])*/uy), line_breaks: false, group: 'errors' });

export const LCurly = createToken({ name: 'LCurly', pattern: /{/, label: "'{'" });
export const RCurly = createToken({ name: 'RCurly', pattern: /}/, label: "'}'" });
export const LParen = createToken({ name: 'LParen', pattern: /\(/, label: "'('" });
export const RParen = createToken({ name: 'RParen', pattern: /\)/, label: "')'" });
export const LBracket = createToken({ name: 'LBracket', pattern: /\[/, label: "'['" });
export const RBracket = createToken({ name: 'RBracket', pattern: /]/, label: "']'" });
export const Colon = createToken({ name: 'Colon', pattern: /:/, label: "':'" });
export const Comma = createToken({ name: 'Comma', pattern: /,/, label: "','" });
export const At = createToken({ name: 'At', pattern: /@/, label: "'@'" });
/** `=` where `:` goes (`max_new_tokens = 5`): reported (BLIP1001), then read as ':'. */
export const Equals = createToken({ name: 'Equals', pattern: /=/, group: 'errors' });
/** `#` to the end of the line, a comment in other languages: reported (BLIP1001), then skipped. */
export const HashComment = createToken({ name: 'HashComment', pattern: /#[^\r\n]*/, group: 'errors' });

export const keywords = [Import, Model, Extends, Input, Node, Override, Frozen, Output, Preprocess, Generation, True, False];

export const allTokens: TokenType[] = [
  WhiteSpace,
  ByteOrderMark,
  LineComment,
  BlockComment,
  UnterminatedComment,
  ...keywords,
  Identifier,
  StringLiteral,
  UnterminatedString,
  SingleQuotedString,
  Float,
  Int,
  MalformedNumber,
  LCurly,
  RCurly,
  LParen,
  RParen,
  LBracket,
  RBracket,
  Colon,
  Comma,
  At,
  Equals,
  HashComment,
];

export const BlipLexer = new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: false });
