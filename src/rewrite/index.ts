// Graph rewrites between lowering and weight streaming (src/lower/compile.ts): the decomposed
// graphs the node kinds emit load in any ONNX runtime (`--target plain`); for a named target the
// patterns onnxruntime has fused kernels for are replaced by them, in this order (a later fusion
// may match what an earlier one produced). Each fusion is one file with its before → after
// formula; each says for which float types and targets its kernels exist (notes:
// onnxruntime-node-1.30.md §1, §7). `--quantize` adds the weight-only MatMulNBits rewrite last.
// Adding one: docs/architecture.md, "Adding a fused pattern".
import type { GraphBuilder } from '../lower/GraphBuilder.js';
import { BiasGeluFusion } from './BiasGeluFusion.js';
import { SkipLayerNormFusion } from './SkipLayerNormFusion.js';
import { Float16LayerNormFusion } from './Float16LayerNormFusion.js';
import { MultiHeadAttentionFusion } from './MultiHeadAttentionFusion.js';
import { RotaryEmbeddingFusion } from './RotaryEmbeddingFusion.js';
import { GroupQueryAttentionFusion } from './GroupQueryAttentionFusion.js';
import { SimplifiedLayerNormFusion } from './SimplifiedLayerNormFusion.js';
import { MatMulNBitsFusion } from './MatMulNBitsFusion.js';
import { AttentionBiasFusion } from './AttentionBiasFusion.js';
import { QueryScaleFusion } from './QueryScaleFusion.js';
import { UnitScaleFusion } from './UnitScaleFusion.js';
import { QkvPackFusion } from './QkvPackFusion.js';
import { PointwiseConvFusion } from './PointwiseConvFusion.js';
import { GraphView, TARGETS, type Fusion, type RewriteOptions, type Target } from './graph.js';

export { TARGETS, type Target, type RewriteOptions, type Fusion } from './graph.js';

// Activations, norms and rotary positions first (the attention fusions read the rotated projections).
// Float16LayerNormFusion before SkipLayerNormFusion: it gives float16 graphs the LayerNormalization that one folds adds into.
const BEFORE_ATTENTION: Fusion[] = [BiasGeluFusion, SimplifiedLayerNormFusion, Float16LayerNormFusion, SkipLayerNormFusion, RotaryEmbeddingFusion];

/**
 * The ordered fusions of each target (every one checks its own kernels' float types). The LLaMA
 * decoder's cached self-attention becomes GroupQueryAttention on the CPU only (its float32 kernel;
 * CUDA has none, WebGPU is causal-only), before MultiHeadAttention takes the remaining attention.
 * WebGPU keeps attention decomposed: onnxruntime-node 1.30's WebGPU MultiHeadAttention returns
 * wrong outputs (max abs error 2e-2 to 5e-2 against its CPU kernel) once the key sequence reaches 32
 * on Mesa's lavapipe, where CI runs WebGPU, though it is right on an H100 with NVIDIA's driver
 * (docs/webgpu.md); an artifact does not know which adapter will run it.
 */
export const PIPELINES: Record<Target, Fusion[]> = {
  plain: [],
  cpu: [...BEFORE_ATTENTION, GroupQueryAttentionFusion, MultiHeadAttentionFusion, QueryScaleFusion, AttentionBiasFusion, UnitScaleFusion, QkvPackFusion, PointwiseConvFusion],
  cuda: [...BEFORE_ATTENTION, MultiHeadAttentionFusion],
  webgpu: [...BEFORE_ATTENTION],
};

/** Every fusion a rewrite can run: the pipelines' and `--quantize`'s. */
export const FUSIONS: readonly Fusion[] = [...new Set([...Object.values(PIPELINES).flat(), MatMulNBitsFusion])];

/** Fusions that ran on one graph, by name, with their counts. */
export type RewriteReport = Record<string, number>;

/**
 * Rewrite one graph in place for `opts`; returns how often each fusion fired. `through` stops the
 * pipeline after the fusion of that name (to look at, or test, one fusion with what precedes it,
 * unchanged by fusions added after it); where the target's pipeline lacks it, the whole pipeline runs.
 */
export function rewriteGraph(b: GraphBuilder, opts: RewriteOptions, through?: string): RewriteReport {
  if (!TARGETS.includes(opts.target)) throw new Error(`unknown target ${opts.target}`);
  if (through !== undefined && !FUSIONS.some((f) => f.name === through)) throw new Error(`unknown fusion ${through} (expected one of ${FUSIONS.map((f) => f.name).join(', ')})`);
  const report: RewriteReport = {};
  const passes = [...PIPELINES[opts.target], ...(opts.quantize ? [MatMulNBitsFusion] : [])];
  const g = new GraphView(b, passes);
  for (const f of passes) {
    if (!f.applies(b.floatType, opts)) continue;
    const n = f.run(g, opts);
    if (n) report[f.name] = n;
    g.finish();
    if (f.name === through) break;
  }
  return report;
}
