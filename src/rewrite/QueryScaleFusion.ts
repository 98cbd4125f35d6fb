// A query scaled before the attention (OPT: q = (x·Wq + bq)·D^-½, then softmax(q·kᵀ + mask)) takes
// the factor into MultiHeadAttention's `scale` instead, which its kernel applies to the scores:
//
//   before:  y = MultiHeadAttention(Mul(q, c), k, v, …, scale = s)
//   after:   y = MultiHeadAttention(q, k, v, …, scale = s·c)
//
// One Mul node fewer per layer, and the query's bias Add left bare for AttentionBiasFusion to move
// into the kernel (so it runs before that fusion). (q·c)·k and (q·k)·c are the same number when c
// is a power of two (OPT's D = 64 gives 1/8) and differ by float rounding otherwise.
import { MS, type Fusion } from './graph.js';

export const QueryScaleFusion: Fusion = {
  name: 'QueryScale',
  emits: {}, // edits MultiHeadAttention's scale and query in place
  applies: (ft, o) => o.target === 'cpu' && ft === 'float32',
  run(g) {
    let n = 0;
    for (const mha of g.nodes) {
      if (mha.domain !== MS || mha.opType !== 'MultiHeadAttention') continue;
      const q = mha.input![0];
      const mul = g.producer(q, 'Mul');
      if (!mul || !g.onlyFeeds(q, mha)) continue;
      const ci = mul.input!.findIndex((i) => g.scalar(i) !== undefined && g.constType(i!) === 1 /* FLOAT */);
      if (ci < 0) continue;
      const c = g.scalar(mul.input![ci])!;
      const scale = g.attr(mha, 'scale');
      if (!scale?.f || !(c > 0)) continue; // unset or 0 is the kernel's default, 1/√D: not a number to multiply
      scale.f = Math.fround(Math.fround(scale.f) * Math.fround(c)); // the float32 numbers the graph holds
      const inputs = [...mha.input!];
      inputs[0] = mul.input![1 - ci];
      mha.input = inputs; // the Mul is left to pruneDead
      n++;
    }
    if (n) g.reindex();
    return n;
  },
};
