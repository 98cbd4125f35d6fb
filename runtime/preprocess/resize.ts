// Pillow's Image.resize on 8-bit images, reproduced operation for operation (Pillow
// src/libImaging/Resample.c and the NEAREST path of Geometry.c's ImagingScaleAffine):
//  - separable convolution, horizontal pass first, then vertical, over only the source rows the
//    vertical pass needs (vertical first when the height shrinks by more than twice as many pixels
//    as the width, as Pillow 13 does); each pass rounds to uint8 with clipping;
//  - filter support scaled by the downscale factor; per-output-pixel window [xmin, xmin+xmax)
//    found by rounding center +- support; weights normalised to sum 1 in double precision, then
//    converted to 22-bit fixed point (PRECISION_BITS = 32 - 8 - 2) rounding half away from zero;
//  - accumulation starts at 1 << 21 (rounding), result >> 22 clipped to 0..255;
//  - bicubic a = -0.5, lanczos a = 3, hamming, box, bilinear (triangle);
//  - NEAREST samples at floor((x + 0.5) * scale), the position accumulated by repeated addition;
//  - same size: a copy.
// Results equal PIL's bytes on every case in test/fixtures/preprocess (up/down/mixed scaling, odd
// sizes, 1x1, large images).
import { resampleSimd } from './resampleSimd.js';

export type Resample = 'nearest' | 'lanczos' | 'bilinear' | 'bicubic' | 'box' | 'hamming';

/** PIL's Resampling enum values. */
export const PIL_RESAMPLE: Readonly<Record<number, Resample>> = { 0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'box', 5: 'hamming' };

export function resampleFromPil(v: number | string): Resample | undefined {
  if (typeof v === 'number') return PIL_RESAMPLE[v];
  const s = v.toLowerCase();
  const alias: Record<string, Resample> = { antialias: 'lanczos', linear: 'bilinear', cubic: 'bicubic' };
  if ((Object.values(PIL_RESAMPLE) as string[]).includes(s)) return s as Resample;
  return alias[s];
}

/** An 8-bit image with interleaved channels (HWC). */
export interface Image8 {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

interface Filter {
  fn: (x: number) => number;
  support: number;
}

const boxFilter = (x: number): number => (x > -0.5 && x <= 0.5 ? 1.0 : 0.0);
const bilinearFilter = (x: number): number => {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
};
const F054 = Math.fround(0.54);
const F046 = Math.fround(0.46);
const hammingFilter = (x: number): number => {
  if (x < 0.0) x = -x;
  if (x === 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * Math.PI;
  return (Math.sin(x) / x) * (F054 + F046 * Math.cos(x));
};
const bicubicFilter = (x: number): number => {
  const a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
};
const sincFilter = (x: number): number => {
  if (x === 0.0) return 1.0;
  x = x * Math.PI;
  return Math.sin(x) / x;
};
const lanczosFilter = (x: number): number => (-3.0 <= x && x < 3.0 ? sincFilter(x) * sincFilter(x / 3) : 0.0);

const FILTERS: Record<Exclude<Resample, 'nearest'>, Filter> = {
  box: { fn: boxFilter, support: 0.5 },
  bilinear: { fn: bilinearFilter, support: 1.0 },
  hamming: { fn: hammingFilter, support: 1.0 },
  bicubic: { fn: bicubicFilter, support: 2.0 },
  lanczos: { fn: lanczosFilter, support: 3.0 },
};

const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

/** Fixed-point weights of one pass (also what resampleSimd.ts places in WebAssembly memory). */
export interface Coeffs {
  ksize: number;
  /** Per output pixel: first source index, number of taps. */
  bounds: Int32Array;
  /** Fixed-point weights, ksize per output pixel. */
  kk: Int32Array;
}

/** precompute_coeffs + normalize_coeffs_8bpc. `in0`/`in1` are the box edges (C floats). */
function precomputeCoeffs(inSize: number, in0: number, in1: number, outSize: number, filter: Filter): Coeffs {
  in0 = Math.fround(in0);
  in1 = Math.fround(in1);
  const scale = Math.fround(in1 - in0) / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    let ww = 0.0;
    const ss = 1.0 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    for (let x = 0; x < xmax; x++) {
      const w = filter.fn((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      let v = x < xmax ? k[x] : 0;
      if (x < xmax && ww !== 0.0) v /= ww;
      kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// The passes below sum integers (8-bit samples times 22-bit weights, below 2^31 in magnitude), so
// doubles hold them exactly and the order of the additions does not change a result: they are laid
// out for speed (local accumulators, rows read in order), not in Pillow's loop order.

/** Horizontal pass over rows [offset, offset + outH) of `src`. */
function resampleHorizontal(src: Image8, outW: number, offset: number, outH: number, c: Coeffs): Image8 {
  const C = src.channels;
  const data = src.data;
  const out = new Uint8Array(outW * outH * C);
  const { ksize, bounds, kk } = c;
  const inRow = src.width * C;
  for (let yy = 0; yy < outH; yy++) {
    const rowBase = (yy + offset) * inRow;
    let o = yy * outW * C;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = bounds[xx * 2];
      const xmax = bounds[xx * 2 + 1];
      const kb = xx * ksize;
      let p = rowBase + xmin * C;
      if (C === 3) {
        let s0 = HALF;
        let s1 = HALF;
        let s2 = HALF;
        for (let x = 0; x < xmax; x++, p += 3) {
          const w = kk[kb + x];
          s0 += data[p] * w;
          s1 += data[p + 1] * w;
          s2 += data[p + 2] * w;
        }
        out[o++] = clip8(s0);
        out[o++] = clip8(s1);
        out[o++] = clip8(s2);
      } else {
        for (let ch = 0; ch < C; ch++) {
          let ss = HALF;
          for (let x = 0, q = p + ch; x < xmax; x++, q += C) ss += data[q] * kk[kb + x];
          out[o++] = clip8(ss);
        }
      }
    }
  }
  return { width: outW, height: outH, channels: C, data: out };
}

function resampleVertical(src: Image8, outH: number, c: Coeffs, shift: number): Image8 {
  const C = src.channels;
  const data = src.data;
  const row = src.width * C;
  const out = new Uint8Array(row * outH);
  const { ksize, bounds, kk } = c;
  // one output row at a time, its taps' source rows read in order into a row of sums
  const acc = new Float64Array(row);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2] - shift;
    const ymax = bounds[yy * 2 + 1];
    const kb = yy * ksize;
    acc.fill(HALF);
    for (let y = 0; y < ymax; y++) {
      const w = kk[kb + y];
      const base = (y + ymin) * row;
      for (let i = 0; i < row; i++) acc[i] += data[base + i] * w;
    }
    const o = yy * row;
    for (let i = 0; i < row; i++) out[o + i] = clip8(acc[i]);
  }
  return { width: src.width, height: outH, channels: C, data: out };
}

/** ImagingScaleAffine with NEAREST (what Image.resize does for resample=0). */
function resizeNearest(src: Image8, outW: number, outH: number): Image8 {
  const C = src.channels;
  const out = new Uint8Array(outW * outH * C);
  const a0 = src.width / outW;
  const a4 = src.height / outH;
  const coord = (v: number): number => (v < 0.0 ? -1 : Math.trunc(v));
  const xintab = new Int32Array(outW);
  let xmin = outW;
  let xmax = 0;
  let xo = 0 + a0 * 0.5;
  for (let x = 0; x < outW; x++) {
    const xin = coord(xo);
    if (xin >= 0 && xin < src.width) {
      xmax = x + 1;
      if (x < xmin) xmin = x;
      xintab[x] = xin;
    }
    xo += a0;
  }
  let yo = 0 + a4 * 0.5;
  for (let y = 0; y < outH; y++) {
    const yi = coord(yo);
    if (yi >= 0 && yi < src.height) {
      const inBase = yi * src.width * C;
      const outBase = y * outW * C;
      for (let x = xmin; x < xmax; x++) {
        const s = inBase + xintab[x] * C;
        const d = outBase + x * C;
        for (let ch = 0; ch < C; ch++) out[d + ch] = src.data[s + ch];
      }
    }
    yo += a4;
  }
  return { width: outW, height: outH, channels: C, data: out };
}

let useSimd = true;

/**
 * Run the JavaScript passes instead of the WebAssembly SIMD ones (resampleSimd.ts) — the same
 * bytes either way; for tests and comparisons. Returns the previous setting.
 */
export function setResampleSimd(on: boolean): boolean {
  const was = useSimd;
  useSimd = on;
  return was;
}

/**
 * `PIL.Image.fromarray(img).resize((width, height), resample)` for an 8-bit image with 1-4
 * interleaved channels treated independently (PIL's L / RGB / RGBX behaviour; for RGBA, PIL
 * premultiplies alpha first, which this function does not do).
 */
export function resizePil(src: Image8, width: number, height: number, resample: Resample): Image8 {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`resize to ${width}x${height}: sizes must be positive integers`);
  }
  if (src.width < 1 || src.height < 1) throw new RangeError('cannot resize an empty image');
  if (src.width === width && src.height === height) {
    return { width, height, channels: src.channels, data: src.data.slice() };
  }
  if (resample === 'nearest') return resizeNearest(src, width, height);
  const filter = FILTERS[resample];
  if (!filter) throw new RangeError(`unknown resampling filter ${String(resample)}`);
  const needH = width !== src.width;
  const needV = height !== src.height;
  // Pillow 13 (ImagingResample, read from the shipped binary and confirmed on 1224 random cases)
  // runs the vertical pass first, on all columns, when both passes are needed and the height
  // shrinks by more than twice as many pixels as the width does.
  const shrinkV = src.height - height;
  const verticalFirst = needH && needV && shrinkV > 0 && shrinkV > 2 * (src.width - width);
  const horiz = needH ? precomputeCoeffs(src.width, 0, src.width, width, filter) : undefined;
  const vert = precomputeCoeffs(src.height, 0, src.height, height, filter);
  return resampleSeparable(src, width, height, horiz, needV ? vert : undefined, verticalFirst);
}

/**
 * Run the two passes with weights already in the 22-bit fixed point above (sums from 1 << 21,
 * shifted right by 22, clipped to 0..255): `horiz` / `vert` absent where that size is unchanged,
 * vertical first when asked (both passes then present). Also what resizeTorchvision.ts runs.
 */
export function resampleSeparable(src: Image8, width: number, height: number, horiz: Coeffs | undefined, vert: Coeffs | undefined, verticalFirst: boolean): Image8 {
  if (!horiz && !vert) return { width, height, channels: src.channels, data: src.data.slice() };
  // horizontal first: the rows the vertical pass reads (all of them without one)
  const yFirst = vert ? vert.bounds[0] : 0;
  const yLast = vert ? vert.bounds[height * 2 - 2] + vert.bounds[height * 2 - 1] : src.height;
  if (useSimd) {
    const data = resampleSimd({ src, outW: width, outH: height, verticalFirst, horiz, vert, rows: [yFirst, yLast] });
    if (data) return { width, height, channels: src.channels, data };
  }
  if (verticalFirst) {
    const v = resampleVertical(src, height, vert!, 0);
    return resampleHorizontal(v, width, 0, height, horiz!);
  }
  let img = src;
  let shift = 0;
  if (horiz) {
    img = resampleHorizontal(src, width, yFirst, yLast - yFirst, horiz);
    shift = yFirst;
  }
  if (vert) img = resampleVertical(img, height, vert, shift);
  return img;
}
