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
  initializer?: Array<{ name?: string | null; dims?: Array<number | { toNumber(): number }> | null; rawData?: Uint8Array | null; floatData?: number[] | null; int32Data?: number[] | null; int64Data?: unknown[] | null; externalData?: Array<{ key?: string | null; value?: string | null }> | null }> | null;
  node?: Array<{ opType?: string | null; input?: string[] | null; attribute?: Array<{ g?: WeightGraph | null; graphs?: WeightGraph[] | null }> | null }> | null;
}

/**
 * Weight bytes one decode step reads from a decoder graph's initializers, `rows` token rows a step.
 * Every weight is read whole, except a table that only Gathers read as their data (an embedding
 * lookup that no head shares): a step reads its `rows` rows. Counting such a table whole (an
 * untied LLaMA's 131 MB input embedding) made the bound ~12 % too low before 2026-11-29.
 */
export function stepWeightBytes(graph: WeightGraph, rows: number): number {
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
    const bytes = len ? Number(len) : (t.rawData?.length ?? 0) + 4 * ((t.floatData?.length ?? 0) + (t.int32Data?.length ?? 0)) + 8 * (t.int64Data?.length ?? 0);
    const u = uses.get(t.name ?? '');
    const dim0 = Number(t.dims?.[0] ?? 0);
    total += u && u.gatherData > 0 && u.other === 0 && dim0 > 0 ? Math.min(bytes, (bytes / dim0) * rows) : bytes;
  }
  return total;
}
