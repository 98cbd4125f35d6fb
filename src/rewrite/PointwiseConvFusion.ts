// The decoder's products with a weight as 1×1 convolutions over the rows, which onnxruntime runs
// with MLAS's NCHWc pointwise kernel instead of its SGEMM:
//
//   before:  y = MatMul(x, W)  [+ b]                x (…, K), W (K, N) a weight, b (N) a weight
//   after:   r = Transpose(Reshape(x, [1, 1, -1, K]), [0, 3, 1, 2])      (1, K, 1, rows): NCHW
//            y = Reshape(Transpose(Conv(r, Wᵀ as (N, K, 1, 1) [, b]), [0, 2, 3, 1]), Shape(x)[:-1] ++ [N])
//
// Why: a decode step's products have few rows (batch × new tokens) and read their whole weight.
// MLAS's SGEMM adds each row's arithmetic to the time it waits for the weight instead of hiding it
// under that wait (docs/performance.md, "few-row products"); the pointwise convolution kernel does
// not as much. onnxruntime's NCHWc pass (graph optimization level `all`, on x86 with AVX2 / AVX-512)
// turns the two Transposes into ReorderInput / ReorderOutput in the channels-last form. Full-size
// BLIP-base, two threads, alternating calls: a batch-8 step 26.9 → 25.3 ms, 32 prompt rows 31.4 →
// 28.0 ms, one row the same; a ViT-g encode (257 rows, where SGEMM runs at the cores' peak) got
// slower (1239 → 1293 ms), so encoders keep MatMul: only the graph run once per token ("decoder").
//
// The rows go in the image's width (H = 1, W = rows, batch 1): the kernel streams the weights once
// per output row, so rows as the batch or the height would read them once per row. Only where K
// and N are multiples of 16 (the NCHWc block: 8 with AVX2, 16 with AVX-512) and W is read by this
// product alone (the transposed copy replaces it in weights.bin: same bytes). A bias Add that reads
// the product alone becomes the Conv's bias. Not with --quantize: those products become
// MatMulNBits. The same dot products summed in another order: the tests see ~1e-6 on O(1) outputs.
//
// The leading dimensions are read once for all the values known to share them, not once per
// product: a decoder's hidden states, norms, attention outputs and products all have the step's
// (B, S), so one Shape and one Concat per width N serve every product (leadRoot). Each small node
// costs a step a few µs: BLIP-base's step went from 681 to 541 nodes, 0.2–0.4 ms faster at batch 1
// and with 3 beams (of 11–15), 0.9–1.0 at batch 8; the OPT-350m layout's 0.6–0.7 of 26 ms.
import type { Fusion, GraphView, Node } from './graph.js';

const BLOCK = 16;

// Ops whose output 0 has the shape of their input 0 (elementwise, or over the last axis only; the
// skip norms' output 3, the input and skip summed, too).
const SAME_SHAPE = new Set(['LayerNormalization', 'SkipLayerNormalization', 'SimplifiedLayerNormalization', 'SkipSimplifiedLayerNormalization', 'BiasGelu', 'FastGelu', 'Gelu', 'Relu', 'Sigmoid', 'Tanh', 'Cast', 'RotaryEmbedding']);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div']);

/** u, where the shape `s` keeps u's leading dimensions: Shape(u), or Concat(Shape(u)[:-1], [N]). */
function leadingOf(g: GraphView, s: string | undefined | null): string | undefined {
  const whole = (v: string | undefined | null, end?: number) => {
    const p = g.producer(v, 'Shape');
    return p && g.attrInt(p, 'start', 0) === 0 && g.attrInt(p, 'end') === end ? p.input![0]! : undefined;
  };
  const cat = g.producer(s, 'Concat');
  if (!cat) return whole(s);
  const [lead, width] = cat.input!;
  return cat.input!.length === 2 && g.attrInt(cat, 'axis', 0) === 0 && g.ints(width)?.length === 1 ? whole(lead, -1) : undefined;
}

/**
 * The value whose leading dimensions (all but the last) `x` is known to share, following x back
 * through ops that keep them: same-shape ops, a Split over the last axis, a Reshape to u's leading
 * dimensions (u's root), attention (its output has the query's (B, S)), a binary op with a rank ≤ 1
 * constant or with two inputs that lead back to one value, and the products this fusion rewrote
 * (`rowsOf`: output -> its input's root). Anything else is its own root: two values share a Shape
 * only where that is certain (a broadcast Add of two different roots is neither's).
 */
function leadRoot(g: GraphView, x: string, rowsOf: Map<string, string>, memo: Map<string, string>): string {
  const known = memo.get(x) ?? rowsOf.get(x);
  if (known !== undefined) return known;
  const p = g.producer(x);
  const reshapedFrom = p?.opType === 'Reshape' && !p.domain ? leadingOf(g, p.input![1]) : undefined;
  let root = x;
  if (p && (p.output![0] === x || (p.output![3] === x && p.opType!.startsWith('Skip'))) && SAME_SHAPE.has(p.opType!)) root = leadRoot(g, p.input![0]!, rowsOf, memo);
  else if (p && p.opType === 'Split' && !p.domain && g.attrInt(p, 'axis', 0) === -1) root = leadRoot(g, p.input![0]!, rowsOf, memo);
  else if (reshapedFrom) root = leadRoot(g, reshapedFrom, rowsOf, memo);
  else if (p && p.output![0] === x && p.domain === 'com.microsoft' && (p.opType === 'GroupQueryAttention' || (p.opType === 'MultiHeadAttention' && p.input![1]))) {
    root = leadRoot(g, p.input![0]!, rowsOf, memo); // a separate key: the query is (B, S, D)
  } else if (p && BINARY.has(p.opType!) && !p.domain) {
    const [a, b] = p.input as [string, string];
    const small = (v: string) => (g.dims(v)?.length ?? 2) <= 1;
    if (small(b) && !small(a)) root = leadRoot(g, a, rowsOf, memo);
    else if (small(a) && !small(b)) root = leadRoot(g, b, rowsOf, memo);
    else if (!small(a) && !small(b)) {
      const [ra, rb] = [leadRoot(g, a, rowsOf, memo), leadRoot(g, b, rowsOf, memo)];
      if (ra === rb) root = ra;
    }
  }
  memo.set(x, root);
  return root;
}

/** A float32 view of the (K, N) weight `key` as (N, K, 1, 1). */
function transposedForConv(g: GraphView, key: string, K: number, N: number): string {
  const spec = g.b.weights.spec(key)!;
  return g.weight({
    key: `${key}:pointwise`,
    dims: [N, K, 1, 1],
    produce: async (scratch) => {
      const w = (await spec.produce(scratch)) as Float32Array;
      const out = new Float32Array(K * N);
      for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) out[n * K + k] = w[k * N + n];
      return out;
    },
    origin: spec.origin,
  });
}

export const PointwiseConvFusion: Fusion = {
  name: 'PointwiseConv',
  emits: {}, // standard Reshape, Transpose and Conv
  applies: (ft, o) => o.target === 'cpu' && ft === 'float32' && !o.quantize,
  run(g) {
    if (g.b.name !== 'decoder') return 0;
    let n = 0;
    const rowsOf = new Map<string, string>(); // a rewritten product's output -> its leading dims' root
    const memo = new Map<string, string>();
    const lead = new Map<string, string>(); // root -> Shape(root)[:-1]
    const outShape = new Map<string, string>(); // root|N -> Shape(root)[:-1] ++ [N]
    for (const mm of [...g.nodes]) {
      if (mm.opType !== 'MatMul' || mm.domain || !g.nodes.includes(mm)) continue;
      const [x, w] = mm.input as [string, string];
      const d = g.isWeight(w) ? g.dims(w) : undefined;
      if (!d || d.length !== 2 || g.isWeight(x) || g.consumers(w).length !== 1) continue;
      const [K, N] = d;
      if (K % BLOCK || N % BLOCK) continue;
      // A bias Add that reads the product alone folds into the Conv.
      let final: Node = mm;
      let bias: string | undefined;
      const y0 = mm.output![0];
      const [c] = g.consumers(y0);
      if (g.consumers(y0).length === 1 && !g.isGraphOutput(y0) && c.opType === 'Add' && !c.domain) {
        const other = c.input![0] === y0 ? c.input![1] : c.input![0];
        const od = g.isWeight(other) ? g.dims(other) : undefined;
        if (od && od.length === 1 && od[0] === N) [bias, final] = [other, c];
      }
      const flat = g.b.int64([1, 1, -1, K], [4], 'pointwise_rows').name;
      const [r] = g.emit(mm, 'Reshape', [x, flat], {}, ['pointwise_nhwc']);
      const [nchw] = g.emit(mm, 'Transpose', [r], { perm: [0, 3, 1, 2] }, ['pointwise_nchw']);
      const [conv] = g.emit(mm, 'Conv', [nchw, transposedForConv(g, w, K, N), bias], { kernel_shape: [1, 1] }, ['pointwise']);
      const [back] = g.emit(mm, 'Transpose', [conv], { perm: [0, 2, 3, 1] }, ['pointwise_nhwc_out']);
      const root = leadRoot(g, x, rowsOf, memo);
      let ld = lead.get(root);
      if (!ld) lead.set(root, (ld = g.emit(mm, 'Shape', [root], { end: -1 }, ['pointwise_lead'])[0]));
      let shape = outShape.get(`${root}|${N}`);
      if (!shape) outShape.set(`${root}|${N}`, (shape = g.emit(mm, 'Concat', [ld, g.b.int64([N], [1], 'pointwise_width').name], { axis: 0 }, ['pointwise_shape'])[0]));
      const y = final.output![0];
      g.drop(mm, ...(final === mm ? [] : [final]));
      g.emit(mm, 'Reshape', [back, shape], {}, [{ name: y }]);
      rowsOf.set(y, root);
      n++;
    }
    return n;
  },
};
