// The k largest entries of a score row, as torch.topk orders them.
/**
 * Top-k indices of a row, descending, ties by lower index (what torch.topk returns here); NaN
 * ranks as -Infinity. One pass keeping the k best in order, instead of sorting the row:
 * beam search takes the top 2 x beams of beams x vocabulary scores every step (3 x 50272 for
 * OPT: 65-75 ms a step sorted on the 2-core VM, 0.4 ms so), the top-k sampling filter its k-th value.
 * Once k are kept, an entry is one comparison against the k-th (most of a row goes no further).
 */
export function topk(vals: ArrayLike<number>, k: number): number[] {
  const n = vals.length;
  k = Math.max(0, Math.min(k, n));
  if (k === 0) return [];
  const top: number[] = []; // indices, best first
  const topVals: number[] = []; // their values (NaN as -Infinity)
  let worst = -Infinity; // topVals[k - 1] once k are kept
  for (let i = 0; i < n; i++) {
    let x = vals[i];
    if (x !== x) x = -Infinity; // NaN
    // an equal value later in the row never beats one already kept (ties by lower index)
    if (top.length === k && !(x > worst)) continue;
    let p = top.length;
    while (p > 0 && x > topVals[p - 1]) p--;
    top.splice(p, 0, i);
    topVals.splice(p, 0, x);
    if (top.length > k) {
      top.pop();
      topVals.pop();
    }
    if (top.length === k) worst = topVals[k - 1];
  }
  return top;
}
