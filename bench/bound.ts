// The decode bound of `npm run bench`: a decode step must read its bytes (decoder weights + KV cache)
// from memory at least once, so tokens/s cannot exceed bandwidth / step bytes (times the batch,
// folded into the per-token step bytes by the caller).

/** Tokens per second the memory allows at `bandwidthGbs` for `stepBytes` read per token. */
export function boundTokensPerSecond(bandwidthGbs: number, stepBytes: number): number {
  return (bandwidthGbs * 1e9) / stepBytes;
}

/** One timed call: its decode rate and the probe readings taken just before and just after it. */
export interface ProbedCall {
  decode_tokens_per_s: number;
  bandwidth_before_gb_s: number;
  bandwidth_after_gb_s: number;
}

/**
 * The decode against the bound from the readings beside it: each call over the bound of the higher
 * of its two readings (the stricter one), averaged over the calls; and the readings in order.
 */
export function besideFraction(calls: ProbedCall[], stepBytes: number): { fraction: number; readings: number[] } {
  if (calls.length === 0) throw new Error('no timed calls with probe readings');
  const fractions = calls.map((c) => c.decode_tokens_per_s / boundTokensPerSecond(Math.max(c.bandwidth_before_gb_s, c.bandwidth_after_gb_s), stepBytes));
  return { fraction: fractions.reduce((a, b) => a + b, 0) / fractions.length, readings: [calls[0].bandwidth_before_gb_s, ...calls.map((c) => c.bandwidth_after_gb_s)] };
}

/** The parts of an ONNX graph that stepWeightBytes reads (onnx-proto's IGraphProto fits). */
export interface WeightGraph {
  initializer?: Array<{ name?: string | null; dataType?: number | null; dims?: Array<number | { toNumber(): number }> | null; rawData?: Uint8Array | null; floatData?: number[] | null; int32Data?: number[] | null; int64Data?: unknown[] | null; externalData?: Array<{ key?: string | null; value?: string | null }> | null }> | null;
  node?: Array<{ opType?: string | null; input?: string[] | null; attribute?: Array<{ g?: WeightGraph | null; graphs?: WeightGraph[] | null }> | null }> | null;
}

/** onnx TensorProto.DataType: the float weights' element sizes. */
const FLOAT_BYTES: Record<number, number> = { 1: 4, 10: 2 };

/**
 * Weight bytes one decode step reads from a decoder graph's initializers, `rows` token rows a step.
 * Every weight is read whole, except a table that only Gathers read as their data (an embedding
 * lookup that no head shares): a step reads its `rows` rows. Counting such a table whole (an
 * untied LLaMA's 131 MB input embedding) made the bound ~12 % too low before 2026-11-29.
 * `floatElementBytes`: float32 and float16 weights count at this many bytes an element, the dtype
 * the reader holds them in (PyTorch: the dtype it loaded; onnxruntime's CPU provider runs a float16
 * graph's matrix products in float32, on float32 copies of their weights); by default as stored.
 */
export function stepWeightBytes(graph: WeightGraph, rows: number, floatElementBytes?: number): number {
  const uses = new Map<string, { gatherData: number; other: number }>();
  const visit = (g: WeightGraph): void => {
    for (const n of g.node ?? []) {
      (n.input ?? []).forEach((name, i) => {
        const u = uses.get(name) ?? uses.set(name, { gatherData: 0, other: 0 }).get(name)!;
        if (n.opType === 'Gather' && i === 0) u.gatherData++;
        else u.other++;
      });
      for (const a of n.attribute ?? []) {
        if (a.g) visit(a.g);
        for (const s of a.graphs ?? []) visit(s);
      }
    }
  };
  visit(graph);
  let total = 0;
  for (const t of graph.initializer ?? []) {
    const len = t.externalData?.find((e) => e.key === 'length')?.value;
    const stored = len ? Number(len) : (t.rawData?.length ?? 0) + 4 * ((t.floatData?.length ?? 0) + (t.int32Data?.length ?? 0)) + 8 * (t.int64Data?.length ?? 0);
    const stride = FLOAT_BYTES[t.dataType ?? 0];
    const bytes = floatElementBytes && stride ? (stored / stride) * floatElementBytes : stored;
    const u = uses.get(t.name ?? '');
    const dim0 = Number(t.dims?.[0] ?? 0);
    total += u && u.gatherData > 0 && u.other === 0 && dim0 > 0 ? Math.min(bytes, (bytes / dim0) * rows) : bytes;
  }
  return total;
}

/** Bytes an element of the dtypes the bench runs in. */
export const DTYPE_BYTES = { float32: 4, float16: 2 } as const;

/** The KV cache a decode step reads at the mean decode length. */
export interface KvShape {
  layers: number;
  kvHeads: number;
  headDim: number;
  batch: number;
  beams: number;
  /** Self-attention length at the mean of the decode (prompt, prefix, half the new tokens). */
  meanSelf: number;
  /** Cross-attention length (BLIP: the image tokens), 0 if none. */
  crossLength: number;
}

/**
 * KV-cache bytes one decode step reads, `elementBytes` an element: the self-attention cache of every
 * beam, the cross-attention K/V once per image (what a step must read; blip-graph's grouped decoder
 * does, transformers reads it once per beam).
 */
export function kvStepBytes(k: KvShape, elementBytes: number): number {
  return k.layers * 2 * k.batch * k.kvHeads * k.headDim * elementBytes * (k.meanSelf * k.beams + k.crossLength);
}

/** What one side reads per output token of a decode step, at the dtypes it reads: weights, KV cache, and both. */
export interface StepBytes {
  weights: number;
  kv: number;
  total: number;
}

/**
 * A side's bytes per output token (a step's bytes over the batch), at the element sizes it reads:
 * `weightBytes` for the graph's float weights (stepWeightBytes), `kvBytes` for its KV cache.
 */
export function sideStepBytes(graph: WeightGraph, kv: KvShape, weightBytes: number, kvBytes: number): StepBytes {
  const weights = stepWeightBytes(graph, kv.batch * kv.beams, weightBytes) / kv.batch;
  const kvStep = kvStepBytes(kv, kvBytes) / kv.batch;
  return { weights, kv: kvStep, total: weights + kvStep };
}

/**
 * A decode rate against the bound of each count of step bytes: `weights`, the bound of issue 7 (the
 * weight bytes a token reads over the bandwidth), and `weights_kv`, with the KV cache's bytes too
 * (the stricter fraction's complement: a step must read both).
 */
export interface BoundFractions {
  weights: number;
  weights_kv: number;
}

export function boundsOf(bandwidthGbs: number, step: StepBytes): BoundFractions {
  return { weights: boundTokensPerSecond(bandwidthGbs, step.weights), weights_kv: boundTokensPerSecond(bandwidthGbs, step.total) };
}

export function ofBound(tokensPerSecond: number, bandwidthGbs: number, step: StepBytes): BoundFractions {
  const b = boundsOf(bandwidthGbs, step);
  return { weights: tokensPerSecond / b.weights, weights_kv: tokensPerSecond / b.weights_kv };
}

/** besideFraction against both bounds. */
export function besideFractions(calls: ProbedCall[], step: StepBytes): { fractions: BoundFractions; readings: number[] } {
  const w = besideFraction(calls, step.weights);
  return { fractions: { weights: w.fraction, weights_kv: besideFraction(calls, step.total).fraction }, readings: w.readings };
}
