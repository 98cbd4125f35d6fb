// What a check sees: one resolved model (src/syntax/draft.ts) and a way to report. Checks are
// functions `(ctx) => void`, one invariant each, run in the order of src/checks/index.ts.
import type { IrType, IrValue, SourceLoc } from '../ir/types.js';
import type { Code } from '../diagnostics/codes.js';
import { diagnostic, type Diagnostic, type RelatedInfo } from '../diagnostics/Diagnostic.js';
import type { NodeKind, PortRole } from '../nodes/NodeKind.js';
import { nodeKinds, portWith } from '../nodes/index.js';
import type { ValueSyntax } from '../syntax/ast.js';
import type { DraftArg, DraftModel, DraftNode } from '../syntax/draft.js';

export type CheckRule = (ctx: CheckContext) => void;

/** Errors after which the edges do not say what a node depends on: unknown names or ports, missing inputs, wrong types, cycles. */
const EDGE_ERRORS: ReadonlySet<string> = new Set<Code>(['BLIP2020', 'BLIP2021', 'BLIP2022', 'BLIP2023', 'BLIP2024', 'BLIP2027']);

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

  /** The node's argument on its kind's port that is `role` (PortSpec.role), whatever the kind names it. */
  argWith(node: DraftNode, role: PortRole): DraftArg | undefined {
    const port = portWith(this.kindOf(node), role);
    return port === undefined ? undefined : node.args.find((a) => a.port === port);
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

  /**
   * Whether an error reported so far leaves the edges unsound (EDGE_ERRORS). A check of what a node
   * depends on waits for them: its finding would be the broken edge's echo.
   */
  edgesBroken(): boolean {
    return this.diagnostics.some((d) => d.severity === 'error' && EDGE_ERRORS.has(d.code));
  }

  /** The model inputs a node depends on through its edges, back to the inputs (itself, for an input). A cycle is walked once. */
  inputsOf(name: string): Set<string> {
    const found = new Set<string>();
    const seen = new Set<string>();
    const work = [name];
    while (work.length) {
      const n = work.pop()!;
      if (seen.has(n)) continue;
      seen.add(n);
      if (this.model.inputs.has(n)) found.add(n);
      for (const a of this.model.nodes.get(n)?.args ?? []) work.push(a.source);
    }
    return found;
  }

  /**
   * A shortest path of edges back from node `from` to `to` (an input or node it depends on): the
   * arguments read along it, the one `from` reads first. Undefined when `from` does not depend on `to`.
   */
  pathBack(from: string, to: string): DraftArg[] | undefined {
    // (breadth first: each name reached with the argument that reached it and the node reading it)
    const via = new Map<string, { arg: DraftArg; reader: string } | undefined>([[from, undefined]]);
    const queue = [from];
    for (let i = 0; i < queue.length; i++) {
      const n = queue[i]!;
      if (n === to) {
        const path: DraftArg[] = [];
        for (let step = via.get(n); step; step = via.get(step.reader)) path.unshift(step.arg);
        return path;
      }
      for (const arg of this.model.nodes.get(n)?.args ?? [])
        if (!via.has(arg.source)) {
          via.set(arg.source, { arg, reader: n });
          queue.push(arg.source);
        }
    }
    return undefined;
  }

  /**
   * The argument lists of node `name` and of every node it depends on, nearest first: where an
   * input that does not reach it could be connected (with firstInModelFile, the one an override
   * that cut it off wrote).
   */
  argsBack(name: string): SourceLoc[] {
    const places: SourceLoc[] = [];
    const seen = new Set<string>();
    const queue = [name];
    for (let i = 0; i < queue.length; i++) {
      const n = this.model.nodes.get(queue[i]!);
      if (!n || seen.has(n.name)) continue;
      seen.add(n.name);
      places.push(n.argsLoc);
      for (const a of n.args) queue.push(a.source);
    }
    return places;
  }

  /** A node with features from input `input` that no node reads (other than `except`): presumably what was meant to carry it on. */
  unreadFeatures(input: string, except: string): DraftNode | undefined {
    const read = new Set([...this.model.nodes.values()].flatMap((n) => n.args.map((a) => a.source)));
    return [...this.model.nodes.values()].find((n) => !read.has(n.name) && n.name !== except && this.kindOf(n)?.output === 'features' && this.inputsOf(n.name).has(input));
  }

  /**
   * The first of `locs` written in the checked model's own file, else the first: of the places a
   * problem could be fixed, the one an edit of a shipped graph (`extends`, `override`) changed.
   */
  firstInModelFile(locs: [SourceLoc, ...SourceLoc[]]): SourceLoc {
    return locs.find((l) => l.file === this.model.file) ?? locs[0];
  }
}
