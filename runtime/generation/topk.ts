// The k largest entries of a score row, as torch.topk orders them.
/**
 * Top-k indices of a row, descending, ties by lower index (what torch.topk returns here); NaN
 * ranks as -Infinity. One pass keeping the k best in order, instead of sorting the row:
 * beam search takes the top 2 x beams of beams x vocabulary scores every step (3 x 50272 for
 * OPT: 65-75 ms a step sorted on the 2-core VM, 0.4 ms so), the top-k sampling filter its k-th value.
 */
export function topk(vals: ArrayLike<number>, k: number): number[] {
  const n = vals.length;
  k = Math.max(0, Math.min(k, n));
  const top: number[] = []; // indices, best first
  const v = (i: number): number => {
    const x = vals[i];
    return x !== x ? -Infinity : x; // NaN
  };
  for (let i = 0; i < n; i++) {
    const x = v(i);
    // an equal value later in the row never beats one already kept (ties by lower index)
    if (top.length === k && (k === 0 || !(x > v(top[k - 1])))) continue;
    let p = top.length;
    while (p > 0 && x > v(top[p - 1])) p--;
    top.splice(p, 0, i);
    if (top.length > k) top.pop();
  }
  return top;
}
