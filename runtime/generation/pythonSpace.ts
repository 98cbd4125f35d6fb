// Python's str.strip(), which transformers' examples apply to decoded text. Its white space
// (str.isspace) is not JavaScript's: trim() also strips U+FEFF and keeps U+001C–U+001F and U+0085,
// all of which byte-level tokenizers (OPT, LLaMA) can generate.
const SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

export function isPythonSpace(ch: string): boolean {
  return SPACE.test(ch);
}

/** Python's s.lstrip(). */
export function pyLstrip(s: string): string {
  let i = 0;
  while (i < s.length && SPACE.test(s[i])) i++;
  return s.slice(i);
}

/** Python's s.rstrip(). */
export function pyRstrip(s: string): string {
  let j = s.length;
  while (j > 0 && SPACE.test(s[j - 1])) j--;
  return s.slice(0, j);
}

/** Python's s.strip(). */
export function pyStrip(s: string): string {
  return pyRstrip(pyLstrip(s));
}
