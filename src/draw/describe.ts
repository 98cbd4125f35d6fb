// What `blip graph` draws: a model's composition as boxes and arrows, independent of the output
// format (src/draw/svg.ts, mermaid.ts, dot.ts). Each node shows its kind, width and depth (pinned
// in the file, or resolved from a checkpoint's config.json with `--weights`), frozen or trainable
// and its checkpoint prefix; each edge between nodes shows the port and the shape of the tensor
// that flows along it. Sizes that are neither pinned nor resolved are drawn as "?".
import type { IrModel, IrNode } from '../ir/types.js';
import type { Attrs, NodeKind } from '../nodes/NodeKind.js';
import { nodeKinds } from '../nodes/index.js';

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
      detail: sizes(n, a),
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

/** The node's sizes as one short line. */
function sizes(n: IrNode, a: Attrs): string {
  switch (n.kind) {
    case 'linear':
    case 'embed':
      return `${q(num(a, 'in_width'))} → ${q(num(a, 'out_width'))}`;
    case 'mlp':
      return `${q(num(a, 'in_width'))} → ${q(num(a, 'hidden_width'))} → ${q(num(a, 'out_width'))}`;
    case 'classifier':
      return `${q(num(a, 'in_width'))} → ${q(num(a, 'classes'))} classes`;
    case 't5':
      return `width ${q(num(a, 'width'))} · depth ${q(num(a, 'depth'))}+${q(num(a, 'decoder_depth') ?? num(a, 'depth'))}`;
    case 'qformer':
      if (!n.edges.some((e) => e.port === '')) return `width ${q(num(a, 'width'))} · depth ${q(num(a, 'depth'))} · text only`;
      return `width ${q(num(a, 'width'))} · depth ${q(num(a, 'depth'))} · ${q(num(a, 'queries'))} queries`;
    default:
      return `width ${q(num(a, 'width'))} · depth ${q(num(a, 'depth'))}`;
  }
}

/** What a node outputs, as a shape. */
function flowOf(n: IrNode, kind: NodeKind | undefined, a: Attrs, flows: Map<string, Flow>): Flow {
  const src = (port: string) => {
    const e = n.edges.find((x) => x.port === port);
    return e ? flows.get(e.from) : undefined;
  };
  const width = kind?.output === 'features' || kind?.output === 'embedding' ? kind.outputWidth(a) : undefined;
  switch (n.kind) {
    case 'vit': {
      const [s, p] = [num(a, 'image_size'), num(a, 'patch_size')];
      return { seq: s !== undefined && p !== undefined ? String(1 + Math.floor(s / p) ** 2) : '1+P', width };
    }
    case 'qformer':
      return { seq: n.edges.some((e) => e.port === '') ? q(num(a, 'queries')).replace('?', 'Q') : 'S', width };
    case 'bert':
      if (a.causal === true) return { text: `logits (B, S, ${q(num(a, 'vocab_size'))})` };
      return { seq: 'S', width };
    case 'linear':
    case 'mlp':
      return { seq: src('')?.seq ?? 'T', width };
    case 'embed':
      return a.pool === 'queries' ? { text: `(B, ${src('')?.seq ?? 'Q'}, ${q(width)})` } : { text: `(B, ${q(width)})` };
    case 'classifier':
      return { text: `(B, ${q(num(a, 'classes'))})` };
    case 'opt':
    case 'llama':
    case 't5':
      return { text: `logits (B, S, ${q(num(a, 'vocab_size'))})` };
    default:
      return kind?.output === 'logits' ? { text: 'logits' } : { seq: 'S', width };
  }
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
      const e = n.edges.find((x) => x.port === '');
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
    // A consumer whose expected input width is unknown takes the producer's (e.g. qformer encoder_width = vision width).
    for (const n of nodes) {
      const a = attrs.get(n.name)!;
      if (n.kind === 'qformer' && a.encoder_width === undefined) {
        const e = n.edges.find((x) => x.port === '');
        const p = e && byName.get(e.from);
        const w = p && kinds.get(p.name)?.outputWidth(attrs.get(p.name)!);
        if (w !== undefined) a.encoder_width = w;
      }
    }
  }
}
