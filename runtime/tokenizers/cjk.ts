// The "Chinese character" blocks BERT spaces apart and transformers' TextStreamer releases text
// after. The two lists differ in one place: Rust's BERT normalizer (tokenizers' normalizers/bert.rs)
// starts CJK Extension E's range at U+2B920, transformers' TextStreamer (Python) at U+2B820.
export function isCjk(cp: number, extensionEFrom: 0x2b820 | 0x2b920): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= extensionEFrom && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}
