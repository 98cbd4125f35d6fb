// A model after imports and `extends` are resolved but before checks: every member with where it
// was written (which may be a base model's file). The checks (src/checks) read this; ir.ts turns a
// checked draft into an IrModel.
import type { SourceLoc } from '../ir/types.js';
import type { SourceFile } from '../diagnostics/SourceFile.js';
import type { ValueSyntax } from './ast.js';

export interface DraftAttr {
  key: string;
  keyLoc: SourceLoc;
  /** Undefined after a parse error in the value. */
  value?: ValueSyntax;
  valueLoc: SourceLoc;
  src: SourceFile;
}

export interface DraftArg {
  /** '' for a positional argument. */
  port: string;
  portLoc?: SourceLoc;
  source: string;
  sourceLoc: SourceLoc;
  /** The whole argument (`port: source`). */
  loc: SourceLoc;
}

export interface DraftNode {
  name: string;
  loc: SourceLoc;
  kind: string;
  kindLoc: SourceLoc;
  args: DraftArg[];
  /** The parenthesised argument list (or the kind name when it was lost in recovery). */
  argsLoc: SourceLoc;
  frozen: boolean;
  checkpoint?: string;
  checkpointLoc?: SourceLoc;
  attrs: Map<string, DraftAttr>;
  /** Which model declared it (differs from the draft's model when inherited). */
  declaredIn: string;
}

export interface DraftInput {
  name: string;
  loc: SourceLoc;
  type: string;
  typeLoc: SourceLoc;
}

export interface DraftOutput {
  name: string;
  loc: SourceLoc;
  task: string;
  taskLoc: SourceLoc;
  args: Array<{ name: string; loc: SourceLoc }>;
  /** From the task name to the closing parenthesis. */
  callLoc: SourceLoc;
}

export interface DraftModel {
  name: string;
  loc: SourceLoc;
  file: string;
  base?: string;
  inputs: Map<string, DraftInput>;
  nodes: Map<string, DraftNode>;
  outputs: Map<string, DraftOutput>;
  preprocess: Map<string, DraftAttr>;
  generation: Map<string, DraftAttr>;
}

export function cloneDraft(d: DraftModel): DraftModel {
  return {
    ...d,
    inputs: new Map(d.inputs),
    nodes: new Map([...d.nodes].map(([k, n]) => [k, { ...n, attrs: new Map(n.attrs) }])),
    outputs: new Map(d.outputs),
    preprocess: new Map(d.preprocess),
    generation: new Map(d.generation),
  };
}
