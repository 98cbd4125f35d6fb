// TIFF with associated (premultiplied) alpha, as PIL reads it. Pillow 13 opens an 8-bit RGB TIFF
// whose extra sample is associated alpha as RGBA through the raw mode "RGBa" (Unpack.c):
// alpha 0 -> 0, alpha 255 -> the value, else min(255, floor(c * 255 / a)). libvips unpremultiplies
// in float32 instead, trunc(float(float(255 / a) * c)), which falls one short where c * 255 / a is a
// whole number (c = a = 7: 254, PIL 255). That map is one-to-one below 255, so each (value, alpha)
// libvips gives is mapped back to PIL's value through a table. A 16-bit one libvips divides by
// 255 / alpha (its 8-bit maximum), losing what PIL keeps (the high bytes): refused.
import { firstIfd } from './orientation.js';

/** How PIL reads a TIFF's associated alpha: 8 (the table below applies), 16 (refused), or none. */
export function tiffAssociatedAlpha(b: Uint8Array): 8 | 16 | undefined {
  const dir = firstIfd(b);
  if (!dir) return undefined;
  const one = (tag: number, dflt: number): number | undefined => {
    const e = dir.get(tag);
    return e ? (e.count === 1 ? e.int() : undefined) : dflt;
  };
  const extra = dir.get(338)?.ints();
  if (!extra || extra.length !== 1 || extra[0] !== 1) return undefined;
  // (planar configuration 2 reads each band alone, without unpremultiplying: not handled here)
  if (one(262, 0) !== 2 || one(284, 1) !== 1 || one(266, 1) !== 1) return undefined;
  let sf = dir.get(339)?.ints() ?? [1];
  if (sf.length > 1 && sf.every((v) => v === sf[0])) sf = [sf[0]];
  if (sf.length !== 1 || sf[0] !== 1) return undefined;
  const bps = dir.get(258)?.ints() ?? [1];
  const all = (n: number): boolean => (bps.length === 4 || bps.length === 1) && bps.every((v) => v === n);
  if (one(277, 1) !== 4) return undefined;
  return all(8) ? 8 : all(16) ? 16 : undefined;
}

let table: Uint8Array | undefined;

/** PIL's value for each (alpha, libvips' value): table[a * 256 + v]. */
function pilTable(): Uint8Array {
  if (table) return table;
  const t = new Uint8Array(256 * 256);
  for (let a = 0; a < 256; a++) {
    for (let v = 0; v < 256; v++) t[a * 256 + v] = a === 0 ? 0 : v; // (unreached values: kept)
    if (a === 0 || a === 255) continue;
    const factor = Math.fround(255 / a);
    // c <= a: distinct values (the factor is over 1); c > a: 255 in both
    for (let c = 0; c <= a; c++) t[a * 256 + Math.min(255, Math.trunc(Math.fround(factor * c)))] = Math.min(255, Math.floor((c * 255) / a));
  }
  return (table = t);
}

/** Turn libvips' unpremultiplied 8-bit RGBA (in place) into what PIL's "RGBa" unpacking gives. */
export function asPilUnpremultiplied(data: Uint8Array, channels: number): void {
  if (channels !== 4) return;
  const t = pilTable();
  for (let i = 0; i < data.length; i += 4) {
    const a = data[i + 3] * 256;
    data[i] = t[a + data[i]];
    data[i + 1] = t[a + data[i + 1]];
    data[i + 2] = t[a + data[i + 2]];
  }
}
