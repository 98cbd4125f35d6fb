// Exact (erf) GELU, with the bias of the linear layer before it folded in.
//
//   before:  a = MatMul(x, W);  h = Add(a, bias);  y = Mul(Mul(h, 0.5), Add(Erf(Mul(h, 1/√2)), 1))
//   after:   y = com.microsoft.BiasGelu(a, bias)             (h read by nothing else)
//            y = com.microsoft.Gelu(h)                       (no 1-D bias before it)
//
// GraphBuilder.gelu() emits the decomposed form (any runtime loads it); BiasGelu and Gelu compute
// 0.5·x·(1 + erf(x/√2)) in one pass (CPU, CUDA, WebGPU kernels; float on CPU).
import { MS, near, type Fusion, type GraphView, type Node } from './graph.js';

interface Match {
  out: Node; // the final Mul
  x: string; // GELU input
  readers: Node[]; // the two Muls that read it
  drop: Node[];
}

function match(g: GraphView, mul: Node): Match | undefined {
  if (mul.opType !== 'Mul' || mul.domain) return undefined;
  const [a, c] = mul.input ?? [];
  // Mul(half, onep) in either order
  for (const [halfName, onepName] of [
    [a, c],
    [c, a],
  ]) {
    const half = g.producer(halfName, 'Mul');
    const onep = g.producer(onepName, 'Add');
    if (!half || !onep) continue;
    const hx = half.input!.find((i) => !near(g.scalar(i), 0.5));
    if (!hx || !half.input!.some((i) => near(g.scalar(i), 0.5))) continue;
    const erfName = onep.input!.find((i) => !near(g.scalar(i), 1));
    if (!erfName || !onep.input!.some((i) => near(g.scalar(i), 1))) continue;
    const erf = g.producer(erfName, 'Erf');
    const scaled = erf && g.producer(erf.input![0], 'Mul');
    if (!scaled) continue;
    const sx = scaled.input!.find((i) => !near(g.scalar(i), Math.SQRT1_2));
    if (sx !== hx || !scaled.input!.some((i) => near(g.scalar(i), Math.SQRT1_2))) continue;
    // The intermediates must be private to the pattern.
    if (!g.onlyFeeds(half.output![0], mul) || !g.onlyFeeds(onep.output![0], mul) || !g.onlyFeeds(erf.output![0], onep) || !g.onlyFeeds(scaled.output![0], erf)) continue;
    return { out: mul, x: hx, readers: [half, scaled], drop: [mul] };
  }
  return undefined;
}

export const BiasGeluFusion: Fusion = {
  name: 'BiasGelu',
  emits: { [`${MS}.BiasGelu`]: 'inputs', [`${MS}.Gelu`]: 'inputs' },
  applies: (ft, o) => o.target !== 'plain' && !(o.target === 'cpu' && ft === 'float16'), // CPU kernels: float only
  run(g) {
    let n = 0;
    for (const mul of [...g.nodes]) {
      if (!g.nodes.includes(mul)) continue;
      const m = match(g, mul);
      if (!m) continue;
      // Add(a, bias) with a 1-D weight bias, read by the GELU alone: BiasGelu.
      const add = g.producer(m.x, 'Add');
      const biasIdx = add ? add.input!.findIndex((i) => g.isWeight(i) && g.dims(i)?.length === 1) : -1;
      const y = { name: m.out.output![0] };
      const private_ = !g.isGraphOutput(m.x) && g.consumers(m.x).every((c) => m.readers.includes(c));
      g.drop(...m.drop);
      if (add && biasIdx >= 0 && private_) g.emit(m.out, 'BiasGelu', [add.input![1 - biasIdx], add.input![biasIdx]], {}, [y], MS);
      else g.emit(m.out, 'Gelu', [m.x], {}, [y], MS);
      n++;
    }
    return n;
  },
};
