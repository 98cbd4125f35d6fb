// RMSNorm (LLaMA, T5) as onnxruntime's SimplifiedLayerNormalization, with the residual add before
// it folded in where the sum is the next residual.
//
//   before:  y = Mul(Mul(x, Reciprocal(Sqrt(Add(ReduceMean(Mul(x, x), axes [-1]), eps)))), w)
//   after:   y = SimplifiedLayerNormalization(x, w)                       (ai.onnx domain, as ORT registers it)
//   before:  x = Add(a, r);  y = RMSNorm(x, w)
//   after:   y, _, _, x = com.microsoft.SkipSimplifiedLayerNormalization(a, r, w)
//
// ORT's runtime optimizer finds the first form itself at level 'all' but never the second (notes
// §5). Float16 graphs (cuda and webgpu targets) normalise in float32 between Casts, as torch does:
//
//   before:  y = Mul(Cast(Mul(x32, Reciprocal(…ReduceMean(Mul(x32, x32))…)), float16), w)   x32 = Cast(x, float)
//   after:   y = SimplifiedLayerNormalization(x, w)              (x, w, y float16; statistics in float32)
//
// (and the Skip form over x's residual add); their kernels compute x · rsqrt(…) · w in float32 and
// round once where torch rounds before the weight: within one float16 rounding.
import { FLOAT16, MS, type Fusion, type GraphView, type Node } from './graph.js';

interface Match {
  out: Node;
  /** The normalised value (float16 graphs: the float16 value the norm widens). */
  x: string;
  w: string;
  eps: number;
  /** Float16 graphs: the Cast that widens x for the statistics (one of the norm's own readers of x). */
  widen?: Node;
}

function match(g: GraphView, mul: Node): Match | undefined {
  if (mul.opType !== 'Mul' || mul.domain) return undefined;
  for (const [wName, w] of [mul.input!, [...mul.input!].reverse()] as [string, string][]) {
    if (!g.isWeight(w) || g.dims(w)?.length !== 1) continue;
    // float16: the normalised value is rounded to float16 before the weight
    const narrow = g.producer(wName, 'Cast');
    const half = !!narrow && g.attrInt(narrow, 'to') === FLOAT16 && g.elemType(w) === FLOAT16;
    const nName = half ? narrow.input![0] : wName;
    const normed = g.producer(nName, 'Mul');
    if (!normed || !g.onlyFeeds(wName, mul) || (half && !g.onlyFeeds(nName, narrow))) continue;
    for (const [x, invName] of [normed.input!, [...normed.input!].reverse()] as [string, string][]) {
      const inv = g.producer(invName, 'Reciprocal');
      const sqrt = inv && g.producer(inv.input![0], 'Sqrt');
      const add = sqrt && g.producer(sqrt.input![0], 'Add');
      const eps = add && g.scalar(add.input![1]);
      const mean = add && g.producer(add.input![0], 'ReduceMean');
      const sq = mean && g.producer(mean.input![0], 'Mul');
      if (!inv || !sqrt || !add || eps === undefined || !mean || !sq) continue;
      const axes = g.attrInts(mean, 'axes');
      if (!axes || axes.length !== 1 || axes[0] !== -1 || g.attrInt(mean, 'keepdims', 1) !== 1) continue;
      if (sq.input![0] !== x || sq.input![1] !== x) continue;
      if (![inv, sqrt, add, mean, sq].every((n) => g.consumers(n.output![0]).length === 1)) continue;
      if (!half) return { out: mul, x, w, eps };
      const widen = g.widenedFloat16(x);
      if (!widen) continue;
      return { out: mul, x: widen.input![0], w, eps, widen };
    }
  }
  return undefined;
}

export const SimplifiedLayerNormFusion: Fusion = {
  name: 'SimplifiedLayerNormalization',
  emits: { SimplifiedLayerNormalization: 'inputs', [`${MS}.SkipSimplifiedLayerNormalization`]: 'inputs' },
  applies: (ft, o) => o.target !== 'plain' && (ft === 'float32' || o.target === 'cuda' || o.target === 'webgpu'),
  run(g) {
    let n = 0;
    for (const mul of [...g.nodes]) {
      if (!g.nodes.includes(mul)) continue;
      const m = match(g, mul);
      if (!m) continue;
      const y = { name: m.out.output![0] };
      const attrs = { epsilon: { float: m.eps } };
      const add = g.producer(m.x, 'Add');
      // A residual add: both operands computed (not constants), the sum read again later.
      const residual = add && add.input!.every((i) => !g.isWeight(i) && g.scalar(i) === undefined && g.ints(i) === undefined);
      if (add && residual) {
        const own = (c: Node) => c === m.widen || (c.opType === 'Mul' && sameNorm(g, c, m.x));
        const sumRead = g.consumers(m.x).some((c) => !own(c)) || g.isGraphOutput(m.x);
        g.drop(m.out, ...(sumRead ? [add] : []));
        g.emit(m.out, 'SkipSimplifiedLayerNormalization', [add.input![0], add.input![1], m.w], attrs, [y, '', '', sumRead ? { name: m.x } : ''], MS);
      } else {
        g.drop(m.out);
        g.emit(m.out, 'SimplifiedLayerNormalization', [m.x, m.w], { axis: -1, ...attrs }, [y], '');
      }
      n++;
    }
    return n;
  },
};

/** `c` is one of the norm's own two Muls reading x (x·x, or x·inv). */
function sameNorm(g: GraphView, c: Node, x: string): boolean {
  if (c.input![0] === x && c.input![1] === x) return true;
  const other = c.input![0] === x ? c.input![1] : c.input![0];
  return !!g.producer(other, 'Reciprocal');
}
