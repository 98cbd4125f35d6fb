// Whether the two sides of the bench generated the same tokens. Both are asked for exactly `tokens`
// new tokens per row (min = max new tokens), so anything shorter is a disagreement: comparing only
// as many tokens as blip-graph's row held once counted a short or empty row as the same.

/**
 * blip-graph's rows (new tokens only) against transformers' (prompt or prefix, then the new tokens):
 * as many rows, each of blip-graph's exactly `tokens` long and equal to the last `tokens` of PyTorch's.
 */
export function sameNewTokens(ours: number[][], torch: number[][], tokens: number): boolean {
  return ours.length === torch.length && ours.every((s, i) => s.length === tokens && torch[i].length >= tokens && s.every((id, j) => id === torch[i][torch[i].length - tokens + j]));
}
