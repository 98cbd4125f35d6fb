// retrieval.onnx scores (image, text) pairs, but the image side of a pair does not depend on its
// text: computing it once per pair ran the vision encoder again for every text of an image (CapFilt
// scores K + 1 texts per image). So the graph takes I images and P texts and an int64 `pair_image`
// (P) naming each pair's image row. Flows derived from the image alone keep I rows; a node that
// reads both kinds (the ITM text encoder's cross-attention, BLIP-2's Q-Former) gets its image-row
// inputs gathered to the P pairs first, and outputs that pair them (itm, itc_score) are per pair.
import type { GraphBuilder, Value } from './GraphBuilder.js';
import type { Flow } from './contract.js';

export type Rows = 'images' | 'pairs';

export class PairRows {
  private readonly rows = new WeakMap<Flow, Rows>();
  /** Each image-row flow's gathered form: a flow read by several nodes is gathered once. */
  private readonly gathered = new WeakMap<Flow, Flow>();
  /** `pair_image`, declared by the first gather (a graph that pairs nothing does not take it). */
  private index?: Value;

  constructor(private readonly b: GraphBuilder) {}

  mark<F extends Flow>(f: F, rows: Rows): F {
    this.rows.set(f, rows);
    return f;
  }

  /** Text and anything computed from it is per pair. */
  rowsOf(f: Flow): Rows {
    return this.rows.get(f) ?? 'pairs';
  }

  /** A node's inputs, its image-row ones gathered to the pairs when it also reads pair rows; and the rows of its output. */
  align(inputs: Record<string, Flow>): { inputs: Record<string, Flow>; rows: Rows } {
    const all = Object.values(inputs);
    if (all.length && all.every((f) => this.rowsOf(f) === 'images')) return { inputs, rows: 'images' };
    return { inputs: Object.fromEntries(Object.entries(inputs).map(([port, f]) => [port, this.toPairs(f)])), rows: 'pairs' };
  }

  /** `f` with one row per pair: row p is row pair_image[p] of an image-row flow. */
  toPairs(f: Flow): Flow {
    if (this.rowsOf(f) === 'pairs') return f;
    const known = this.gathered.get(f);
    if (known) return known;
    const b = this.b;
    this.index ??= b.input('pair_image', 'int64', ['batch']);
    const g = (v: Value, role: string) => b.gather(v, this.index!, 0, role);
    let out: Flow;
    switch (f.type) {
      case 'image':
        out = { type: 'image', pixels: g(f.pixels, 'pair_pixels') };
        break;
      case 'features':
        out = { type: 'features', hidden: g(f.hidden, 'pair_features'), mask: f.mask && g(f.mask, 'pair_features_mask') };
        break;
      case 'embedding':
        out = { type: 'embedding', embeds: g(f.embeds, 'pair_embeds'), perQuery: f.perQuery };
        break;
      case 'logits':
        out = { type: 'logits', logits: g(f.logits, 'pair_logits') };
        break;
      case 'text':
        throw new Error('internal: a text flow is per pair already');
    }
    this.gathered.set(f, out);
    return this.mark(out, 'pairs');
  }
}
