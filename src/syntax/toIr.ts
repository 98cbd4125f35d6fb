// A checked DraftModel -> IrModel: nodes in topological order (declaration order among ready
// nodes), pinned attributes as IR values with their locations, `config` moved to IrNode.config.
import type { IrGeneration, IrModel, IrNode, IrPreprocess, IrTaskKind, IrValue, SourceLoc } from '../ir/types.js';
import { nodeKinds } from '../nodes/index.js';
import { toIrValue } from '../checks/CheckContext.js';
import type { DraftAttr, DraftModel, DraftNode } from './draft.js';

function attrsOf(map: Map<string, DraftAttr>, skip?: string): [Record<string, IrValue>, Record<string, SourceLoc>] {
  const values: Record<string, IrValue> = {};
  const locs: Record<string, SourceLoc> = {};
  for (const [k, a] of map)
    if (k !== skip && a.value) {
      values[k] = toIrValue(a.value);
      locs[k] = a.valueLoc;
    }
  return [values, locs];
}

/** Kahn's algorithm; assumes no cycles (NoCyclesRule ran). */
export function topoOrder(nodes: Map<string, DraftNode>): DraftNode[] {
  const order: DraftNode[] = [];
  const placed = new Set<string>();
  const pending = [...nodes.values()];
  while (pending.length) {
    const i = pending.findIndex((n) => n.args.every((a) => !nodes.has(a.source) || placed.has(a.source)));
    if (i < 0) throw new Error('topoOrder: cycle (the checks should have reported it)');
    const [n] = pending.splice(i, 1);
    placed.add(n.name);
    order.push(n);
  }
  return order;
}

export function toIrModel(d: DraftModel): IrModel {
  const nodes: IrNode[] = topoOrder(d.nodes).map((n) => {
    const [attrs, attrLocs] = attrsOf(n.attrs, 'config');
    const config = n.attrs.get('config')?.value;
    const node: IrNode = {
      name: n.name,
      kind: n.kind,
      edges: n.args.map((a) => ({ port: a.port, from: a.source, loc: a.loc })),
      checkpoint: n.checkpoint ?? '',
      attrs,
      frozen: n.frozen,
      loc: n.loc,
      attrLocs,
    };
    const section = config?.type === 'string' ? config.value : nodeKinds[n.kind]?.defaultConfig;
    if (section !== undefined) node.config = section;
    return node;
  });
  const [preprocess, preprocessLocs] = attrsOf(d.preprocess);
  const [generation, generationLocs] = attrsOf(d.generation);
  const model: IrModel = {
    name: d.name,
    file: d.file,
    loc: d.loc,
    inputs: [...d.inputs.values()].map((i) => ({ name: i.name, type: i.type as 'image' | 'text', loc: i.loc })),
    nodes,
    outputs: [...d.outputs.values()].map((o) => ({ name: o.name, task: o.task as IrTaskKind, args: o.args.map((a) => a.name), loc: o.loc })),
    preprocess: preprocess as IrPreprocess,
    generation: generation as IrGeneration,
    preprocessLocs,
    generationLocs,
  };
  if (d.base) model.extends = d.base;
  return model;
}
