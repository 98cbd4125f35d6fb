// The syntax tree of one `.blip` file, built from the CST by toAst.ts. Spans are offsets into the
// file's text (end exclusive). After error recovery a part may be missing (undefined); the checks
// skip what is missing instead of reporting it twice.

export interface Span {
  start: number;
  end: number;
}

export interface NameSyntax extends Span {
  text: string;
}

export interface StringSyntax extends Span {
  /** The decoded value (escapes applied). */
  value: string;
  /** As written, quotes included. */
  raw: string;
}

export type ValueSyntax =
  | (Span & { type: 'int' | 'float'; value: number; raw: string })
  | (Span & { type: 'string'; value: string; raw: string })
  | (Span & { type: 'bool'; value: boolean; raw: string })
  | (Span & { type: 'name'; value: string; raw: string })
  | (Span & { type: 'list'; items: ValueSyntax[] });

export interface AttrSyntax extends Span {
  key: NameSyntax;
  value?: ValueSyntax;
}

export interface AttrBlockSyntax extends Span {
  attrs: AttrSyntax[];
}

export interface InputSyntax extends Span {
  type: 'input';
  name?: NameSyntax;
  valueType?: NameSyntax;
}

export interface ArgSyntax extends Span {
  port?: NameSyntax;
  source?: NameSyntax;
}

export interface NodeSyntax extends Span {
  type: 'node';
  override: boolean;
  name?: NameSyntax;
  /** Absent in the refinement form `override node NAME { attrs }`. */
  kind?: NameSyntax;
  args: ArgSyntax[];
  frozen: boolean;
  checkpoint?: StringSyntax;
  attrs?: AttrBlockSyntax;
  /** Neither form could be parsed (error recovery): the declaration is skipped. */
  recovered?: boolean;
}

export interface OutputSyntax extends Span {
  type: 'output';
  override: boolean;
  name?: NameSyntax;
  task?: NameSyntax;
  args: NameSyntax[];
}

export interface BlockSyntax extends Span {
  type: 'preprocess' | 'generation';
  /** The keyword's span. */
  keyword: Span;
  attrs?: AttrBlockSyntax;
}

export type MemberSyntax = InputSyntax | NodeSyntax | OutputSyntax | BlockSyntax;

export interface ModelSyntax extends Span {
  type: 'model';
  name?: NameSyntax;
  base?: NameSyntax;
  /** Offset of the '{' that opens the body. */
  bodyStart: number;
  members: MemberSyntax[];
}

export interface ImportSyntax extends Span {
  type: 'import';
  path?: StringSyntax;
}

export interface CommentSyntax extends Span {
  text: string;
}

export interface ProgramSyntax {
  file: string;
  /** Imports and models in source order. */
  decls: Array<ImportSyntax | ModelSyntax>;
  comments: CommentSyntax[];
}
