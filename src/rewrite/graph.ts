// The view every fusion matches over: one GraphBuilder's node list with its producers, consumers,
// small constants and checkpoint weights, plus the edits a rewrite makes (add a fused node in the
// scope of the nodes it replaces, drop a node whose outputs the fused node now defines). A rewrite
// never deletes a subgraph by hand: it takes over the pattern's output names and leaves the
// orphaned nodes to `pruneDead`, so an intermediate value still read outside the pattern stays
// computed. `finish()` restores a topological order and prunes (a fused node is appended at the
// end of the list and may be read by nodes that came before it).
import type onnxProto from 'onnx-proto';
import type { GraphBuilder, AttrValue } from '../lower/GraphBuilder.js';
import { Value, onnx } from '../lower/GraphBuilder.js';
import { opKey, pruneDead } from '../lower/graphCheck.js';
import { halfToFloat } from '../weights/float16.js';

export type Node = onnxProto.onnx.INodeProto;
export type Target = 'plain' | 'cpu' | 'cuda' | 'webgpu';
export const TARGETS: readonly Target[] = ['plain', 'cpu', 'cuda', 'webgpu'];

/** Options of one rewrite pass (the compile flags). */
export interface RewriteOptions {
  target: Target;
  quantize?: 'int8' | 'int4';
}

/**
 * How the element type of a fused operator's outputs follows from its inputs (GraphView.elemType):
 * `input0`, input 0's (its other inputs have other types: masks, positions, packed weights);
 * `inputs`, the one type its inputs share (the first input whose type shows).
 */
export type OutputType = 'input0' | 'inputs';

/** One fusion: finds its pattern in a graph and rewrites every occurrence; returns how many. */
export interface Fusion {
  name: string;
  /**
   * The operators it writes that are not standard ONNX, by their opKey (`com.microsoft.BiasGelu`;
   * a bare name for one onnxruntime registers in the ai.onnx domain), with their outputs' element
   * type, so that the fusions after it see through them (GraphView.elemType); runtime/providerGaps.ts
   * and docs/performance.md's table are checked against them. Standard ops it writes are not listed.
   */
  emits: Readonly<Record<string, OutputType>>;
  /** Whether it applies to graphs of this float type for these options (kernels exist there). */
  applies(floatType: 'float32' | 'float16', opts: RewriteOptions): boolean;
  run(g: GraphView, opts: RewriteOptions): number;
}

export class GraphView {
  private prod = new Map<string, Node>();
  private cons = new Map<string, Node[]>();
  private outs = new Set<string>();
  private consts = new Map<string, onnxProto.onnx.ITensorProto>();
  /** The output types of the fused operators that `fusions` emit, and of the standard ops modelled. */
  private outputTypes: Map<string, OutputType>;

  /** `fusions`: those whose operators the graph may hold (their `emits`). */
  constructor(
    readonly b: GraphBuilder,
    fusions: readonly Fusion[] = [],
  ) {
    this.outputTypes = new Map([...STANDARD_OUTPUT_TYPES, ...fusions.flatMap((f) => Object.entries(f.emits))]);
    this.reindex();
  }

  get nodes(): Node[] {
    return this.b.nodes;
  }

  reindex(): void {
    this.prod.clear();
    this.cons.clear();
    this.outs = new Set(this.b.outputs.map((o) => o.name!));
    this.consts = new Map(this.b.constants.map((c) => [c.name!, c]));
    for (const n of this.b.nodes) {
      for (const o of n.output ?? []) if (o) this.prod.set(o, n);
      for (const i of n.input ?? []) {
        if (!i) continue;
        const l = this.cons.get(i);
        if (l) l.push(n);
        else this.cons.set(i, [n]);
      }
    }
  }

  producer(name: string | undefined | null, opType?: string): Node | undefined {
    if (!name) return undefined;
    const p = this.prod.get(name);
    return p && (!opType || (p.opType === opType && (p.domain ?? '') === '')) ? p : undefined;
  }

  consumers(name: string): Node[] {
    return this.cons.get(name) ?? [];
  }

  /** Read by nothing but `node` (and not a graph output). */
  onlyFeeds(name: string, node: Node): boolean {
    return !this.outs.has(name) && this.consumers(name).every((c) => c === node);
  }

  isGraphOutput(name: string): boolean {
    return this.outs.has(name);
  }

  isWeight(name: string): boolean {
    return this.b.weightNames.has(name);
  }

  /** Shape of a checkpoint weight, or of a small constant. */
  dims(name: string): number[] | undefined {
    if (this.isWeight(name)) return this.b.weights.spec(name)?.dims;
    const c = this.consts.get(name);
    return c ? (c.dims ?? []).map(Number) : undefined;
  }

  /** Values of an int64 constant. */
  ints(name: string | undefined | null): number[] | undefined {
    const c = name ? this.consts.get(name) : undefined;
    if (!c || c.dataType !== onnx.TensorProto.DataType.INT64) return undefined;
    return (c.int64Data ?? []).map(Number);
  }

  /** Value of a one-element float constant (float32 or float16), or undefined. */
  scalar(name: string | undefined | null): number | undefined {
    const c = name ? this.consts.get(name) : undefined;
    if (!c || (c.dims ?? []).reduce((a: number, d) => a * Number(d), 1) !== 1) return undefined;
    if (c.dataType === onnx.TensorProto.DataType.FLOAT) return c.floatData?.[0];
    if (c.dataType === onnx.TensorProto.DataType.FLOAT16 && c.rawData && c.rawData.length === 2) return halfToFloat(c.rawData[0] | (c.rawData[1] << 8));
    return undefined;
  }

  /** Element type of a small float constant ('float32' | 'float16'), if it is one. */
  constType(name: string): number | undefined {
    return this.consts.get(name)?.dataType ?? undefined;
  }

  /**
   * The ONNX element type of a value where the graph shows it: a weight's stored type, a graph
   * input's declared one, a Cast's `to`, or, through ops whose output has their data input's type
   * (elementwise arithmetic, MatMul, reshapes, norms, and the fused operators as their fusions
   * declare them), that input's. Undefined when not evident.
   */
  elemType(name: string | undefined | null, depth = 0): number | undefined {
    if (!name || depth > 64) return undefined;
    if (this.isWeight(name)) {
      const t = this.b.weights.storedType(name);
      return t === 'float16' ? FLOAT16 : t === 'float32' ? FLOAT : undefined;
    }
    const c = this.consts.get(name);
    if (c) return c.dataType ?? undefined;
    const p = this.prod.get(name);
    if (!p) return this.b.inputs.find((i) => i.name === name)?.type?.tensorType?.elemType ?? undefined;
    const op = opKey(p);
    if (op === 'Cast') return this.attrInt(p, 'to');
    if (op === 'Where') return this.elemType(p.input![1], depth + 1) ?? this.elemType(p.input![2], depth + 1);
    const rule = this.outputTypes.get(op);
    if (!rule) return undefined;
    // the first input whose type shows (a scalar constant operand has the same type anyway)
    for (const i of rule === 'input0' ? [p.input![0]] : p.input!) {
      const t = this.elemType(i, depth + 1);
      if (t !== undefined) return t;
    }
    return undefined;
  }

  /** The Cast to float32 of a float16 value that produces `name` (how float16 graphs widen for float32 statistics), if it is one. */
  widenedFloat16(name: string | undefined | null): Node | undefined {
    const cast = this.producer(name, 'Cast');
    return cast && this.attrInt(cast, 'to') === FLOAT && this.elemType(cast.input![0]) === FLOAT16 ? cast : undefined;
  }

  attr(node: Node, name: string): onnxProto.onnx.IAttributeProto | undefined {
    return node.attribute?.find((a) => a.name === name);
  }
  attrInt(node: Node, name: string, dflt?: number): number | undefined {
    const a = this.attr(node, name);
    return a ? Number(a.i) : dflt;
  }
  attrInts(node: Node, name: string): number[] | undefined {
    const a = this.attr(node, name);
    return a ? (a.ints ?? []).map(Number) : undefined;
  }
  attrFloat(node: Node, name: string, dflt?: number): number | undefined {
    const a = this.attr(node, name);
    return a ? (a.f ?? 0) : dflt;
  }

  /** Scope of a lowered node (`decoder.encoder.layer.0.attention` of `…/Add_3`). */
  scopeOf(n: Node): string {
    const name = n.name ?? '';
    const i = name.lastIndexOf('/');
    return i < 0 ? '' : name.slice(0, i);
  }

  /**
   * Emit a node in the scope (and with the .blip origin) of `like`. `outputs` are roles for fresh
   * names, or `{ name }` to take over an existing value name (whose old producer the caller drops).
   */
  emit(like: Node, opType: string, inputs: (string | undefined)[], attrs: Record<string, AttrValue | undefined>, outputs: Array<string | { name: string } | ''>, domain = ''): string[] {
    const b = this.b;
    const scope = this.scopeOf(like);
    const saved = b.origin;
    b.origin = like.docString ?? '';
    const roles = outputs.map((o) => (typeof o === 'string' ? o : `__takeover__`));
    const values = b.scope(scope || 'rewrite', () =>
      b.ops(
        opType,
        inputs.map((i) => (i ? new Value(i, b) : undefined)),
        attrs,
        { domain, outputs: roles },
      ),
    );
    b.origin = saved;
    const node = b.nodes[b.nodes.length - 1];
    const names = values.map((v, i) => {
      const o = outputs[i];
      return typeof o === 'object' ? o.name : o === '' ? '' : v.name;
    });
    while (names.length > 1 && names[names.length - 1] === '') names.pop(); // trailing optional outputs left out
    node.output = names;
    this.reindex();
    return names;
  }

  /** Drop nodes (their outputs are taken over by a fused node, or no longer read). */
  drop(...nodes: Node[]): void {
    const set = new Set(nodes);
    const keep = this.b.nodes.filter((n) => !set.has(n));
    this.b.nodes.splice(0, this.b.nodes.length, ...keep);
    this.reindex();
  }

  /** Define a new checkpoint-derived weight (streamed later, one tensor at a time). */
  weight(spec: Parameters<GraphBuilder['weight']>[0]): string {
    return this.b.weight(spec).name;
  }

  /** Prune what the rewrites orphaned and put the nodes back in a topological order. */
  finish(): void {
    toposort(this.b); // first: pruneDead walks the list backwards in topological order
    pruneDead(this.b);
    this.reindex();
  }
}

/** Stable topological order: nodes keep their relative order unless an input forces a move. */
export function toposort(b: GraphBuilder): void {
  const defined = new Set<string>([...b.inputs.map((i) => i.name!), ...b.constants.map((c) => c.name!), ...b.weightNames]);
  const pending = [...b.nodes];
  const out: Node[] = [];
  while (pending.length) {
    let progressed = false;
    for (let i = 0; i < pending.length; i++) {
      const n = pending[i];
      if ((n.input ?? []).every((x) => !x || defined.has(x))) {
        out.push(n);
        for (const o of n.output ?? []) if (o) defined.add(o);
        pending.splice(i, 1);
        i--;
        progressed = true;
      }
    }
    if (!progressed) throw new Error(`internal: rewritten graph ${b.name} has a cycle or an undefined input (${pending[0].name} reads ${(pending[0].input ?? []).find((x) => x && !defined.has(x))})`);
  }
  b.nodes.splice(0, b.nodes.length, ...out);
}

export const MS = 'com.microsoft';

/** ONNX element types the rewrites test for. */
export const FLOAT = onnx.TensorProto.DataType.FLOAT;
export const FLOAT16 = onnx.TensorProto.DataType.FLOAT16;

/** Standard ops whose output has their data input's element type (GraphView.elemType); fused ones are their fusions' `emits`. */
const STANDARD_OUTPUT_TYPES: ReadonlyMap<string, OutputType> = new Map([
  ...['Gather', 'Reshape', 'Slice', 'Expand', 'Squeeze', 'Unsqueeze'].map((op) => [op, 'input0'] as const),
  ...['Add', 'Sub', 'Mul', 'Div', 'MatMul', 'Transpose', 'Concat', 'Split', 'Softmax', 'LayerNormalization'].map((op) => [op, 'inputs'] as const),
]);

/** Is `x` within float16 rounding of `want`? (scalars of float16 graphs) */
export function near(x: number | undefined, want: number): boolean {
  return x !== undefined && Math.abs(x - want) <= 1e-3 * Math.abs(want);
}

/** Equal integer lists (an attribute's or a constant's values against a pattern's). */
export const sameInts = (a: number[] | undefined, b: number[]): boolean => !!a && a.length === b.length && a.every((x, i) => x === b[i]);

/** The last entry of an int64 shape: a constant's, or that of the last input of a Concat along axis 0. */
function lastShapeEntry(g: GraphView, s: string | undefined | null): number | undefined {
  const c = g.ints(s);
  if (c) return c[c.length - 1];
  const cat = g.producer(s, 'Concat');
  return cat && g.attrInt(cat, 'axis', 0) === 0 ? lastShapeEntry(g, cat.input![cat.input!.length - 1]) : undefined;
}

/**
 * u, where `v` = Reshape(u, shape) regroups the rows of u and leaves them `width` wide (the shape's
 * last entry is that constant), and u is read by that Reshape alone: a cross-attention's query
 * projection put in groups of beams (QueryGroups, src/lower/transformer.ts). Where u is `width`
 * wide too, a bias added to its last axis, or a factor, is the same before and after it.
 */
export function regroupedRows(g: GraphView, v: string): { u: string; width: number; reshape: Node } | undefined {
  const r = g.producer(v, 'Reshape');
  const width = r && lastShapeEntry(g, r.input![1]);
  if (!r || width === undefined || width <= 0 || !g.onlyFeeds(r.input![0]!, r)) return undefined;
  return { u: r.input![0]!, width, reshape: r };
}

/** Transpose(Reshape(X, [0,0,N,D]), [0,2,1,3]) -> X, N, D: the attention fusions' split into heads. */
export function splitHeads(g: GraphView, v: string): { x: string; N: number; D: number } | undefined {
  const t = g.producer(v, 'Transpose');
  if (!t || !sameInts(g.attrInts(t, 'perm'), [0, 2, 1, 3])) return undefined;
  const r = g.producer(t.input![0], 'Reshape');
  const shape = r && g.ints(r.input![1]);
  if (!r || !shape || shape.length !== 4 || shape[0] !== 0 || shape[1] !== 0 || shape[2] <= 0 || shape[3] <= 0) return undefined;
  return { x: r.input![0], N: shape[2], D: shape[3] };
}
