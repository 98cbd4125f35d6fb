// A float16 graph's LayerNorm as one float16 LayerNormalization:
//
//   before:  y = Cast(LayerNormalization(Cast(x, float), Cast(γ, float), Cast(β, float)), float16)
//   after:   y = LayerNormalization(x, γ, β)                     (x, γ, β, y float16; stash_type 1)
//
// blocks.ts layerNorm() casts to float32 and back because torch computes a float16 LayerNorm's
// statistics in float32. onnxruntime's CUDA and WebGPU float16 kernels do too (ONNX stash_type 1,
// the default: mean and variance in float32) and round once at the end, where the Cast rounded:
// the same values up to float32 summation order. It saves two Casts per norm at every step, and
// leaves the norm in the form SkipLayerNormFusion (after it) folds the residual and bias adds
// into. cuda and webgpu only: on the CPU a float16 artifact is for disk (compile.ts warns), and
// its float16 kernels would convert anyway.
import type { Fusion, GraphView, Node } from './graph.js';

const FLOAT = 1;
const FLOAT16 = 10;

/** The float16 value a Cast-to-float of it reads, if `name` is that Cast's output. */
function widened(g: GraphView, name: string | undefined | null): { from: string; cast: Node } | undefined {
  const cast = g.producer(name, 'Cast');
  return cast && g.attrInt(cast, 'to') === FLOAT && g.elemType(cast.input![0]) === FLOAT16 ? { from: cast.input![0], cast } : undefined;
}

export const Float16LayerNormFusion: Fusion = {
  name: 'Float16LayerNormalization',
  applies: (ft, o) => (o.target === 'cuda' || o.target === 'webgpu') && ft === 'float16',
  run(g) {
    let n = 0;
    for (const ln of [...g.nodes]) {
      if (ln.opType !== 'LayerNormalization' || ln.domain || !g.nodes.includes(ln)) continue;
      const [xName, gName, bName] = ln.input ?? [];
      const y = ln.output![0];
      const narrow = g.consumers(y);
      if (narrow.length !== 1 || g.isGraphOutput(y)) continue;
      const out = narrow[0];
      if (out.opType !== 'Cast' || out.domain || g.attrInt(out, 'to') !== FLOAT16) continue;
      const [x, gamma, beta] = [xName, gName, bName].map((v) => widened(g, v));
      if (!x || !gamma || (bName && !beta)) continue;
      // float16 kernels: every input float16 (the casts of the weights fold away with them)
      if (![gamma, beta].every((w) => !w || g.isWeight(w.from))) continue;
      const attrs = { axis: g.attrInt(ln, 'axis', -1)!, epsilon: { float: g.attrFloat(ln, 'epsilon', 1e-5)! }, stash_type: 1 };
      g.drop(ln, out);
      g.emit(ln, 'LayerNormalization', [x.from, gamma.from, beta?.from], attrs, [{ name: out.output![0] }]);
      n++;
    }
    return n;
  },
};
