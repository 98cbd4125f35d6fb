// IEEE half and bfloat16 conversions (round-to-nearest-even), for reading float16/bfloat16
// checkpoints and for writing `--dtype fp16` weights. The array conversions run over billions of
// values in a large compile (OPT-2.7b: 3.7 B), so they avoid per-value float arithmetic: widening
// is a 64 K-entry table, narrowing integer work on the float32 bits.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function floatToHalf(x: number): number {
  f32[0] = x;
  return float32BitsToHalf(u32[0]);
}

/** The half nearest (ties to even) to the float32 with bits `b`; NaN stays NaN (quiet), overflow is Infinity. */
function float32BitsToHalf(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  // A carry out of the mantissa lands in the exponent, which is the correctly rounded result
  // (up to Infinity when e is 30).
  let h = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

let halfTable: Float32Array | undefined;

/** Every half's float32 value, indexed by its bits (256 KB, built on first use). */
function halfToFloatTable(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

export function float16ToFloat32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  const table = halfToFloatTable();
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]];
  return out;
}

export function float32ToFloat16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) out[i] = float32BitsToHalf(bits[i]);
  return out;
}

/** bfloat16 is the top half of a float32: widening is exact. */
export function bfloat16ToFloat32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}
