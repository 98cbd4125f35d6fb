// The projection biases of a MultiHeadAttention's query, key and value, moved into its `bias`
// input: the kernel adds them while it splits the heads, instead of one Add node each.
//
//   before:  y = MultiHeadAttention(Add(Q, bq), Add(K, bk), Add(V, bv), , …)
//            y = MultiHeadAttention(Split(Add(QKV, b), 3), …)              (ViT's packed projection)
//   after:   y = MultiHeadAttention(Q, K, V, bias = [bq | bk | bv], …)    (zeros where there is no Add)
//            y = MultiHeadAttention(Split(QKV, 3), …, bias = b)
// A query whose rows a Reshape puts in groups (a cross-attention over the beams' shared image:
// QueryGroups) gives its bias too: Reshape(Add(Q, bq)) is Reshape(Q) + bq when the rows keep their width.
//
// Keys and values given as BNSH (cross-attention K/V computed once per image) get no bias from the
// kernel and zeros here; a query scaled after its bias keeps its Add (OPT's scale is moved into the
// kernel first: QueryScaleFusion). The
// same additions, though the kernel may take another path with a bias (the tests see 2e-7 on O(1)
// outputs). Measured on full-size BLIP-base's decode step (CPU, two threads, alternating rounds):
// 48 Adds fewer, -3.5 to -4 % per step, identical logits. CPU target only: it is the kernel this was checked on (BNSH keys with a bias
// included); the CUDA kernel's handling of a bias beside BNSH keys was not.
import { MS, regroupedRows, type Fusion, type GraphView, type Node } from './graph.js';

/** Add(x, b) with b a 1-D weight, read by `reader` alone: x and b. */
function biasAdd(g: GraphView, v: string, reader: Node): { x: string; bias: string; add: Node } | undefined {
  const add = g.producer(v, 'Add');
  if (!add || add.domain || !g.onlyFeeds(v, reader) || g.isGraphOutput(v)) return undefined;
  const bi = add.input!.findIndex((i) => g.isWeight(i) && g.dims(i)?.length === 1);
  if (bi < 0) return undefined;
  const x = add.input![1 - bi];
  if (g.isWeight(x)) return undefined;
  return { x, bias: add.input![bi], add };
}

/**
 * The query's bias Add under a Reshape that regroups its rows (QueryGroups: the beams of an image
 * attend as one row of queries), the Add's other input a product as wide as the bias: the Reshape
 * then reads the bare product and the kernel adds the bias after it.
 */
function regroupedBias(g: GraphView, q: string, mha: Node): { bias: string; rewire: () => void } | undefined {
  const rows = g.onlyFeeds(q, mha) ? regroupedRows(g, q) : undefined;
  const b = rows && biasAdd(g, rows.u, rows.reshape);
  const mm = b && g.producer(b.x, 'MatMul');
  if (!rows || !b || !mm || g.dims(b.bias)![0] !== rows.width || g.dims(mm.input![1]!)?.[1] !== rows.width) return undefined;
  return { bias: b.bias, rewire: () => (rows.reshape.input![0] = b.x) }; // the Add is left to pruneDead
}

/** q, k, v = Split(Add(QKV, b)) into three equal parts along the last axis, read by `mha` alone. */
function packed(g: GraphView, mha: Node): { split: Node; x: string; bias: string } | undefined {
  const split = g.producer(mha.input![0], 'Split');
  if (!split || split.domain || split.output!.length !== 3 || [0, 1, 2].some((i) => mha.input![i] !== split.output![i])) return undefined;
  if (split.input!.length > 1 && split.input![1]) return undefined; // explicit sizes: not known to be thirds
  if (split.output!.some((o) => !g.onlyFeeds(o, mha) || g.isGraphOutput(o))) return undefined;
  const axis = g.attrInt(split, 'axis', 0);
  if (axis !== -1 && axis !== 2) return undefined;
  const b = biasAdd(g, split.input![0], split);
  return b && { split, x: b.x, bias: b.bias };
}

export const AttentionBiasFusion: Fusion = {
  name: 'AttentionBias',
  emits: {}, // edits MultiHeadAttention's inputs in place
  applies: (ft, o) => o.target === 'cpu' && ft === 'float32',
  run(g) {
    let n = 0;
    for (const mha of [...g.nodes]) {
      if (mha.domain !== MS || mha.opType !== 'MultiHeadAttention' || mha.input![3]) continue;
      const p = packed(g, mha);
      if (p) {
        p.split.input![0] = p.x; // the Add is left to pruneDead
        const inputs = [...mha.input!];
        inputs[3] = p.bias;
        mha.input = inputs;
        g.reindex();
        n++;
        continue;
      }
      const parts: Array<{ bias: string; rewire: () => void } | undefined> = [0, 1, 2].map((i) => {
        const v = mha.input![i];
        const b = v ? biasAdd(g, v, mha) : undefined;
        if (b) return { bias: b.bias, rewire: () => (mha.input![i] = b.x) };
        return i === 0 && v ? regroupedBias(g, v, mha) : undefined;
      });
      if (parts.every((x) => !x)) continue;
      const widths = parts.map((x) => x && g.dims(x.bias)![0]);
      const W = widths.find((w) => w !== undefined)!;
      if (widths.some((w) => w !== undefined && w !== W)) continue; // only equal widths are laid out here
      const keys = parts.map((x) => x?.bias);
      const specs = keys.map((k) => (k ? g.b.weights.spec(k)! : undefined));
      const bias = g.weight({
        key: `${keys.map((k) => k ?? '0').join('+')}:attention_bias`,
        dims: [3 * W],
        produce: async (s) => {
          const out = new Float32Array(3 * W); // fresh: a missing bias is zeros
          for (let i = 0; i < 3; i++) if (specs[i]) out.set((await specs[i]!.produce(s)) as Float32Array, i * W);
          return out;
        },
        origin: specs.find((s) => s)!.origin,
      });
      const inputs = [...mha.input!];
      while (inputs.length < 4) inputs.push('');
      inputs[3] = bias;
      mha.input = inputs;
      parts.forEach((x) => x?.rewire());
      g.reindex();
      n++;
    }
    return n;
  },
};
