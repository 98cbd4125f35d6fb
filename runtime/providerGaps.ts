// The fused operators an onnxruntime provider cannot run, and the builds (target, float type) that
// hold them: the one table runtime/providers.ts buildMismatch reads to refuse such a build on that
// provider at load. It is data, with type imports only, so that the runtime can read it without
// loading the fusions (they pull in the graph builder). test/unit/rewrite/providerGaps.test.ts
// derives each entry's `builds` from the fusions' `emits` and `applies` over PIPELINES: a fusion
// that starts or stops writing one of these operators on a target fails there until this table
// says so. An operator a provider lacks is found by running a build there (docs/webgpu.md); add it
// here then.
import type { Target } from '../src/rewrite/graph.js';

export interface ProviderGap {
  /** An onnxruntime execution provider (runtime/providers.ts Provider). */
  provider: 'cpu' | 'cuda' | 'tensorrt' | 'webgpu';
  /** The operator's opKey, as a fusion's `emits` names it. */
  op: string;
  /** What of it the provider cannot run, for the one-line refusal. */
  cannot: string;
  /** The builds that hold it: target -> float types (derived from the fusions; checked by the test). */
  builds: Partial<Record<Exclude<Target, 'plain'>, ReadonlyArray<'float32' | 'float16'>>>;
}

export const PROVIDER_GAPS: readonly ProviderGap[] = [
  // accepted at load, then every run fails: "input `key_padding_mask` not implemented for webgpu"
  // (BLIP caption / VQA / ITM, BLIP-2 T5 / ITM)
  { provider: 'webgpu', op: 'com.microsoft.MultiHeadAttention', cannot: "onnxruntime's MultiHeadAttention with a key padding mask", builds: { cpu: ['float32'], cuda: ['float32'] } },
  // refused at load: "causal=0 is not implemented" (InstructBLIP Vicuna)
  { provider: 'webgpu', op: 'com.microsoft.GroupQueryAttention', cannot: 'GroupQueryAttention with causal 0', builds: { cpu: ['float32'] } },
];
