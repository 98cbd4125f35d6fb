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
import type { Fusion, GraphView, Node } from './graph.js';

const BLOCK = 16;

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
    const lead = new Map<string, string>(); // x -> Shape(x)[:-1]
    const outShape = new Map<string, string>(); // x|N -> Shape(x)[:-1] ++ [N]
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
      let ld = lead.get(x);
      if (!ld) lead.set(x, (ld = g.emit(mm, 'Shape', [x], { end: -1 }, ['pointwise_lead'])[0]));
      let shape = outShape.get(`${x}|${N}`);
      if (!shape) outShape.set(`${x}|${N}`, (shape = g.emit(mm, 'Concat', [ld, g.b.int64([N], [1], 'pointwise_width').name], { axis: 0 }, ['pointwise_shape'])[0]));
      const y = final.output![0];
      g.drop(mm, ...(final === mm ? [] : [final]));
      g.emit(mm, 'Reshape', [back, shape], {}, [{ name: y }]);
      n++;
    }
    return n;
  },
};
