// SVG drawing of a described model (src/draw/describe.ts), laid out by src/draw/layout.ts. Made
// in-process (no Graphviz): boxes coloured by the kind's role, frozen nodes greyed with a dashed
// border, inputs as pills, outputs as hexagons, edges as curves labelled with port and shape.
import type { DrawGraph, DrawVertex } from './describe.js';
import { layout, textWidth, type Placed, type Routed } from './layout.js';
import { nodeKinds } from '../nodes/index.js';

const FONT = "Helvetica, Arial, 'DejaVu Sans', sans-serif";
const SIZE = 12;
const LINE = 16;
const PAD_X = 12;
const PAD_Y = 8;

/** Fill, stroke and legend per kind family. */
const PALETTE = {
  vision: { fill: '#dbeafe', stroke: '#2563eb', what: 'vision encoder' },
  bridge: { fill: '#ede9fe', stroke: '#7c3aed', what: 'Q-Former / BERT' },
  head: { fill: '#dcfce7', stroke: '#16a34a', what: 'projection / head' },
  lm: { fill: '#ffedd5', stroke: '#ea580c', what: 'language model' },
};
type Family = keyof typeof PALETTE;

/**
 * A kind's family, from what the kind says of itself (NodeKind): it reads the image (vit), it is a
 * text decoder (opt, llama, t5), it is sized from tensor shapes (linear, mlp, embed, classifier),
 * else an encoder between them (qformer, bert). A kind not registered is drawn as a head.
 */
function familyOf(kind: string): Family {
  const k = Object.hasOwn(nodeKinds, kind) ? nodeKinds[kind] : undefined;
  if (!k || k.fromShapes) return 'head';
  if (k.imageSize) return 'vision';
  return k.generates === true ? 'lm' : 'bridge';
}

// The order the legend has always named the shipped kinds in; other registered kinds follow, in the registry's order.
const LEGEND_ORDER = ['vit', 'qformer', 'bert', 'linear', 'mlp', 'embed', 'classifier', 'opt', 'llama', 't5'];

/** "vision encoder (vit)": the family and the registered kinds drawn in its colour. */
function legendLabel(family: Family): string {
  const rank = (kind: string) => (LEGEND_ORDER.includes(kind) ? LEGEND_ORDER.indexOf(kind) : LEGEND_ORDER.length);
  const kinds = Object.keys(nodeKinds).filter((k) => familyOf(k) === family).sort((a, b) => rank(a) - rank(b));
  return `${PALETTE[family].what} (${kinds.join(', ')})`;
}

export const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function lines(v: DrawVertex): Array<{ text: string; bold?: boolean; dim?: boolean }> {
  if (v.role === 'node') return [{ text: `${v.name}: ${v.kind}`, bold: true }, { text: v.detail }, { text: v.note, dim: true }];
  if (v.role === 'input') return [{ text: `${v.name}: ${v.kind}`, bold: true }, { text: v.detail, dim: true }];
  return [{ text: `output ${v.name}`, bold: true }, { text: v.detail, dim: true }];
}

function boxSize(v: DrawVertex): [number, number] {
  const ls = lines(v);
  const w = Math.max(...ls.map((l) => textWidth(l.text, SIZE) * (l.bold ? 1.08 : 1))) + 2 * PAD_X + (v.role === 'output' ? 24 : v.role === 'input' ? 16 : 0);
  return [Math.max(96, w), ls.length * LINE + 2 * PAD_Y];
}

export function edgeLabel(port: string, shape: string): string {
  return [port, shape].filter(Boolean).join(' · ');
}

/** One SVG document for the graphs of one file (stacked when there are several models). */
export function toSvg(graphs: DrawGraph[], title?: string): string {
  const parts: string[] = [];
  let y = 0;
  let width = 0;
  const head = 28;
  for (const g of graphs) {
    const { body, w, h } = drawOne(g, title && graphs.length === 1 ? title : g.name);
    parts.push(`<g transform="translate(0,${y})">${body}</g>`);
    y += h + head;
    width = Math.max(width, w);
  }
  const legend = drawLegend(graphs, y, width);
  width = Math.max(width, legend.w);
  const height = y + legend.h;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}" font-size="${SIZE}">`,
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...parts,
    legend.body,
    '</svg>',
    '',
  ].join('\n');
}

function drawOne(g: DrawGraph, title: string): { body: string; w: number; h: number } {
  const sizes = new Map(g.vertices.map((v) => [v.id, boxSize(v)]));
  const lay = layout({
    vertices: g.vertices.map((v) => ({ id: v.id, width: sizes.get(v.id)![0], height: sizes.get(v.id)![1], fixedLayer: v.role === 'input' ? 'first' : v.role === 'output' ? 'last' : undefined })),
    edges: g.edges,
  });
  const top = 30;
  const out: string[] = [`<text x="16" y="20" font-size="15" font-weight="bold" fill="#111">${esc(title)}</text>`, `<g transform="translate(0,${top})">`];

  spreadEnds(lay.edges, lay.vertices);
  // Edges first (under the boxes), then labels, then boxes.
  const labels: string[] = [];
  g.edges.forEach((e, k) => {
    const r = lay.edges[k];
    if (!r) return;
    let d = `M${r.points[0][0].toFixed(1)},${r.points[0][1].toFixed(1)}`;
    for (let i = 1; i < r.points.length; i++) {
      const [x0, y0] = r.points[i - 1];
      const [x1, y1] = r.points[i];
      const dy = (y1 - y0) / 2;
      d += ` C${x0.toFixed(1)},${(y0 + dy).toFixed(1)} ${x1.toFixed(1)},${(y1 - dy).toFixed(1)} ${x1.toFixed(1)},${y1.toFixed(1)}`;
    }
    out.push(`<path d="${d}" fill="none" stroke="#555" stroke-width="1.3" marker-end="url(#arrow)"><title>${esc(`${e.from} → ${e.to}${e.port ? ` (${e.port})` : ''}${e.shape ? ` ${e.shape}` : ''}`)}</title></path>`);
    const text = edgeLabel(e.port, e.shape);
    if (!text) return;
    // On the last segment, midway: the edge's end is unambiguous there.
    const [x0, y0] = r.points[r.points.length - 2];
    const [x1, y1] = r.points[r.points.length - 1];
    const [mx, my] = [(x0 + x1) / 2, (y0 + y1) / 2];
    const tw = textWidth(text, SIZE - 1) + 8;
    labels.push(
      `<rect x="${(mx - tw / 2).toFixed(1)}" y="${(my - 9).toFixed(1)}" width="${tw}" height="17" rx="3" fill="#ffffff" fill-opacity="0.92"/>`,
      `<text x="${mx.toFixed(1)}" y="${(my + 4).toFixed(1)}" text-anchor="middle" font-size="${SIZE - 1}" fill="#333">${esc(text)}</text>`,
    );
  });
  out.push(...labels);
  for (const v of g.vertices) out.push(drawVertex(v, lay.vertices.get(v.id)!));
  out.push('</g>');
  return { body: out.join('\n'), w: lay.width, h: lay.height + top };
}

/**
 * Several edges into (or out of) one box would share its top (bottom) centre: spread them along
 * the side, ordered by where they come from (go to), so arrowheads and labels stay apart.
 */
function spreadEnds(edges: Routed[], vertices: Map<string, Placed>): void {
  const ins = new Map<string, Routed[]>();
  const outs = new Map<string, Routed[]>();
  for (const r of edges) {
    (ins.get(r.to) ?? ins.set(r.to, []).get(r.to)!).push(r);
    (outs.get(r.from) ?? outs.set(r.from, []).get(r.from)!).push(r);
  }
  const spread = (group: Routed[], v: Placed, end: 'in' | 'out') => {
    if (group.length < 2) return;
    const other = (r: Routed) => (end === 'in' ? r.points[r.points.length - 2][0] : r.points[1][0]);
    group.sort((a, b) => other(a) - other(b));
    const step = Math.min(36, (v.width * 0.7) / group.length);
    group.forEach((r, k) => {
      const x = v.x + (k - (group.length - 1) / 2) * step;
      if (end === 'in') r.points[r.points.length - 1][0] = x;
      else r.points[0][0] = x;
    });
  };
  for (const [id, g] of ins) spread(g, vertices.get(id)!, 'in');
  for (const [id, g] of outs) spread(g, vertices.get(id)!, 'out');
}

function drawVertex(v: DrawVertex, p: Placed): string {
  const [x, y, w, h] = [p.x - p.width / 2, p.y - p.height / 2, p.width, p.height];
  let shape: string;
  if (v.role === 'input') {
    shape = `<rect x="${x}" y="${y}" width="${w}" height="${h}" rx="${h / 2}" fill="#f3f4f6" stroke="#6b7280" stroke-width="1.2"/>`;
  } else if (v.role === 'output') {
    const c = 12;
    const pts = [[x + c, y], [x + w - c, y], [x + w, y + h / 2], [x + w - c, y + h], [x + c, y + h], [x, y + h / 2]];
    shape = `<polygon points="${pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ')}" fill="#fef9c3" stroke="#a16207" stroke-width="1.2"/>`;
  } else {
    const { fill, stroke } = PALETTE[familyOf(v.kind)];
    const dash = v.frozen ? ' stroke-dasharray="6 3"' : '';
    shape =
      `<rect x="${x}" y="${y}" width="${w}" height="${h}" rx="6" fill="${fill}" stroke="${stroke}" stroke-width="${v.frozen ? 1.6 : 2}"${dash}/>` +
      (v.frozen ? `<rect x="${x}" y="${y}" width="${w}" height="${h}" rx="6" fill="#9ca3af" fill-opacity="0.18"/>` : '');
  }
  const ls = lines(v);
  const texts = ls.map((l, k) => {
    const ty = y + PAD_Y + LINE * k + LINE - 4;
    const weight = l.bold ? ' font-weight="bold"' : '';
    const fill = l.dim ? '#4b5563' : '#111827';
    return `<text x="${p.x.toFixed(1)}" y="${ty.toFixed(1)}" text-anchor="middle"${weight} fill="${fill}">${esc(l.text)}</text>`;
  });
  return `<g class="${v.role}${v.frozen ? ' frozen' : ''}" id="${esc(v.id)}">${shape}${texts.join('')}</g>`;
}

function drawLegend(graphs: DrawGraph[], y0: number, maxWidth: number): { body: string; w: number; h: number } {
  const used = new Set(graphs.flatMap((g) => g.vertices.filter((v) => v.role === 'node').map((v) => familyOf(v.kind))));
  const items: string[] = [];
  const unknown = graphs.some((g) => g.vertices.some((v) => v.detail.includes('?')) || g.edges.some((e) => e.shape.includes('?')));
  // (a frozen box keeps its kind's border colour, dashed, under a grey tint: the note says just that)
  const notes = ["dashed border, greyed = frozen; solid border = trainable", 'B batch, S text length', ...(unknown ? ['? = read from config.json at compile time (--weights DIR fills it in)'] : [])];
  const limit = Math.max(maxWidth, 420);
  let [x, y, w] = [16, y0 + 8, 0];
  for (const key of Object.keys(PALETTE) as Family[]) {
    if (!used.has(key)) continue;
    const { fill, stroke } = PALETTE[key];
    const label = legendLabel(key);
    const itemW = 20 + textWidth(label, 11) * 0.92 + 14;
    if (x > 16 && x + itemW > limit) [x, y] = [16, y + 20];
    items.push(`<rect x="${x}" y="${y}" width="14" height="14" rx="3" fill="${fill}" stroke="${stroke}" stroke-width="1.5"/>`);
    items.push(`<text x="${x + 20}" y="${y + 11}" font-size="11" fill="#374151">${esc(label)}</text>`);
    x += itemW;
    w = Math.max(w, x);
  }
  for (const note of notes) {
    y += 20;
    items.push(`<text x="16" y="${y + 11}" font-size="11" fill="#374151">${esc(note)}</text>`);
    w = Math.max(w, 32 + textWidth(note, 11) * 0.92);
  }
  return { body: items.join('\n'), w: Math.ceil(w), h: y + 24 - y0 };
}
