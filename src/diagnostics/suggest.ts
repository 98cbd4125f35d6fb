// "Did you mean …?" for misspelt names: the closest candidate within a small edit distance.

/**
 * Edit distance with adjacent transpositions counted as one edit ("widht" -> "width" is 1); past
 * `max`, some number above it (a row all above `max` cannot lead back under it).
 */
function distance(a: string, b: string, max = Infinity): number {
  // three rows (the transposition looks two back), reused
  const n = b.length;
  let back2 = new Array<number>(n + 1).fill(0);
  let back1 = Array.from({ length: n + 1 }, (_, j) => j);
  let row = new Array<number>(n + 1).fill(0);
  let lowBefore = 0;
  for (let i = 1; i <= a.length; i++) {
    row[0] = i;
    let low = i;
    for (let j = 1; j <= n; j++) {
      let d = Math.min(back1[j]! + 1, row[j - 1]! + 1, back1[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, back2[j - 2]! + 1);
      row[j] = d;
      if (d < low) low = d;
    }
    // (a row's values never shrink in the next row but through a transposition, which reads the
    // row before too: stop once two rows in a row are all above max)
    if (low > max && lowBefore > max) return max + 1;
    lowBefore = low;
    [back2, back1, row] = [back1, row, back2];
  }
  return back1[n]!;
}

/** Characters of `word` by bucket (char code mod 64), and a scratch count (bag distance, below). */
const wordCounts = new Int32Array(64);
const used = new Int32Array(64);

/**
 * A lower bound of distance(w, c): characters of one that the other lacks (as buckets), each
 * needing an edit (a transposition changes none). wordCounts must hold w's.
 */
function bagDistance(w: string, c: string): number {
  let extra = 0;
  for (let i = 0; i < c.length; i++) {
    const b = c.charCodeAt(i) & 63;
    if (used[b]! < wordCounts[b]!) used[b]!++;
    else extra++;
  }
  for (let i = 0; i < c.length; i++) used[c.charCodeAt(i) & 63] = 0;
  return Math.max(extra, w.length - (c.length - extra));
}

export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const limit = Math.max(1, Math.min(3, Math.floor(word.length / 3)));
  const w = word.toLowerCase();
  const all = Array.isArray(candidates) ? (candidates as string[]) : [...candidates];
  wordCounts.fill(0);
  for (let i = 0; i < w.length; i++) wordCounts[w.charCodeAt(i) & 63]!++;
  let best: string | undefined;
  let bestD = Infinity;
  for (let k = 0; k < all.length; k++) {
    const lc = all[k]!.toLowerCase();
    // (the distance is at least the difference in length and the bag distance: a candidate further
    // than the limit, or no closer than the best so far, is not measured; the first closest one is
    // still the answer)
    const within = Math.min(limit, bestD - 1);
    if (Math.abs(lc.length - w.length) > within || bagDistance(w, lc) > within) continue;
    const d = distance(w, lc, within);
    if (d < bestD) [best, bestD] = [all[k], d];
    if (bestD === 0) break;
  }
  return bestD <= limit ? best : undefined;
}

/** "; did you mean 'x'?" or "". */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const c = closest(word, candidates);
  return c ? `; did you mean '${c}'?` : '';
}

/**
 * "unknown option 'k'; did you mean 'x'? (the options: a, b, c)" for the first key of `given` that
 * `known` lacks, or undefined: options objects checked at run time, for JavaScript callers.
 */
export function unknownOption(given: object, known: readonly string[], what = 'option'): string | undefined {
  const k = Object.keys(given).find((key) => !known.includes(key));
  return k === undefined ? undefined : `unknown ${what} '${k}'${didYouMean(k, known)} (the options: ${known.join(', ')})`;
}

/** "a, b, c" with at most `max` names, then "… (N more)". */
export function someOf(names: string[], max = 12): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')}, … (${names.length - max} more)`;
}

/** "a, b or c" */
export function listWords(words: string[], conj = 'or'): string {
  if (words.length <= 1) return words.join('');
  return `${words.slice(0, -1).join(', ')} ${conj} ${words[words.length - 1]}`;
}
