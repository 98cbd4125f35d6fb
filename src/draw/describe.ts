// What `blip graph` draws: a model's composition as boxes and arrows, independent of the output
// format (src/draw/svg.ts, mermaid.ts, dot.ts). Each node shows its kind, width and depth (pinned
// in the file, or resolved from a checkpoint's config.json with `--weights`), frozen or trainable
// and its checkpoint prefix; each edge between nodes shows the port and the shape of the tensor
// that flows along it. Sizes that are neither pinned nor resolved are drawn as "?".
import type { IrModel, IrNode } from '../ir/types.js';
import type { Attrs, NodeKind } from '../nodes/NodeKind.js';
import { nodeKinds, portWith } from '../nodes/index.js';

export type DrawRole = 'input' | 'node' | 'output';

export interface DrawVertex {
  id: string;
  role: DrawRole;
  /** The name in the .blip file. */
  name: string;
  /** Node kind (vit, qformer, ...), the input's type (image, text) or the output's task. */
  kind: string;
  /** Second line: sizes ("width 1408 · depth 39", "768 → 2560") or the input's shape. */
  detail: string;
  /** Third line: "frozen @ vision_model" / "trainable @ qformer"; "" for inputs and outputs. */
  note: string;
  frozen: boolean;
}

export interface DrawEdge {
  from: string;
  to: string;
  /** Port of the consumer ("" = first positional argument). */
  port: string;
  /** Shape of the tensor along the edge, e.g. "(B, 32, 768)"; "" when the edge carries none worth drawing (into an output). */
  shape: string;
}

export interface DrawGraph {
  name: string;
  vertices: DrawVertex[];
  edges: DrawEdge[];
}

const num = (a: Attrs, k: string): number | undefined => (typeof a[k] === 'number' ? (a[k] as number) : undefined);
const q = (v: number | undefined): string => (v === undefined ? '?' : String(v));

export const inputId = (name: string) => `input:${name}`;
export const outputId = (name: string) => `output:${name}`;

interface Flow {
  /** Sequence dimension as drawn ("S", "32", "577"), or undefined for pooled outputs. */
  seq?: string;
  width?: number;
  /** Full text when the output is not (B, seq, width) (logits, pooled embeddings). */
  text?: string;
}

/**
 * Describes `model` for drawing. `attrsByNode` holds each node's attributes; without it the pinned
 * attributes are used. Widths of linear-like nodes that neither pin nor resolve them are inferred
 * from their neighbours (a projection's input is its producer's output width, its output what the
 * consumer's port expects).
 */
export function describeModel(model: IrModel, attrsByNode?: Record<string, Attrs>): DrawGraph {
  const kinds = new Map<string, NodeKind | undefined>(model.nodes.map((n) => [n.name, Object.hasOwn(nodeKinds, n.kind) ? nodeKinds[n.kind] : undefined]));
  const attrs = new Map<string, Attrs>(model.nodes.map((n) => [n.name, { ...(attrsByNode?.[n.name] ?? n.attrs) }]));
  const byName = new Map(model.nodes.map((n) => [n.name, n]));
  inferWidths(model.nodes, kinds, attrs, byName);

  const imageSize = model.preprocess.image_size ?? model.nodes.map((n) => kinds.get(n.name)?.imageSize?.(attrs.get(n.name)!)).find((s) => s !== undefined);
  const flows = new Map<string, Flow>();
  for (const i of model.inputs) flows.set(i.name, i.type === 'image' ? { text: `(B, 3, ${q(imageSize)}, ${q(imageSize)})` } : { text: '(B, S)' });
  for (const n of model.nodes) flows.set(n.name, flowOf(n, kinds.get(n.name), attrs.get(n.name)!, flows));

  const vertices: DrawVertex[] = [];
  const edges: DrawEdge[] = [];
  for (const i of model.inputs) {
    vertices.push({ id: inputId(i.name), role: 'input', name: i.name, kind: i.type, detail: i.type === 'image' ? `pixels ${flows.get(i.name)!.text}` : `token ids ${flows.get(i.name)!.text}`, note: '', frozen: false });
  }
  const inputs = new Set(model.inputs.map((i) => i.name));
  for (const n of model.nodes) {
    const a = attrs.get(n.name)!;
    vertices.push({
      id: n.name,
      role: 'node',
      name: n.name,
      kind: n.kind,
      detail: sizes(n, kinds.get(n.name), a),
      note: `${n.frozen ? 'frozen' : 'trainable'} @ ${n.checkpoint || '(top level)'}`,
      frozen: n.frozen,
    });
    for (const e of n.edges) {
      const fromInput = inputs.has(e.from) && !byName.has(e.from);
      edges.push({ from: fromInput ? inputId(e.from) : e.from, to: n.name, port: e.port, shape: fromInput ? '' : shapeText(flows.get(e.from)) });
    }
  }
  for (const o of model.outputs) {
    vertices.push({ id: outputId(o.name), role: 'output', name: o.name, kind: o.task, detail: `${o.task}(${o.args.join(', ')})`, note: '', frozen: false });
    for (const a of o.args) edges.push({ from: inputs.has(a) && !byName.has(a) ? inputId(a) : a, to: outputId(o.name), port: '', shape: '' });
  }
  return { name: model.name, vertices, edges };
}

function shapeText(f: Flow | undefined): string {
  if (!f) return '';
  if (f.text) return f.text;
  return `(B, ${f.seq ?? '?'}, ${q(f.width)})`;
}

/** The node's sizes as one short line: the kind's own (NodeKind.drawnSizes), or width and depth. */
function sizes(n: IrNode, kind: NodeKind | undefined, a: Attrs): string {
  if (kind?.drawnSizes) return kind.drawnSizes(a, (port) => n.edges.some((e) => e.port === port));
  return `width ${q(num(a, 'width'))} · depth ${q(num(a, 'depth'))}`;
}

/** What a node outputs, as a shape: what its kind says of its output's positions (NodeKind). */
function flowOf(n: IrNode, kind: NodeKind | undefined, a: Attrs, flows: Map<string, Flow>): Flow {
  const input = n.edges.find((x) => x.port === portWith(kind, 'input'));
  const inputSeq = input && flows.get(input.from)?.seq;
  const width = kind?.output === 'features' || kind?.output === 'embedding' ? kind.outputWidth(a) : undefined;
  // position by position (linear, mlp): its input's positions
  if (kind?.positionwise) return { seq: inputSeq ?? 'T', width };
  // a text decoder (opt, llama, t5, bert with causal: true): next-token logits at every position
  if (kind?.generates === true || (typeof kind?.generates === 'object' && a[kind.generates.when] === true)) return { text: `logits (B, S, ${q(num(a, 'vocab_size'))})` };
  // pooled (classifier, embed: the kinds with a pool attribute): one row per example, or per query with pool: queries
  if (kind && Object.hasOwn(kind.attrSchema.properties as object, 'pool')) {
    const rows = kind.outputWidth(a);
    return a.pool === 'queries' ? { text: `(B, ${inputSeq ?? 'Q'}, ${q(rows)})` } : { text: `(B, ${q(rows)})` };
  }
  // as many positions as its attributes say (a vit's 1 + grid², a Q-Former's queries); a Q-Former
  // without image features (on its 'cross' port) is a text-only pass, as long as the text
  if (kind?.outputLength && !(kind.queryOutputs && !n.edges.some((x) => x.port === portWith(kind, 'cross')))) {
    const length = kind.outputLength(a);
    return { seq: length !== undefined ? String(length) : kind.imageSize ? '1+P' : kind.queryOutputs ? 'Q' : 'S', width };
  }
  return kind?.output === 'logits' ? { text: 'logits' } : { seq: 'S', width };
}

/**
 * Fills unknown in/out widths of the kinds sized from tensor shapes (NodeKind.fromShapes: linear,
 * mlp, embed, classifier) from their neighbours.
 */
function inferWidths(nodes: IrNode[], kinds: Map<string, NodeKind | undefined>, attrs: Map<string, Attrs>, byName: Map<string, IrNode>): void {
  for (let pass = 0; pass < 3; pass++) {
    for (const n of nodes) {
      const a = attrs.get(n.name)!;
      const kind = kinds.get(n.name);
      if (!kind?.fromShapes) continue;
      const e = n.edges.find((x) => x.port === portWith(kind, 'input'));
      const producer = e && byName.get(e.from);
      const pk = producer && kinds.get(producer.name);
      if (a.in_width === undefined && producer && pk) {
        const w = pk.outputWidth(attrs.get(producer.name)!);
        if (w !== undefined) a.in_width = w;
      }
      // (a classifier's output is its classes: it has no out_width)
      if (a.out_width === undefined && Object.hasOwn(kind.attrSchema.properties as object, 'out_width')) {
        for (const c of nodes) {
          const ck = kinds.get(c.name);
          for (const ce of c.edges) {
            if (ce.from !== n.name || !ck?.inputWidth) continue;
            const w = ck.inputWidth(ce.port, attrs.get(c.name)!);
            if (w !== undefined) a.out_width = w;
          }
        }
      }
    }
  }
}
