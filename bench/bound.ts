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
