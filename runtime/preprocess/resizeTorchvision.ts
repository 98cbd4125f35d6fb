// torchvision's resize of an 8-bit image tensor on the CPU, as transformers 5's default image
// processors run it (BlipImageProcessor: the torchvision backend, `tvF.resize(uint8 CHW tensor,
// (H, W), interpolation, antialias=True)`), reproduced operation for operation:
//  - bilinear, bicubic and lanczos stay in uint8: ATen's _upsample_{bilinear,bicubic}2d_aa /
//    _upsample_lanczos2d_aa uint8 kernels (UpSampleKernel.cpp, Pillow-SIMD's arithmetic; the AVX2,
//    AVX-512 and generic builds give the same bytes), always horizontal pass first, then vertical,
//    each rounded to uint8 with clamping;
//  - the weights are Pillow's (filter support scaled by the downscale factor, window
//    [trunc(center - support + 0.5), trunc(center + support + 0.5)), normalised to sum 1 in double)
//    but in fixed point with a precision chosen per pass: the largest p <= 22 with
//    round(max weight * 2^(p+1)) < 2^15 (int16 weights), where Pillow always takes 22 bits; the
//    cubic is a = -0.5 written as ATen writes it;
//  - nearest (PIL's 0, mapped to torchvision's NEAREST_EXACT): ATen's float32 nearest-exact index
//    (resizeNearestExact below).
// Against Pillow these differ by one level in a few pixels per image (test/fixtures/torchvision-backend).
// Verified against torch 2.14 / torchvision 0.27 on the committed images and on random sizes
// (test/oracle/torchvision_backend.py). torchvision runs bilinear in float on x86 CPUs without
// AVX2 (u8 -> f32 -> interpolate -> round); that variant is not reproduced.
import { resampleSeparable, type Coeffs, type Image8, type Resample } from './resize.js';

type Filter = { fn: (x: number) => number; support: number };

// ATen's cubic_convolution1 / 2 with A = -0.5 (antialiased bicubic), in its order of operations
const A = -0.5;
const cubic = (x: number): number => {
  x = Math.abs(x);
  if (x < 1.0) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2.0) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0.0;
};
const linear = (x: number): number => {
  x = Math.abs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
};
const sinc = (x: number): number => {
  if (x === 0.0) return 1.0;
  x *= Math.PI;
  return Math.sin(x) / x;
};
const lanczos = (x: number): number => {
  x = Math.abs(x);
  return x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0;
};

/** interp_size / 2 is the support: ATen's HelperInterpLinear (2), Cubic (4), Lanczos (6). */
const FILTERS: Partial<Record<Resample, Filter>> = {
  bilinear: { fn: linear, support: 1.0 },
  bicubic: { fn: cubic, support: 2.0 },
  lanczos: { fn: lanczos, support: 3.0 },
};

/**
 * _compute_index_ranges_int16_weights for one pass, returned with its weights scaled up to the
 * 22-bit fixed point of resize.ts's passes: (sum + 2^(p-1)) >> p equals
 * (sum * 2^(22-p) + 2^21) >> 22 exactly, so the same kernels (WebAssembly SIMD) run both backends.
 */
export function torchvisionCoeffs(inSize: number, outSize: number, filter: Filter): Coeffs & { precision: number } {
  const scale = inSize / outSize;
  const support = scale >= 1.0 ? filter.support * scale : filter.support;
  const ksize = Math.ceil(support) * 2 + 1;
  const invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Float64Array(outSize * ksize);
  let wtMax = 0.0;
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    // (ATen clips the count to ksize: "rare cases when due to precision xsize can be larger")
    const xsize = Math.min(Math.max(Math.min(Math.trunc(center + support + 0.5), inSize) - xmin, 0), ksize);
    let total = 0.0;
    const base = i * ksize;
    for (let j = 0; j < xsize; j++) {
      const w = filter.fn((j + xmin - center + 0.5) * invscale);
      weights[base + j] = w;
      total += w;
    }
    if (total !== 0.0) {
      for (let j = 0; j < xsize; j++) {
        weights[base + j] /= total;
        if (weights[base + j] > wtMax) wtMax = weights[base + j];
      }
    }
    bounds[i * 2] = xmin;
    bounds[i * 2 + 1] = xsize;
  }
  let precision = 0;
  for (; precision < 22; precision++) {
    if (Math.trunc(0.5 + wtMax * 2 ** (precision + 1)) >= 1 << 15) break;
  }
  const up = 2 ** (22 - precision);
  const kk = new Int32Array(outSize * ksize);
  for (let k = 0; k < kk.length; k++) {
    const v = weights[k] * 2 ** precision;
    // (int) (v +- 0.5), stored as int16 (it fits: |v| < 2^15 by the choice of precision)
    kk[k] = ((((v < 0 ? Math.trunc(-0.5 + v) : Math.trunc(0.5 + v)) << 16) >> 16) * up) | 0;
  }
  return { ksize, bounds, kk, precision };
}

/**
 * ATen's nearest-exact on uint8, float32 arithmetic with scale = float32(in / out). Two kernels:
 * outputs with width + height <= 128 take floor(float32((i + 0.5) * scale)) (nearest_exact_idx);
 * larger ones float32(scale * (i + 0.5) - 0.5), clamped at 0, then floor(float32(that + 0.5)),
 * the first step one rounding as the AVX2 / AVX-512 builds contract it to a fused multiply-add
 * (ATen's build for CPUs without AVX2 rounds twice: it differs at rare ties, e.g. 4 -> 850, i 212).
 */
function resizeNearestExact(src: Image8, outW: number, outH: number): Image8 {
  const C = src.channels;
  const f = Math.fround;
  const small = outW + outH <= 128;
  const index = (inSize: number, outSize: number): Int32Array => {
    const scale = f(inSize / outSize);
    return Int32Array.from({ length: outSize }, (_, i) => {
      // ((i + 0.5) * scale, minus 0.5, is exact in a double: f() rounds once, as the FMA does)
      const at = small ? Math.floor(f((i + 0.5) * scale)) : Math.floor(f(Math.max(f((i + 0.5) * scale - 0.5), 0) + 0.5));
      return Math.min(at, inSize - 1);
    });
  };
  const xs = index(src.width, outW);
  const ys = index(src.height, outH);
  const out = new Uint8Array(outW * outH * C);
  for (let y = 0; y < outH; y++) {
    const row = ys[y] * src.width;
    for (let x = 0; x < outW; x++) {
      const s = (row + xs[x]) * C;
      const d = (y * outW + x) * C;
      for (let c = 0; c < C; c++) out[d + c] = src.data[s + c];
    }
  }
  return { width: outW, height: outH, channels: C, data: out };
}

/**
 * `torchvision.transforms.v2.functional.resize(tensor, [height, width], interpolation,
 * antialias=True)` for an 8-bit image (1-4 interleaved channels, each resized on its own) on the
 * CPU. Box and Hamming, which torchvision does not resize tensors with, throw a RangeError.
 */
export function resizeTorchvision(src: Image8, width: number, height: number, resample: Resample): Image8 {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`resize to ${width}x${height}: sizes must be positive integers`);
  }
  if (src.width < 1 || src.height < 1) throw new RangeError('cannot resize an empty image');
  if (src.width === width && src.height === height) return { width, height, channels: src.channels, data: src.data.slice() };
  if (resample === 'nearest') return resizeNearestExact(src, width, height);
  const filter = FILTERS[resample];
  if (!filter) throw new RangeError(`torchvision does not resize image tensors with the ${resample} filter (nearest, bilinear, bicubic or lanczos)`);
  const horiz = width !== src.width ? torchvisionCoeffs(src.width, width, filter) : undefined;
  const vert = height !== src.height ? torchvisionCoeffs(src.height, height, filter) : undefined;
  return resampleSeparable(src, width, height, horiz, vert, false);
}
