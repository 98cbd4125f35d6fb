// "Did you mean …?" for misspelt names: the closest candidate within a small edit distance.

/** Edit distance with adjacent transpositions counted as one edit ("widht" -> "width" is 1). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.length][b.length];
}

export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(1, Math.min(3, Math.floor(word.length / 3))) ? best : undefined;
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
