// The `.blip` parser: a chevrotain CstParser with error recovery and no embedded actions. One RULE
// per production, its EBNF above it (grammar/grammar.md collects them). The CST it builds is typed
// by grammar/cst.generated.d.ts and turned into the syntax tree by src/syntax/toAst.ts.
import { CstParser, EOF, MismatchedTokenException, tokenMatcher, type IParserErrorMessageProvider, type IToken, type TokenType } from 'chevrotain';
import { didYouMean } from '../src/diagnostics/suggest.js';
import * as T from './tokens.js';

const describe = (t: IToken): string => (t.tokenType === EOF ? 'end of file' : `'${t.image.length > 40 ? t.image.slice(0, 40) + '…' : t.image}'`);
const label = (t: TokenType): string => t.LABEL ?? t.name;

function oneOf(labels: string[]): string {
  const u = [...new Set(labels)];
  return u.length === 1 ? u[0] : `${u.slice(0, -1).join(', ')} or ${u[u.length - 1]}`;
}

/** What each rule is called in "expected …" messages when no alternative fits. */
const RULE_DESCRIPTIONS: Record<string, string> = {
  program: "an 'import' or a 'model' declaration",
  member: "a model member ('input', 'node', 'output', 'preprocess' or 'generation')",
  value: 'a value (number, string, true, false, name or [list])',
  nodeDecl: "':' and a node kind, or an attribute block '{'",
};

/** Where a closing token ends a repetition, the message names what could have continued it. */
const CLOSERS: Record<string, string> = {
  'modelDecl:RCurly': "a model member ('input', 'node', 'output', 'preprocess', 'generation') or '}'",
  'attrBlock:RCurly': "an attribute 'name: value' or '}'",
  'nodeDecl:RParen': "',' or ')'",
  'outputDecl:RParen': "',' or ')'",
  'list:RBracket': "',' or ']'",
};

/** The same places right after '(' / '[' or a ',': a closer or an item may follow, not another ','. */
const ITEM_OR_CLOSER: Record<string, string> = {
  'nodeDecl:RParen': "an input name or ')'",
  'outputDecl:RParen': "a node name or ')'",
  'list:RBracket': "a value or ']'",
};
const OPENS_ITEM = new Set(['Comma', 'LParen', 'LBracket']);
const MEMBER_WORDS = ['input', 'node', 'override', 'output', 'preprocess', 'generation'];

/**
 * Messages of the form "CODE|expected X, found Y". src/syntax/parse.ts splits off the diagnostic
 * code: BLIP1010 a token other than the one required, BLIP1011 nothing that could start here,
 * BLIP1012 text after a declaration where only `import` or `model` may start.
 */
export const errorMessageProvider: IParserErrorMessageProvider = {
  buildMismatchTokenMessage: ({ expected, actual, previous, ruleName }) => {
    if (expected === EOF) return `BLIP1012|expected ${RULE_DESCRIPTIONS.program}, found ${describe(actual)}`;
    const key = `${ruleName}:${expected.name}`;
    const what = (OPENS_ITEM.has(previous?.tokenType?.name ?? '') ? ITEM_OR_CLOSER[key] : undefined) ?? CLOSERS[key] ?? label(expected);
    // 'node input: …': a reserved word where a name goes
    const reserved = expected === T.Identifier && T.KEYWORDS.has(actual.tokenType) ? ` ('${actual.image}' is a reserved word: choose another name)` : '';
    // 'frozn' after a node's inputs, 'nod' for a member: a misspelt keyword
    const words = key === 'modelDecl:RCurly' && actual.tokenType === T.Identifier ? [...MEMBER_WORDS, ...(previous?.tokenType === T.RParen ? ['frozen'] : [])] : [];
    return `BLIP1010|expected ${what}, found ${describe(actual)}${reserved}${didYouMean(actual.image, words)}`;
  },
  buildNotAllInputParsedMessage: ({ firstRedundant }) => `BLIP1012|expected ${RULE_DESCRIPTIONS.program}, found ${describe(firstRedundant)}`,
  buildNoViableAltMessage: ({ expectedPathsPerAlt, actual, ruleName }) => {
    const firsts = expectedPathsPerAlt.flatMap((alt) => alt.map((path) => label(path[0])));
    return `BLIP1011|expected ${RULE_DESCRIPTIONS[ruleName] ?? oneOf(firsts)}, found ${describe(actual[0])}`;
  },
  buildEarlyExitMessage: ({ expectedIterationPaths, actual }) =>
    `BLIP1011|expected ${oneOf(expectedIterationPaths.map((p) => label(p[0])))}, found ${describe(actual[0])}`,
};

/** Recovery skips what these bracket, so a '}' inside a broken member's attributes does not close its model. */
const OPENERS = new Set<TokenType>([T.LCurly, T.LParen, T.LBracket]);
const CLOSING = new Set<TokenType>([T.RCurly, T.RParen, T.RBracket]);
/** Words that only start a member or a declaration: recovery may resume at them inside unclosed brackets too. */
const STARTERS = new Set<TokenType>([T.Input, T.Node, T.Override, T.Output, T.Preprocess, T.Generation, T.Model, T.Import]);

/** Chevrotain's recovery internals that BlipParser replaces or calls (not in its typings). */
interface RecoveryInternals {
  flattenFollowSet(): TokenType[];
  exportLexerState(): number;
  importLexerState(state: number): void;
  getCurrRuleFullName(): string;
  SAVE_ERROR(e: Error): void;
  SKIP_TOKEN(): IToken;
  LA(k: number): IToken;
}

/** How deep repetition recovery may nest (each re-entry is a stack frame or several). */
const MAX_REENTRIES = 200;

export class BlipParser extends CstParser {
  private reentries = 0;

  private get internals(): RecoveryInternals {
    return this as unknown as RecoveryInternals;
  }

  /**
   * Where recovery may resume: LA(k) for the first token at bracket depth 0 (or a STARTER) that
   * matches one of `types`. Chevrotain's own search ignores nesting.
   */
  private resumePoint(types: TokenType[]): { k: number; type: TokenType } {
    let depth = 0;
    for (let k = 1; ; k++) {
      const t = this.internals.LA(k);
      if (t.tokenType === EOF) return { k, type: EOF };
      const starter = STARTERS.has(t.tokenType);
      if (depth === 0 || starter) {
        const type = types.find((tt) => tokenMatcher(t, tt));
        if (type) return { k, type };
      }
      if (starter) depth = 0;
      else if (OPENERS.has(t.tokenType)) depth++;
      else if (CLOSING.has(t.tokenType) && depth > 0) depth--;
    }
  }

  /** (overrides chevrotain) The token type rule-level recovery resynchronises at. */
  findReSyncTokenType(): TokenType {
    return this.resumePoint(this.internals.flattenFollowSet()).type;
  }

  /** (overrides chevrotain) Skips to the point findReSyncTokenType found. */
  reSyncTo(tokType: TokenType): IToken[] {
    const { k } = this.resumePoint([tokType]);
    const skipped: IToken[] = [];
    for (let i = 1; i < k; i++) {
      skipped.push(this.internals.LA(1));
      this.internals.SKIP_TOKEN();
    }
    return skipped;
  }

  /**
   * (overrides chevrotain) After a repetition (a model's members, a block's attributes) stops at a
   * token that neither continues nor closes it: skip to the next item (re-entering the repetition)
   * or to its closer, one error for the skipped run, bracket-aware as above.
   */
  tryInRepetitionRecovery(grammarRule: (...args: unknown[]) => void, grammarRuleArgs: unknown[], lookAheadFunc: () => boolean, expectedTokType: TokenType): void {
    const p = this.internals;
    const reSyncTokType = this.findReSyncTokenType();
    const saved = p.exportLexerState();
    const actual = p.LA(1);
    const previous = p.LA(0);
    const report = () => {
      const msg = errorMessageProvider.buildMismatchTokenMessage({ expected: expectedTokType, actual, previous, ruleName: p.getCurrRuleFullName() });
      p.SAVE_ERROR(new MismatchedTokenException(msg, actual, previous));
    };
    let depth = 0;
    for (;;) {
      const t = p.LA(1);
      if (t.tokenType === EOF) break;
      const starter = STARTERS.has(t.tokenType);
      if (depth === 0 || starter) {
        if (tokenMatcher(t, expectedTokType)) return report();
        // (re-entering recurses: past MAX_REENTRIES errors in one repetition, the rule-level recovery takes over)
        if (this.reentries < MAX_REENTRIES && lookAheadFunc.call(this)) {
          report();
          this.reentries++;
          try {
            grammarRule.apply(this, grammarRuleArgs);
          } finally {
            this.reentries--;
          }
          return;
        }
        if (tokenMatcher(t, reSyncTokType)) break;
      }
      if (starter) depth = 0;
      else if (OPENERS.has(t.tokenType)) depth++;
      else if (CLOSING.has(t.tokenType) && depth > 0) depth--;
      p.SKIP_TOKEN();
    }
    p.importLexerState(saved);
  }

  constructor() {
    super(T.allTokens, { recoveryEnabled: true, maxLookahead: 3, errorMessageProvider });
    this.performSelfAnalysis();
  }

  // program = { importDecl | modelDecl } ;
  program = this.RULE('program', () => {
    this.MANY(() => this.OR([{ ALT: () => this.SUBRULE(this.importDecl) }, { ALT: () => this.SUBRULE(this.modelDecl) }]));
  });

  // importDecl = "import" String ;
  importDecl = this.RULE('importDecl', () => {
    this.CONSUME(T.Import);
    this.CONSUME(T.StringLiteral);
  });

  // modelDecl = "model" Name [ "extends" Name ] "{" { member } "}" ;
  modelDecl = this.RULE('modelDecl', () => {
    this.CONSUME(T.Model);
    this.CONSUME(T.Identifier, { LABEL: 'name' });
    this.OPTION(() => {
      this.CONSUME(T.Extends);
      this.CONSUME2(T.Identifier, { LABEL: 'base' });
    });
    this.CONSUME(T.LCurly);
    this.MANY(() => this.SUBRULE(this.member));
    this.CONSUME(T.RCurly);
  });

  // member = inputDecl | nodeDecl | outputDecl | block ;
  member = this.RULE('member', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.inputDecl) },
      { ALT: () => this.SUBRULE(this.nodeDecl) },
      { ALT: () => this.SUBRULE(this.outputDecl) },
      { ALT: () => this.SUBRULE(this.block) },
    ]);
  });

  // inputDecl = "input" Name ":" Name ;            (the type: image | text)
  inputDecl = this.RULE('inputDecl', () => {
    this.CONSUME(T.Input);
    this.CONSUME(T.Identifier, { LABEL: 'name' });
    this.CONSUME(T.Colon);
    this.CONSUME2(T.Identifier, { LABEL: 'type' });
  });

  // nodeDecl = [ "override" ] "node" Name
  //            ( ":" Name "(" [ arg { "," arg } ] ")" [ "frozen" ] [ "@" String ] [ attrBlock ]
  //            | attrBlock ) ;
  // The second form refines the attributes of an inherited node.
  nodeDecl = this.RULE('nodeDecl', () => {
    this.OPTION(() => this.CONSUME(T.Override));
    this.CONSUME(T.Node);
    this.CONSUME(T.Identifier, { LABEL: 'name' });
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.Colon);
          this.CONSUME2(T.Identifier, { LABEL: 'kind' });
          this.CONSUME(T.LParen);
          this.OPTION2(() => {
            this.SUBRULE(this.arg);
            this.MANY(() => {
              this.CONSUME(T.Comma);
              this.SUBRULE2(this.arg);
            });
          });
          this.CONSUME(T.RParen);
          this.OPTION3(() => this.CONSUME(T.Frozen));
          this.OPTION4(() => {
            this.CONSUME(T.At);
            this.CONSUME(T.StringLiteral, { LABEL: 'checkpoint' });
          });
          this.OPTION5(() => this.SUBRULE(this.attrBlock));
        },
      },
      { ALT: () => this.SUBRULE2(this.attrBlock) },
    ]);
  });

  // arg = [ Name ":" ] Name ;                       (port: source, or a positional source)
  arg = this.RULE('arg', () => {
    this.OPTION(() => {
      this.CONSUME(T.Identifier, { LABEL: 'port' });
      this.CONSUME(T.Colon);
    });
    this.CONSUME2(T.Identifier, { LABEL: 'source' });
  });

  // outputDecl = [ "override" ] "output" Name ":" Name "(" [ Name { "," Name } ] ")" ;
  outputDecl = this.RULE('outputDecl', () => {
    this.OPTION(() => this.CONSUME(T.Override));
    this.CONSUME(T.Output);
    this.CONSUME(T.Identifier, { LABEL: 'name' });
    this.CONSUME(T.Colon);
    this.CONSUME2(T.Identifier, { LABEL: 'task' });
    this.CONSUME(T.LParen);
    this.OPTION2(() => {
      this.CONSUME3(T.Identifier, { LABEL: 'args' });
      this.MANY(() => {
        this.CONSUME(T.Comma);
        this.CONSUME4(T.Identifier, { LABEL: 'args' });
      });
    });
    this.CONSUME(T.RParen);
  });

  // block = ( "preprocess" | "generation" ) attrBlock ;
  block = this.RULE('block', () => {
    this.OR([{ ALT: () => this.CONSUME(T.Preprocess) }, { ALT: () => this.CONSUME(T.Generation) }]);
    this.SUBRULE(this.attrBlock);
  });

  // attrBlock = "{" { attr [ "," ] } "}" ;
  attrBlock = this.RULE('attrBlock', () => {
    this.CONSUME(T.LCurly);
    this.MANY(() => {
      this.SUBRULE(this.attr);
      this.OPTION(() => this.CONSUME(T.Comma));
    });
    this.CONSUME(T.RCurly);
  });

  // attr = Name ":" value ;
  attr = this.RULE('attr', () => {
    this.CONSUME(T.Identifier, { LABEL: 'key' });
    this.CONSUME(T.Colon);
    this.SUBRULE(this.value);
  });

  // value = Int | Float | String | "true" | "false" | Name | list ;
  value = this.RULE('value', () => {
    this.OR([
      { ALT: () => this.CONSUME(T.Int) },
      { ALT: () => this.CONSUME(T.Float) },
      { ALT: () => this.CONSUME(T.StringLiteral) },
      { ALT: () => this.CONSUME(T.True) },
      { ALT: () => this.CONSUME(T.False) },
      { ALT: () => this.CONSUME(T.Identifier) },
      { ALT: () => this.SUBRULE(this.list) },
    ]);
  });

  // list = "[" [ value { "," value } [ "," ] ] "]" ;
  list = this.RULE('list', () => {
    this.CONSUME(T.LBracket);
    this.OPTION(() => {
      this.SUBRULE(this.value);
      this.MANY({
        GATE: () => this.LA(2).tokenType !== T.RBracket,
        DEF: () => {
          this.CONSUME(T.Comma);
          this.SUBRULE2(this.value);
        },
      });
      this.OPTION2(() => this.CONSUME2(T.Comma));
    });
    this.CONSUME(T.RBracket);
  });
}

/** One parser instance, reused (chevrotain parsers are reset by assigning `input`). */
export const parser = new BlipParser();
