// The query, key and value projections of one attention that read the same input, as one MatMul
// over their weights laid side by side, split after:
//
//   before:  y = Attention(MatMul(x, Wq), MatMul(x, Wk), MatMul(x, Wv), …)
//   after:   q, k, v = Split(MatMul(x, [Wq | Wk | Wv]), [Nq, Nk, Nv], axis -1)
//            y = Attention(q, k, v, …)
//
// Attention is MultiHeadAttention, or GroupQueryAttention whose q and k pass through their own
// RotaryEmbedding first (LLaMA). Where only two of the three share the input (a Q-Former's
// cross-attention: key and value from the image), those two are packed.
//
// Why: at a decode step every projection is a one-row product that reads its whole weight, and
// MLAS reads a small weight more slowly than a large one (full-size BLIP-base, two threads: 768 ×
// 768 at ~32 GB/s, 768 × 3072 at ~45 GB/s), so three small reads become one large one. The weights
// are stored once (the packed copy replaces the three, which nothing else reads); the activations
// gain one Split, a copy of the projections' outputs. onnxruntime's CPU MultiHeadAttention does not
// take packed QKV itself (its packed layouts are not implemented there), hence the Split.
//
// Each output is the same dot products over the same weights: equal to the unfused graph's bit for
// bit whenever MLAS sums in the same order (the tests see at most rounding). CPU target, float32.
import { MS, type Fusion, type GraphView, type Node } from './graph.js';

interface Projection {
  /** The MatMul(x, W). */
  mm: Node;
  x: string;
  w: string;
  /** Output width (W's second dimension). */
  width: number;
}

/** MatMul(x, W) behind an attention input (through a RotaryEmbedding for GroupQueryAttention), read by nothing else. */
function projection(g: GraphView, v: string | undefined | null, reader: Node): Projection | undefined {
  if (!v) return undefined;
  let into = reader;
  let out = v;
  const rot = g.producer(v);
  if (reader.opType === 'GroupQueryAttention' && rot?.domain === MS && rot.opType === 'RotaryEmbedding') {
    if (!g.onlyFeeds(v, reader)) return undefined;
    into = rot;
    out = rot.input![0]!;
  }
  const mm = g.producer(out, 'MatMul');
  if (!mm || !g.onlyFeeds(out, into)) return undefined;
  const [x, w] = mm.input as string[];
  const dims = g.dims(w);
  if (!g.isWeight(w) || dims?.length !== 2 || g.consumers(w).length !== 1 || g.isWeight(x)) return undefined;
  return { mm, x, w, width: dims[1] };
}

export const QkvPackFusion: Fusion = {
  name: 'QkvPack',
  emits: {}, // a standard MatMul and Split
  applies: (ft, o) => o.target === 'cpu' && ft === 'float32',
  run(g) {
    let n = 0;
    for (const att of [...g.nodes]) {
      if (att.domain !== MS || (att.opType !== 'MultiHeadAttention' && att.opType !== 'GroupQueryAttention')) continue;
      const found = [0, 1, 2].map((i) => projection(g, att.input![i], att)).filter((p): p is Projection => !!p);
      // The largest group of projections reading one input (two or three of them).
      const byInput = new Map<string, Projection[]>();
      for (const p of found) byInput.set(p.x, [...(byInput.get(p.x) ?? []), p]);
      const parts = [...byInput.values()].sort((a, b) => b.length - a.length)[0];
      if (!parts || parts.length < 2) continue;
      const K = g.dims(parts[0].w)![0];
      if (parts.some((p) => g.dims(p.w)![0] !== K)) continue;
      const specs = parts.map((p) => g.b.weights.spec(p.w)!);
      const widths = parts.map((p) => p.width);
      const total = widths.reduce((a, b) => a + b, 0);
      const packed = g.weight({
        key: `${parts.map((p) => p.w).join('+')}:packed`,
        dims: [K, total],
        // Row r of the packed weight is row r of each part in turn (every element is written, so
        // scratch memory will do); the peak is the packed tensor plus its parts.
        produce: async (s) => {
          const out = s ? s.float32(K * total) : new Float32Array(K * total);
          let col = 0;
          for (let i = 0; i < parts.length; i++) {
            const src = (await specs[i].produce(s)) as Float32Array;
            const w = widths[i];
            for (let r = 0; r < K; r++) out.set(src.subarray(r * w, (r + 1) * w), r * total + col);
            col += w;
          }
          return out;
        },
        origin: specs[0].origin,
      });
      const first = parts[0].mm;
      const [y] = g.emit(first, 'MatMul', [parts[0].x, packed], {}, ['qkv']);
      const sizes = g.b.int64(widths, [widths.length], 'qkv_split').name;
      g.emit(first, 'Split', [y, sizes], { axis: -1 }, parts.map((p) => ({ name: p.mm.output![0]! })));
      g.drop(...parts.map((p) => p.mm));
      n++;
    }
    return n;
  },
};
