// Graph hygiene before a graph is written: dead-node removal (nothing that does not reach an output
// is emitted, so no dead nodes and no unused weights) and the structural checks of onnx.checker
// that matter for our graphs (single assignment, use after definition, outputs defined). Types and
// shapes are checked by onnxruntime's own session creation, which the tests run on every graph.
import type { GraphBuilder } from './GraphBuilder.js';

/** Drop every node, constant and weight that no graph output depends on. Returns the count removed. */
export function pruneDead(g: GraphBuilder): number {
  const needed = new Set(g.outputs.map((o) => o.name!));
  const keep = new Array<boolean>(g.nodes.length).fill(false);
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    if (!n.output!.some((o) => needed.has(o))) continue;
    keep[i] = true;
    for (const x of n.input ?? []) if (x) needed.add(x);
  }
  const before = g.nodes.length;
  const live = g.nodes.filter((_, i) => keep[i]);
  g.nodes.splice(0, g.nodes.length, ...live);
  const constants = g.constants.filter((c) => needed.has(c.name!));
  g.constants.splice(0, g.constants.length, ...constants);
  for (const w of [...g.weightNames]) if (!needed.has(w)) g.weightNames.delete(w);
  return before - live.length;
}

/**
 * Name graph outputs at their producers: `x -> Identity -> logits` becomes `... -> logits` when x
 * is computed by a node of this graph and is not itself a graph output. Returns the count folded.
 */
export function foldOutputIdentities(g: GraphBuilder): number {
  const outputs = new Set(g.outputs.map((o) => o.name!));
  const producer = new Map<string, (typeof g.nodes)[number]>();
  for (const n of g.nodes) for (const o of n.output ?? []) producer.set(o, n);
  let folded = 0;
  for (const id of [...g.nodes]) {
    if (id.opType !== 'Identity' || !outputs.has(id.output![0])) continue;
    const [from, to] = [id.input![0], id.output![0]];
    const p = producer.get(from);
    if (!p || outputs.has(from)) continue;
    p.output = p.output!.map((o) => (o === from ? to : o));
    for (const n of g.nodes) n.input = (n.input ?? []).map((x) => (x === from ? to : x));
    g.nodes.splice(g.nodes.indexOf(id), 1);
    producer.set(to, p);
    folded++;
  }
  return folded;
}

/** Structural problems of a graph, as messages ([] when sound). */
export function graphProblems(g: GraphBuilder): string[] {
  const out: string[] = [];
  const defined = new Set<string>();
  const define = (name: string, what: string) => {
    if (defined.has(name)) out.push(`${g.name}: value "${name}" is defined twice (${what})`);
    defined.add(name);
  };
  for (const i of g.inputs) define(i.name!, 'graph input');
  for (const c of g.constants) define(c.name!, 'constant');
  for (const w of g.weightNames) define(w, 'weight');
  for (const n of g.nodes) {
    for (const x of n.input ?? []) if (x && !defined.has(x)) out.push(`${g.name}: node ${n.name} (${n.opType}) reads "${x}" before it is defined`);
    for (const o of n.output ?? []) if (o) define(o, `output of ${n.name}`);
  }
  for (const o of g.outputs) if (!defined.has(o.name!)) out.push(`${g.name}: graph output "${o.name}" is never computed`);
  const outNames = g.outputs.map((o) => o.name!);
  if (new Set(outNames).size !== outNames.length) out.push(`${g.name}: duplicate graph output names`);
  return out;
}

/** A node's op as histograms and the rewrites name it: "MatMul", "com.microsoft.MultiHeadAttention" (ai.onnx is the default domain). */
export function opKey(n: { opType?: string | null; domain?: string | null }): string {
  return n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType!;
}

/** Op type → count, for summaries and `blip inspect`. */
export function opHistogram(nodes: Array<{ opType?: string | null; domain?: string | null }>): Record<string, number> {
  const h: Record<string, number> = {};
  for (const n of nodes) {
    const k = opKey(n);
    h[k] = (h[k] ?? 0) + 1;
  }
  return h;
}
