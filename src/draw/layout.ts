// A small layered ("Sugiyama") layout, top to bottom, for the graphs `blip graph` draws: a handful
// of vertices, no cycles (the checker refuses them). Steps:
//   1. layers: inputs on layer 0, a node one below its lowest producer, outputs on the last layer;
//   2. an edge spanning several layers gets a virtual point on each layer it crosses;
//   3. order within layers: a few barycentre sweeps down and up (fewer crossings);
//   4. x positions: each vertex pulled toward the mean x of its neighbours, without overlaps;
//   5. edges: polylines through their virtual points.
// No text measurement is available in-process, so box widths come from character counts
// (`textWidth`): generous for the sans-serif fonts SVG viewers use.

export interface LayoutInput {
  vertices: Array<{ id: string; width: number; height: number; fixedLayer?: 'first' | 'last' }>;
  edges: Array<{ from: string; to: string }>;
}

export interface Placed {
  id: string;
  layer: number;
  /** Centre. */
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Routed {
  from: string;
  to: string;
  /** From the bottom centre of `from` to the top centre of `to`, through the virtual points. */
  points: Array<[number, number]>;
}

export interface Layout {
  width: number;
  height: number;
  vertices: Map<string, Placed>;
  edges: Routed[];
}

export const LAYER_GAP = 64;
export const H_GAP = 28;
const VIRTUAL_WIDTH = 12;

/** Approximate rendered width of `text` at `fontSize` px (average sans-serif advance ≈ 0.6 em, ASCII). */
export function textWidth(text: string, fontSize: number): number {
  let w = 0;
  for (const ch of text) w += /[A-Z@mwMW→]/.test(ch) ? 0.78 : /[il.,:·'|() ]/.test(ch) ? 0.36 : 0.58;
  return Math.ceil(w * fontSize);
}

interface Item {
  id: string;
  virtual: boolean;
  width: number;
  height: number;
  layer: number;
  order: number;
  x: number;
  ups: Item[];
  downs: Item[];
}

export function layout(g: LayoutInput, margin = 16): Layout {
  const items = new Map<string, Item>();
  for (const v of g.vertices) items.set(v.id, { id: v.id, virtual: false, width: v.width, height: v.height, layer: 0, order: 0, x: 0, ups: [], downs: [] });
  const edges = g.edges.filter((e) => items.has(e.from) && items.has(e.to));

  // 1. Layers: longest path from the sources (vertices are topologically ordered by the caller,
  //    but iterate to a fixed point so any order works).
  const fixed = new Map(g.vertices.map((v) => [v.id, v.fixedLayer]));
  for (let changed = true, guard = 0; changed && guard < items.size + 2; guard++) {
    changed = false;
    for (const e of edges) {
      const [a, b] = [items.get(e.from)!, items.get(e.to)!];
      if (fixed.get(b.id) !== 'first' && b.layer < a.layer + 1) {
        b.layer = a.layer + 1;
        changed = true;
      }
    }
  }
  const last = Math.max(0, ...[...items.values()].map((i) => i.layer + (fixed.get(i.id) === 'last' ? 0 : 1)));
  for (const i of items.values()) if (fixed.get(i.id) === 'last') i.layer = Math.max(i.layer, last);

  // 2. Virtual points on long edges.
  const chains: Array<{ from: string; to: string; items: Item[] }> = [];
  for (const e of edges) {
    const [a, b] = [items.get(e.from)!, items.get(e.to)!];
    const chain = [a];
    for (let l = a.layer + 1; l < b.layer; l++) {
      const v: Item = { id: `~${e.from}->${e.to}@${l}`, virtual: true, width: VIRTUAL_WIDTH, height: 0, layer: l, order: 0, x: 0, ups: [], downs: [] };
      items.set(v.id, v);
      chain.push(v);
    }
    chain.push(b);
    for (let k = 0; k + 1 < chain.length; k++) {
      chain[k].downs.push(chain[k + 1]);
      chain[k + 1].ups.push(chain[k]);
    }
    chains.push({ from: e.from, to: e.to, items: chain });
  }

  const nLayers = Math.max(0, ...[...items.values()].map((i) => i.layer)) + 1;
  const layers: Item[][] = Array.from({ length: nLayers }, () => []);
  for (const i of items.values()) layers[i.layer].push(i);
  layers.forEach((l) => l.forEach((it, k) => (it.order = k)));

  // 3. Barycentre ordering.
  const bary = (it: Item, side: 'ups' | 'downs') => (it[side].length ? it[side].reduce((s, n) => s + n.order, 0) / it[side].length : it.order);
  for (let sweep = 0; sweep < 8; sweep++) {
    const down = sweep % 2 === 0;
    const range = down ? layers.slice(1) : layers.slice(0, -1).reverse();
    for (const layer of range) {
      const keyed = layer.map((it) => ({ it, key: bary(it, down ? 'ups' : 'downs') }));
      keyed.sort((p, r) => p.key - r.key || p.it.order - r.it.order);
      keyed.forEach(({ it }, k) => (it.order = k));
      layer.sort((p, r) => p.order - r.order);
    }
  }

  // 4. x positions: pack each layer, then relax toward neighbours' mean x, keeping gaps.
  const gapAfter = (a: Item, b: Item) => (a.virtual || b.virtual ? H_GAP / 2 : H_GAP) + (a.width + b.width) / 2;
  for (const layer of layers) {
    let x = 0;
    layer.forEach((it, k) => {
      if (k > 0) x += gapAfter(layer[k - 1], it);
      it.x = x;
    });
    const mid = x / 2;
    layer.forEach((it) => (it.x -= mid));
  }
  for (let pass = 0; pass < 12; pass++) {
    const down = pass % 2 === 0;
    const range = down ? layers.slice(1) : layers.slice(0, -1).reverse();
    for (const layer of range) {
      const want = layer.map((it) => {
        const ns = down ? it.ups : it.downs;
        return ns.length ? ns.reduce((s, n) => s + n.x, 0) / ns.length : it.x;
      });
      // Place left to right at the wanted x, pushed right when overlapping; then shift the block
      // back so the mean displacement is zero (keeps the layer centred on its neighbours).
      const xs: number[] = [];
      layer.forEach((it, k) => (xs[k] = k === 0 ? want[0] : Math.max(want[k], xs[k - 1] + gapAfter(layer[k - 1], it))));
      const shift = xs.reduce((s, x, k) => s + (want[k] - x), 0) / Math.max(1, xs.length);
      layer.forEach((it, k) => (it.x = xs[k] + shift));
    }
  }

  // y positions: each layer as tall as its tallest vertex.
  const heights = layers.map((l) => Math.max(0, ...l.map((i) => i.height)));
  const ys: number[] = [];
  let y = margin;
  heights.forEach((h, k) => {
    ys[k] = y + h / 2;
    y += h + LAYER_GAP;
  });
  const minX = Math.min(...[...items.values()].map((i) => i.x - i.width / 2));
  const maxX = Math.max(...[...items.values()].map((i) => i.x + i.width / 2));
  const dx = margin - minX;

  const placed = new Map<string, Placed>();
  for (const v of g.vertices) {
    const it = items.get(v.id)!;
    placed.set(v.id, { id: v.id, layer: it.layer, x: it.x + dx, y: ys[it.layer], width: it.width, height: it.height });
  }
  const routed: Routed[] = chains.map((c) => {
    const pts: Array<[number, number]> = [];
    c.items.forEach((it, k) => {
      const x = it.x + dx;
      const cy = ys[it.layer];
      if (k === 0) pts.push([x, cy + it.height / 2]);
      else if (k === c.items.length - 1) pts.push([x, cy - it.height / 2]);
      else pts.push([x, cy]);
    });
    return { from: c.from, to: c.to, points: pts };
  });
  return { width: Math.ceil(maxX - minX + 2 * margin), height: Math.ceil(y - LAYER_GAP + margin), vertices: placed, edges: routed };
}
