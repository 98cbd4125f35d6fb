// A MultiHeadAttention's score scale moved into its query projection, so that the kernel's own
// scale is 1:
//
//   before:  y = MultiHeadAttention(MatMul(x, Wq), k, v, bias = [bq | bk | bv], scale = s)
//   after:   y = MultiHeadAttention(MatMul(x, Wq·s), k, v, bias = [bq·s | bk | bv], scale = 1)
//
// Why: the CPU kernel computes q·kᵀ with MLAS's SGEMM at alpha = scale, and MLAS takes its
// streaming one-row kernels (M = 1, no packing of kᵀ per head and call) only when alpha is 1. A
// decode step's query is one row, so BLIP's cross-attention over 577 image tokens went from
// 172 to 137 us per layer on full-size BLIP-base (two threads, onnxruntime profile). For longer
// queries (encoders, prefill) the kernel's cost is the same either way.
//
// (x·Wq + bq)·s and x·(Wq·s) + bq·s differ by float rounding (the tests see ~1e-7 on O(1) outputs).
// Only where the query weight is read by this projection alone (otherwise the scaled copy would be
// stored beside the original) and the bias, if any, is a weight; only float32 on the CPU, the kernel
// this was measured on. Runs after QueryScaleFusion and AttentionBiasFusion, which gather OPT's
// scale and every bias into the kernel first.
import { MS, regroupedRows, type Fusion, type GraphView } from './graph.js';

/** A float32 view of a weight with every element (or the first `count`) multiplied by s. */
function scaled(g: GraphView, key: string, s: number, count?: number): string {
  const spec = g.b.weights.spec(key)!;
  return g.weight({
    key: `${key}:scale=${s}${count === undefined ? '' : `@${count}`}`,
    dims: spec.dims,
    produce: async (scratch) => {
      const out = Float32Array.from((await spec.produce(scratch)) as Float32Array);
      const n = count ?? out.length;
      for (let i = 0; i < n; i++) out[i] *= s; // stored as float32: one rounding, as the kernel's
      return out;
    },
    origin: spec.origin,
  });
}

export const UnitScaleFusion: Fusion = {
  name: 'UnitScale',
  emits: {}, // edits MultiHeadAttention's scale and weights in place
  applies: (ft, o) => o.target === 'cpu' && ft === 'float32',
  run(g) {
    let n = 0;
    for (const mha of g.nodes) {
      if (mha.domain !== MS || mha.opType !== 'MultiHeadAttention') continue;
      const scale = g.attr(mha, 'scale');
      if (!scale?.f || scale.f === 1) continue; // unset or 0 means 1/√D to the kernel: left as it is
      const q = mha.input![0];
      // the projection itself, or under a Reshape that puts its rows in groups (QueryGroups): a factor is the same either side of it
      const rows = g.producer(q, 'MatMul') ? undefined : regroupedRows(g, q);
      const mm = g.producer(rows?.u ?? q, 'MatMul');
      if (!mm || !g.onlyFeeds(q, mha) || (rows && g.dims(mm.input![1]!)?.[1] !== rows.width)) continue;
      const w = mm.input![1]!;
      if (!g.isWeight(w) || g.dims(w)?.length !== 2 || g.consumers(w).length !== 1) continue;
      const bias = mha.input![3];
      if (bias && (!g.isWeight(bias) || g.dims(bias)?.length !== 1)) continue;
      const s = Math.fround(scale.f);
      const width = g.dims(w)![1];
      mm.input = [mm.input![0], scaled(g, w, s)];
      if (bias) {
        const inputs = [...mha.input!];
        inputs[3] = scaled(g, bias, s, width);
        mha.input = inputs;
      }
      scale.f = 1;
      n++;
    }
    if (n) g.reindex();
    return n;
  },
};
