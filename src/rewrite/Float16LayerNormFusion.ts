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
import { FLOAT16, type Fusion } from './graph.js';

export const Float16LayerNormFusion: Fusion = {
  name: 'Float16LayerNormalization',
  emits: {}, // a standard (float16) LayerNormalization
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
      const [x, gamma, beta] = [xName, gName, bName].map((v) => g.widenedFloat16(v)?.input![0]);
      if (!x || !gamma || (bName && !beta)) continue;
      // float16 kernels: every input float16 (the casts of the weights fold away with them)
      if (![gamma, beta].every((w) => !w || g.isWeight(w))) continue;
      const attrs = { axis: g.attrInt(ln, 'axis', -1)!, epsilon: { float: g.attrFloat(ln, 'epsilon', 1e-5)! }, stash_type: 1 };
      g.drop(ln, out);
      g.emit(ln, 'LayerNormalization', [x, gamma, beta], attrs, [{ name: out.output![0] }]);
      n++;
    }
    return n;
  },
};
