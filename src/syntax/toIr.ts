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

/**
 * Kahn's algorithm, taking the earliest-declared ready node each time, so a file already in
 * dependency order keeps its order. Assumes no cycles (NoCyclesRule ran).
 */
export function topoOrder(nodes: Map<string, DraftNode>): DraftNode[] {
  const list = [...nodes.values()];
  const index = new Map(list.map((n, i) => [n.name, i]));
  const waiting = list.map((n) => new Set(n.args.filter((a) => nodes.has(a.source)).map((a) => a.source)).size);
  const users = list.map(() => [] as number[]);
  list.forEach((n, i) => new Set(n.args.map((a) => a.source)).forEach((s) => index.has(s) && users[index.get(s)!].push(i)));
  // A binary heap of ready indices (smallest first).
  const heap: number[] = [];
  const push = (x: number) => {
    heap.push(x);
    for (let i = heap.length - 1; i > 0 && heap[(i - 1) >> 1] > heap[i]; i = (i - 1) >> 1) [heap[i], heap[(i - 1) >> 1]] = [heap[(i - 1) >> 1], heap[i]];
  };
  const pop = (): number => {
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length) {
      heap[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && heap[l] < heap[m]) m = l;
        if (r < heap.length && heap[r] < heap[m]) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m], heap[i]];
        i = m;
      }
    }
    return top;
  };
  waiting.forEach((w, i) => w === 0 && push(i));
  const order: DraftNode[] = [];
  while (heap.length) {
    const i = pop();
    order.push(list[i]);
    for (const u of users[i]) if (--waiting[u] === 0) push(u);
  }
  if (order.length !== list.length) throw new Error('topoOrder: cycle (the checks should have reported it)');
  return order;
}

export function toIrModel(d: DraftModel): IrModel {
  const nodes: IrNode[] = topoOrder(d.nodes).map((n) => {
    const [attrs, attrLocs] = attrsOf(n.attrs, 'config');
    const configAttr = n.attrs.get('config');
    const config = configAttr?.value;
    if (config) attrLocs.config = configAttr.valueLoc; // where the section was named, for compile errors
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
