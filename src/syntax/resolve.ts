// Syntax trees of the loaded files -> one DraftModel per model: `extends` chains merged, `override`
// applied, duplicates reported. Diagnostics: BLIP2002-BLIP2009, BLIP3005.
import { LENGTH_BOUNDS, type SourceLoc } from '../ir/types.js';
import { diagnostic, type Diagnostic } from '../diagnostics/Diagnostic.js';
import { someOf } from '../diagnostics/suggest.js';
import type { SourceFile } from '../diagnostics/SourceFile.js';
import type * as A from './ast.js';
import { cloneDraft, type DraftAttr, type DraftModel, type DraftNode } from './draft.js';

export interface ParsedFile {
  path: string;
  src: SourceFile;
  ast: A.ProgramSyntax;
}

interface ModelEntry {
  syntax: A.ModelSyntax;
  file: ParsedFile;
  nameLoc: SourceLoc;
}

const at = (src: SourceFile, s: A.Span): SourceLoc => src.loc(s.start, s.end);

/**
 * A derived model's generation block that bounds a length replaces the base's bound of that length
 * either way: merged key by key, a base's max_new_tokens would outlive, and override, the derived
 * block's max_length.
 */
function dropInheritedLengthBounds(inherited: Map<string, DraftAttr>, block: A.AttrBlockSyntax | undefined): void {
  const keys = new Set(block?.attrs.map((a) => a.key.text));
  for (const pair of LENGTH_BOUNDS) if (pair.some((k) => keys.has(k))) for (const k of pair) inherited.delete(k);
}

export class Resolver {
  readonly diagnostics: Diagnostic[] = [];
  private readonly models = new Map<string, ModelEntry>();
  private readonly done = new Map<string, DraftModel | undefined>();
  private readonly resolving: string[] = [];

  /** Registers the models of every loaded file; a name declared twice is BLIP2002. */
  constructor(files: ParsedFile[]) {
    for (const file of files)
      for (const d of file.ast.decls) {
        if (d.type !== 'model' || !d.name) continue;
        const nameLoc = at(file.src, d.name);
        const prev = this.models.get(d.name.text);
        if (prev) {
          this.diagnostics.push(
            diagnostic('BLIP2002', nameLoc, `duplicate model '${d.name.text}': expected each model name once across a file and its imports, found a second declaration`, [
              { message: `'${d.name.text}' is first declared here`, loc: prev.nameLoc },
            ]),
          );
          continue;
        }
        this.models.set(d.name.text, { syntax: d, file, nameLoc });
      }
  }

  has(name: string): boolean {
    return this.models.has(name);
  }

  /** The merged model, or undefined when its `extends` chain can't be resolved (reported). */
  resolve(name: string): DraftModel | undefined {
    if (this.done.has(name)) return this.done.get(name);
    const entry = this.models.get(name)!;
    this.resolving.push(name);
    const draft = this.build(entry);
    this.resolving.pop();
    this.done.set(name, draft);
    return draft;
  }

  private build({ syntax: m, file, nameLoc }: ModelEntry): DraftModel | undefined {
    const src = file.src;
    const name = m.name!.text;
    let draft: DraftModel = {
      name,
      loc: nameLoc,
      file: file.path,
      inputs: new Map(),
      nodes: new Map(),
      outputs: new Map(),
      preprocess: new Map(),
      generation: new Map(),
    };
    if (m.base) {
      const baseName = m.base.text;
      const baseLoc = at(src, m.base);
      if (!this.models.has(baseName)) {
        const known = [...this.models.keys()].filter((k) => k !== name);
        this.diagnostics.push(
          diagnostic('BLIP2003', baseLoc, `unknown base model '${baseName}': expected ${known.length ? `one of ${someOf(known)} (declared here or in an imported file)` : 'a model declared in this file or an imported one'}`),
        );
        return undefined;
      }
      if (this.resolving.includes(baseName)) {
        const chain = [...this.resolving.slice(this.resolving.indexOf(baseName)), baseName].join(' extends ');
        this.diagnostics.push(diagnostic('BLIP2004', baseLoc, `cyclic extends: expected a chain of base models that ends, found ${chain}`));
        return undefined;
      }
      const base = this.resolve(baseName);
      if (!base) return undefined;
      draft = { ...cloneDraft(base), name, loc: nameLoc, file: file.path, base: baseName };
    }
    const inherited = new Set<string>([...draft.nodes.keys(), ...draft.inputs.keys()]);
    const inheritedOutputs = new Set(draft.outputs.keys());
    const own = new Map<string, SourceLoc>();
    const ownOutputs = new Map<string, SourceLoc>();
    const ownBlocks = new Map<string, SourceLoc>();

    const duplicate = (what: string, n: A.NameSyntax, first: SourceLoc) =>
      this.diagnostics.push(
        diagnostic('BLIP2005', at(src, n), `duplicate name '${n.text}': expected each ${what} name once in model '${name}', found it declared again`, [
          { message: `'${n.text}' is first declared here`, loc: first },
        ]),
      );

    for (const mem of m.members) {
      if (mem.type === 'input') {
        if (!mem.name || !mem.valueType) continue;
        const loc = at(src, mem.name);
        const prevOwn = own.get(mem.name.text);
        if (prevOwn) {
          duplicate('input and node', mem.name, prevOwn);
          continue;
        }
        own.set(mem.name.text, loc);
        const prev = draft.inputs.get(mem.name.text);
        if (prev && prev.type !== mem.valueType.text) {
          this.diagnostics.push(
            diagnostic('BLIP2008', at(src, mem.valueType), `input '${mem.name.text}' redeclared with another type: expected ${prev.type} as in model '${draft.base}', found ${mem.valueType.text}`, [
              { message: `declared as ${prev.type} here`, loc: prev.typeLoc },
            ]),
          );
          continue;
        }
        if (draft.nodes.has(mem.name.text)) {
          this.diagnostics.push(
            diagnostic('BLIP2007', loc, `'${mem.name.text}' is an inherited node: expected a new name for this input, found a redeclaration`, [
              { message: 'the node is declared here', loc: draft.nodes.get(mem.name.text)!.loc },
            ]),
          );
          continue;
        }
        draft.inputs.set(mem.name.text, { name: mem.name.text, loc, type: mem.valueType.text, typeLoc: at(src, mem.valueType) });
      } else if (mem.type === 'node') {
        this.node(draft, mem, src, inherited, own, duplicate);
      } else if (mem.type === 'output') {
        if (!mem.name || !mem.task) continue;
        const n = mem.name;
        const loc = at(src, n);
        const prevOwn = ownOutputs.get(n.text);
        if (prevOwn) {
          duplicate('output', n, prevOwn);
          continue;
        }
        ownOutputs.set(n.text, loc);
        if (!this.checkOverride('output', mem.override, n, src, inheritedOutputs.has(n.text), draft.outputs.get(n.text)?.loc, draft)) continue;
        const last = mem.args[mem.args.length - 1];
        draft.outputs.set(n.text, {
          name: n.text,
          loc,
          task: mem.task.text,
          taskLoc: at(src, mem.task),
          args: mem.args.map((a) => ({ name: a.text, loc: at(src, a) })),
          callLoc: src.loc(mem.task.start, Math.max(mem.end, last?.end ?? mem.task.end)),
        });
      } else {
        const kwLoc = at(src, mem.keyword);
        const prev = ownBlocks.get(mem.type);
        if (prev) {
          this.diagnostics.push(
            diagnostic('BLIP2009', kwLoc, `duplicate '${mem.type}' block: expected at most one per model, found a second`, [{ message: 'the first one is here', loc: prev }]),
          );
          continue;
        }
        ownBlocks.set(mem.type, kwLoc);
        if (mem.type === 'generation') dropInheritedLengthBounds(draft.generation, mem.attrs);
        this.mergeAttrs(draft[mem.type], mem.attrs, src, `the ${mem.type} block`);
      }
    }
    return draft;
  }

  /**
   * BLIP2006 / BLIP2007: `override` exactly when the name is inherited. Either way the declaration
   * is then applied (as a new one, or as a replacement) so that no follow-on errors appear.
   */
  private checkOverride(what: string, isOverride: boolean, n: A.NameSyntax, src: SourceFile, isInherited: boolean, prevLoc: SourceLoc | undefined, draft: DraftModel): boolean {
    if (isOverride && !isInherited) {
      this.diagnostics.push(
        diagnostic(
          'BLIP2006',
          at(src, n),
          draft.base
            ? `override of nothing inherited: expected ${what} '${n.text}' to be declared by base model '${draft.base}', found no such ${what}`
            : `override of nothing inherited: expected 'extends BASE' on model '${draft.name}' for 'override ${what} ${n.text}', found a model without a base`,
        ),
      );
      return true;
    }
    if (!isOverride && isInherited) {
      this.diagnostics.push(
        diagnostic('BLIP2007', at(src, n), `${what} '${n.text}' is inherited from '${draft.base}': expected 'override ${what} ${n.text}' to replace it, found a plain redeclaration`, [
          { message: 'inherited declaration', loc: prevLoc! },
        ]),
      );
    }
    return true;
  }

  private node(
    draft: DraftModel,
    mem: A.NodeSyntax,
    src: SourceFile,
    inherited: Set<string>,
    own: Map<string, SourceLoc>,
    duplicate: (what: string, n: A.NameSyntax, first: SourceLoc) => void,
  ): void {
    const n = mem.name;
    if (!n || mem.recovered) return;
    const loc = at(src, n);
    const prevOwn = own.get(n.text);
    if (prevOwn) {
      duplicate('input and node', n, prevOwn);
      return;
    }
    own.set(n.text, loc);
    const prev = draft.nodes.get(n.text);
    if (!prev && draft.inputs.has(n.text) && inherited.has(n.text)) {
      this.diagnostics.push(
        diagnostic('BLIP2007', loc, `'${n.text}' is an inherited input: expected a new name for this node, found a redeclaration`, [
          { message: 'the input is declared here', loc: draft.inputs.get(n.text)!.loc },
        ]),
      );
      return;
    }
    if (!mem.kind) {
      // The refinement form `override node NAME { attrs }`: the inherited node with more attributes.
      if (mem.override && !prev) {
        // `override node X { … }` with nothing to refine: the override's own message
        this.checkOverride('node', true, n, src, false, undefined, draft);
        return;
      }
      if (!mem.override || !prev) {
        this.diagnostics.push(
          diagnostic(
            'BLIP2006',
            loc,
            prev
              ? `node '${n.text}' is inherited: expected 'override node ${n.text} { … }' to refine its attributes, found 'node ${n.text} { … }'`
              : `node '${n.text}' has no kind: expected ': KIND(inputs)' after the name (only 'override node NAME { … }' may leave it out, to refine an inherited node)`,
          ),
        );
        return;
      }
      const refined: DraftNode = { ...prev, attrs: new Map(prev.attrs) };
      this.mergeAttrs(refined.attrs, mem.attrs, src, `node '${n.text}'`);
      draft.nodes.set(n.text, refined);
      return;
    }
    if (!this.checkOverride('node', mem.override, n, src, !!prev, prev?.loc, draft)) return;
    const attrs = new Map<string, DraftAttr>();
    this.mergeAttrs(attrs, mem.attrs, src, `node '${n.text}'`);
    const args = mem.args
      .filter((a) => a.source)
      .map((a) => ({
        port: a.port?.text ?? '',
        portLoc: a.port ? at(src, a.port) : undefined,
        source: a.source!.text,
        sourceLoc: at(src, a.source!),
        loc: at(src, a),
      }));
    const lastArg = mem.args[mem.args.length - 1];
    const node: DraftNode = {
      name: n.text,
      loc,
      kind: mem.kind.text,
      kindLoc: at(src, mem.kind),
      args,
      argsLoc: src.loc(mem.kind.start, lastArg ? lastArg.end + 1 : mem.kind.end + 2),
      frozen: mem.frozen,
      checkpoint: mem.checkpoint?.value,
      checkpointLoc: mem.checkpoint ? at(src, mem.checkpoint) : undefined,
      attrs,
      declaredIn: draft.name,
    };
    draft.nodes.set(n.text, node);
  }

  /** Adds a block's attributes over `into` (later wins); a key twice in one block is BLIP3005. */
  private mergeAttrs(into: Map<string, DraftAttr>, block: A.AttrBlockSyntax | undefined, src: SourceFile, where: string): void {
    const seen = new Map<string, SourceLoc>();
    for (const a of block?.attrs ?? []) {
      const keyLoc = at(src, a.key);
      const prev = seen.get(a.key.text);
      if (prev) {
        this.diagnostics.push(
          diagnostic('BLIP3005', keyLoc, `attribute '${a.key.text}' given twice in ${where}: expected each key once, found a second value`, [
            { message: 'first given here', loc: prev },
          ]),
        );
        continue;
      }
      seen.set(a.key.text, keyLoc);
      into.set(a.key.text, { key: a.key.text, keyLoc, value: a.value, valueLoc: a.value ? at(src, a.value) : keyLoc, src });
    }
  }
}
