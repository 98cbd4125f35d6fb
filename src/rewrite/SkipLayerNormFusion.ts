// Residual add + LayerNorm in one kernel, the linear layer's bias folded in, the sum kept for the
// next residual.
//
//   before:  a = MatMul(x, W);  h = Add(a, bias);  s = Add(h, r);  y = LayerNormalization(s, γ, β)
//   after:   y, _, _, s = com.microsoft.SkipLayerNormalization(a, r, γ, β, bias)
//
// The bias is folded only when it is a 1-D weight read by that Add alone; the 4th output (the
// input + skip + bias sum) is requested only when s is read elsewhere (pre-norm ViT/OPT residual
// streams). `skip` may broadcast as (S, W) or (1, S, W) (learned positions), so the operand that is
// a linear layer's output is the input and the other the skip. In float16 graphs it takes the
// float16 LayerNormalization that Float16LayerNormFusion makes of the Cast-wrapped one (the fused
// kernels of CUDA and WebGPU accumulate in float32 as well).
//
// Not on the CPU: onnxruntime 1.30's CPU SkipLayerNormalization runs 3-5x slower than its
// Add + Add + LayerNormalization on every input of more than one row (257 x 1408: 0.84 against
// 0.24 ms on 2 threads, 1.5 against 0.3 ms on one) and no faster on one row (12 against 10 µs),
// so the CPU target keeps the adds and LayerNormalization (docs/performance.md).
import { MS, type Fusion, type GraphView, type Node } from './graph.js';

export const SkipLayerNormFusion: Fusion = {
  name: 'SkipLayerNormalization',
  emits: { [`${MS}.SkipLayerNormalization`]: 'inputs' },
  applies: (_ft, o) => o.target === 'cuda' || o.target === 'webgpu',
  run(g) {
    let n = 0;
    for (const ln of [...g.nodes]) {
      if (ln.opType !== 'LayerNormalization' || ln.domain || !g.nodes.includes(ln)) continue;
      const axis = g.attrInt(ln, 'axis', -1);
      const [sName, gamma, beta] = ln.input ?? [];
      if (axis !== -1 || !beta) continue;
      const add = g.producer(sName, 'Add');
      if (!add) continue;
      const [p, q] = add.input!;
      // Neither operand a constant (that is a plain bias add, not a residual).
      if ([p, q].some((v) => g.scalar(v) !== undefined || g.ints(v) !== undefined || (g.isWeight(v) && (g.dims(v)?.length ?? 0) < 2))) continue;
      // Which operand is a biased linear layer: its bias folds in and it becomes the input.
      const biased = (v: string): { input: string; bias: string; node: Node } | undefined => {
        const a = g.producer(v, 'Add');
        if (!a || !g.onlyFeeds(v, add)) return undefined;
        const bi = a.input!.findIndex((i) => g.isWeight(i) && g.dims(i)?.length === 1);
        const other = a.input![1 - bi];
        if (bi < 0 || !g.producer(other, 'MatMul')) return undefined;
        return { input: other, bias: a.input![bi], node: a };
      };
      const viaP = biased(p);
      const viaQ = viaP ? undefined : biased(q);
      const [input, skip, bias] = viaP ? [viaP.input, q, viaP.bias] : viaQ ? [viaQ.input, p, viaQ.bias] : isWeightLike(g, p) ? [q, p, undefined] : [p, q, undefined];
      const sumRead = !g.onlyFeeds(sName, ln);
      const eps = g.attrFloat(ln, 'epsilon', 1e-5)!;
      g.drop(ln, ...(sumRead ? [add] : []));
      g.emit(ln, 'SkipLayerNormalization', [input, skip, gamma, beta, bias], { epsilon: { float: eps } }, [{ name: ln.output![0] }, '', '', sumRead ? { name: sName } : ''], MS);
      n++;
    }
    return n;
  },
};

/** A learned-position table (a weight of rank ≥ 2) added to the tokens: it is the broadcast skip. */
function isWeightLike(g: GraphView, v: string): boolean {
  return g.isWeight(v);
}
