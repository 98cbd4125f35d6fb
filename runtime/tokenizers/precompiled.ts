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

  normalize(text: string): string {
    let out = '';
    for (const { segment } of this.segmenter.segment(text)) {
      if (this.enc.encode(segment).length < 6) {
        const norm = this.transform(segment);
        if (norm !== null) {
          out += norm;
          continue;
        }
      }
      for (const ch of segment) {
        const norm = this.transform(ch);
        out += norm ?? ch;
      }
    }
    return out;
  }
}
