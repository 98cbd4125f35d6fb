// What a check sees: one resolved model (src/syntax/draft.ts) and a way to report. Checks are
// functions `(ctx) => void`, one invariant each, run in the order of src/checks/index.ts.
import type { IrType, IrValue, SourceLoc } from '../ir/types.js';
import type { Code } from '../diagnostics/codes.js';
import { diagnostic, type Diagnostic, type RelatedInfo } from '../diagnostics/Diagnostic.js';
import type { NodeKind } from '../nodes/NodeKind.js';
import { nodeKinds } from '../nodes/index.js';
import type { ValueSyntax } from '../syntax/ast.js';
import type { DraftModel, DraftNode } from '../syntax/draft.js';

export type CheckRule = (ctx: CheckContext) => void;

export function toIrValue(v: ValueSyntax): IrValue {
  return v.type === 'list' ? v.items.map(toIrValue) : v.value;
}

export class CheckContext {
  readonly diagnostics: Diagnostic[] = [];
  constructor(readonly model: DraftModel) {}

  report(code: Code, loc: SourceLoc, message: string, related?: RelatedInfo[]): void {
    this.diagnostics.push(diagnostic(code, loc, message, related));
  }

  /** The node's kind, or undefined when the name isn't a registered kind (BLIP2010). */
  kindOf(node: DraftNode): NodeKind | undefined {
    return Object.hasOwn(nodeKinds, node.kind) ? nodeKinds[node.kind] : undefined;
  }

  /** What flows out of a model input or node; undefined if unknown. */
  typeOf(name: string): IrType | undefined {
    const input = this.model.inputs.get(name);
    if (input) return input.type === 'image' || input.type === 'text' ? input.type : undefined;
    const node = this.model.nodes.get(name);
    return node ? this.kindOf(node)?.output : undefined;
  }

  /** "vit 'vision'", "input 'prompt'" */
  describe(name: string): string {
    const node = this.model.nodes.get(name);
    if (node) return `${node.kind} '${name}'`;
    const input = this.model.inputs.get(name);
    return input ? `${input.type} input '${name}'` : `'${name}'`;
  }

  /** The node's pinned attributes as IR values (`config` and unparsed values left out). */
  attrValues(node: DraftNode): Record<string, IrValue> {
    const out: Record<string, IrValue> = {};
    for (const [k, a] of node.attrs) if (k !== 'config' && a.value) out[k] = toIrValue(a.value);
    return out;
  }

  /** Nodes and inputs a node reads, by name (only names that exist). */
  sources(node: DraftNode): string[] {
    return node.args.map((a) => a.source).filter((s) => this.model.nodes.has(s) || this.model.inputs.has(s));
  }
}
