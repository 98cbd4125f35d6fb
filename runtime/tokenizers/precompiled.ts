// SentencePiece's precompiled character map (the `Precompiled` normaliser of T5-style tokenizers),
// as the Rust `tokenizers` crate applies it (spm_precompiled): the blob is a little-endian u32 trie
// size, a darts-clone double-array trie over UTF-8 bytes, then NUL-separated replacement strings.
// Text is walked by extended grapheme clusters; a cluster shorter than 6 bytes is replaced whole by
// the entry of its first (shortest) matching prefix, otherwise each character is looked up alone.
// @huggingface/tokenizers approximates this with NFKC, which differs on some characters (zero-width
// spaces and joiners, for example).

export class PrecompiledCharsmap {
  private readonly trie: Uint32Array;
  private readonly normalized: Uint8Array;
  private readonly enc = new TextEncoder();
  private readonly dec = new TextDecoder();
  private readonly segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
  private readonly clusterCache = new Map<string, string>();

  constructor(blob: Uint8Array) {
    if (blob.length < 4) throw new Error('precompiled charsmap too short');
    const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = dv.getUint32(0, true);
    if (trieSize % 4 !== 0 || 4 + trieSize > blob.length) throw new Error('precompiled charsmap: bad trie size');
    this.trie = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.trie.length; i++) this.trie[i] = dv.getUint32(4 + i * 4, true);
    this.normalized = blob.slice(4 + trieSize);
  }

  static fromBase64(b64: string): PrecompiledCharsmap {
    return new PrecompiledCharsmap(Uint8Array.from(Buffer.from(b64, 'base64')));
  }

  /** First (shortest) prefix of `key` in the trie: the offset of its replacement, or -1. */
  private firstPrefix(key: Uint8Array): number {
    const a = this.trie;
    const offset = (u: number): number => (u >>> 10) << ((u & (1 << 9)) >>> 6);
    const label = (u: number): number => u & ((1 << 31) | 0xff);
    const hasLeaf = (u: number): boolean => ((u >>> 8) & 1) === 1;
    const value = (u: number): number => u & 0x7fffffff;
    let pos = 0;
    let unit = a[pos];
    pos ^= offset(unit);
    for (const c of key) {
      if (c === 0) break;
      pos ^= c;
      if (pos >= a.length) return -1;
      unit = a[pos];
      if (label(unit) >>> 0 !== c) return -1;
      pos ^= offset(unit);
      if (hasLeaf(unit)) return value(a[pos]);
    }
    return -1;
  }

  private transform(chunk: string): string | null {
    const idx = this.firstPrefix(this.enc.encode(chunk));
    if (idx < 0) return null;
    let end = idx;
    while (end < this.normalized.length && this.normalized[end] !== 0) end++;
    return this.dec.decode(this.normalized.subarray(idx, end));
  }

  /** One grapheme cluster, normalised: whole when shorter than 6 UTF-8 bytes and in the map, else per character. */
  private normalizeCluster(segment: string): string {
    const cached = this.clusterCache.get(segment);
    if (cached !== undefined) return cached;
    let out: string | null = null;
    if (this.enc.encode(segment).length < 6) out = this.transform(segment);
    if (out === null) {
      out = '';
      for (const ch of segment) out += this.transform(ch) ?? ch;
    }
    // Short clusters repeat (letters, CJK characters); long ones are rare and would only fill the cache.
    if (segment.length <= 4 && this.clusterCache.size < 1 << 16) this.clusterCache.set(segment, out);
    return out;
  }

  normalize(text: string): string {
    let out = '';
    forEachGraphemeCluster(text, this.segmenter, (segment) => {
      out += this.normalizeCluster(segment);
    });
    return out;
  }
}

/**
 * ASCII other than CR: two such characters side by side are always split by the grapheme cluster
 * rules (every rule that joins needs a non-ASCII character or CR LF), so only runs touching other
 * characters need Intl.Segmenter.
 */
const isSimple = (unit: number): boolean => unit < 0x80 && unit !== 0x0d;
const isHighSurrogate = (unit: number): boolean => unit >= 0xd800 && unit <= 0xdbff;
const isLowSurrogate = (unit: number): boolean => unit >= 0xdc00 && unit <= 0xdfff;

/**
 * Visits `text`'s extended grapheme clusters in order, as Intl.Segmenter splits the whole text.
 * V8's segmenter costs more per character the longer its input (80,000 characters: seconds, CJK
 * tens of seconds), so ASCII between ASCII is split here, and the rest — the "islands" of other
 * characters with the ASCII characters next to them, which they may join (a combining mark after a
 * letter, a letter after an Arabic number sign) — goes to the segmenter `window` code units at a
 * time, resuming at the window's last cluster boundary (each boundary depends only on what comes
 * before it and the whole character after it, so one found inside a window is final).
 */
export function forEachGraphemeCluster(
  text: string,
  segmenter: Intl.Segmenter,
  visit: (segment: string) => void,
  window = 1024,
): void {
  const n = text.length;
  let i = 0;
  while (i < n) {
    if (isSimple(text.charCodeAt(i)) && (i + 1 === n || isSimple(text.charCodeAt(i + 1)))) {
      visit(text[i]);
      i++;
      continue;
    }
    // An island ends with an ASCII character followed by ASCII (or the end): a sure boundary.
    let end = i + 1;
    while (end < n) {
      const simple = isSimple(text.charCodeAt(end));
      end++;
      if (simple && (end === n || isSimple(text.charCodeAt(end)))) break;
    }
    let start = i;
    let size = window;
    while (start < end) {
      let stop = Math.min(end, start + size);
      // Never cut a surrogate pair: the boundary before the last cluster depends on its whole first character.
      if (stop < end && isHighSurrogate(text.charCodeAt(stop - 1)) && isLowSurrogate(text.charCodeAt(stop))) stop++;
      let count = 0;
      let lastIndex = 0;
      let last = '';
      for (const { segment, index } of segmenter.segment(text.slice(start, stop))) {
        if (count > 0) visit(last);
        last = segment;
        lastIndex = index;
        count++;
      }
      if (stop === end) {
        visit(last);
        break;
      }
      // The window's last cluster may go on past it: find it again from its start. A cluster as
      // long as the window (a run of combining marks) needs a longer one.
      if (count === 1) {
        size *= 2;
        continue;
      }
      start += lastIndex;
      size = window;
    }
    i = end;
  }
}
