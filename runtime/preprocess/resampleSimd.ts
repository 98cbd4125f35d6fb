// Pillow's two resampling passes run by resample.wat (WebAssembly SIMD, sixteen samples at a
// time; the same integer arithmetic as resize.ts's JavaScript passes, so the same bytes). A pass
// along rows is a pass along columns of the transposed image, so one kernel does both:
//   horizontal: transpose -> convolveRows -> transpose;  vertical: convolveRows.
// Resizes up to a 2000 x 2000 RGB image share one instance and its memory (at most 32 MiB, kept);
// a larger one gets an instance of its own, dropped when it returns.
import type { Coeffs, Image8 } from './resize.js';
import { RESAMPLE_WASM } from './resampleWasm.js';

interface Kernels {
  memory: WebAssembly.Memory;
  convolveRows(src: number, row: number, outRows: number, bounds: number, kk: number, ksize: number, shift: number, out: number): void;
  transpose(src: number, w: number, h: number, c: number, dst: number): void;
}

let compiled: WebAssembly.Module | null | undefined;

/** The compiled module, or null where this Node cannot run WebAssembly SIMD. */
function wasmModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(Buffer.from(RESAMPLE_WASM, 'base64'));
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

/** Above this much memory for one resize the JavaScript passes run instead (WebAssembly memory is at most 4 GiB). */
const MAX_BYTES = 1 << 30;
const PAGE = 65536;
/** The largest memory kept between calls: a 2000 x 2000 RGB image's resize fits. */
const KEEP_BYTES = 32 << 20;
let kept: Kernels | undefined;

/** Bump allocation in one call's memory; every buffer 16-byte aligned with 16 spare bytes after it. */
class Arena {
  private used = 0;
  take(bytes: number): number {
    const at = this.used;
    this.used += Math.ceil((bytes + 16) / 16) * 16;
    return at;
  }
  get size(): number {
    return this.used;
  }
}

export interface SimdPlan {
  src: Image8;
  outW: number;
  outH: number;
  /** Vertical pass first (Pillow's order when the height shrinks much more than the width). */
  verticalFirst: boolean;
  horiz?: Coeffs;
  vert?: Coeffs;
  /** Horizontal-first: the source rows the vertical pass reads. */
  rows: [number, number];
}

/**
 * Run the planned passes; undefined when WebAssembly SIMD is unavailable or the image too large
 * for a memory of its own (the caller then runs the JavaScript passes).
 */
export function resampleSimd(p: SimdPlan): Uint8Array | undefined {
  const mod = wasmModule();
  if (!mod) return undefined;
  const C = p.src.channels;
  const W = p.src.width;
  const [y0, y1] = p.verticalFirst ? [0, p.src.height] : p.rows;
  const R = y1 - y0;
  const a = new Arena();
  const at = {
    src: a.take(R * W * C),
    hb: p.horiz ? a.take(p.horiz.bounds.byteLength) : 0,
    hk: p.horiz ? a.take(p.horiz.kk.byteLength) : 0,
    vb: p.vert ? a.take(p.vert.bounds.byteLength) : 0,
    vk: p.vert ? a.take(p.vert.kk.byteLength) : 0,
    // horizontal-first: src -T-> t1 (W x R) -conv-> t2 (outW x R) -T-> mid (R x outW) -conv-> out
    // vertical-first:   src -conv-> mid (outH x W) -T-> t1 (W x outH) -conv-> t2 (outW x outH) -T-> out
    t1: p.horiz ? a.take(W * (p.verticalFirst ? p.outH : R) * C) : 0,
    t2: p.horiz ? a.take(p.outW * (p.verticalFirst ? p.outH : R) * C) : 0,
    mid: p.horiz && p.vert ? a.take((p.verticalFirst ? p.outH * W : R * p.outW) * C) : 0,
    out: a.take(p.outW * p.outH * C),
  };
  if (a.size > MAX_BYTES) return undefined;
  // Resizes of up to KEEP_BYTES share one instance (its memory grows, never shrinks: fresh pages
  // cost more than the passes); a larger one gets its own, dropped when it returns.
  let k: Kernels;
  if (a.size <= KEEP_BYTES) k = kept ??= new WebAssembly.Instance(mod, {}).exports as unknown as Kernels;
  else k = new WebAssembly.Instance(mod, {}).exports as unknown as Kernels;
  const mem = k.memory;
  const need = Math.ceil(a.size / PAGE) - mem.buffer.byteLength / PAGE;
  if (need > 0) {
    try {
      mem.grow(need);
    } catch {
      return undefined; // no room for a memory this size: the JavaScript passes need less
    }
  }
  const heap = new Uint8Array(mem.buffer);
  heap.set(p.src.data.subarray(y0 * W * C, y1 * W * C), at.src);
  if (p.horiz) {
    new Int32Array(mem.buffer, at.hb, p.horiz.bounds.length).set(p.horiz.bounds);
    new Int32Array(mem.buffer, at.hk, p.horiz.kk.length).set(p.horiz.kk);
  }
  if (p.vert) {
    new Int32Array(mem.buffer, at.vb, p.vert.bounds.length).set(p.vert.bounds);
    new Int32Array(mem.buffer, at.vk, p.vert.kk.length).set(p.vert.kk);
  }
  const horizontal = (from: number, w: number, h: number, to: number): void => {
    // rows of w pixels -> columns; convolve them; back to rows of outW pixels
    k.transpose(from, w, h, C, at.t1);
    k.convolveRows(at.t1, h * C, p.outW, at.hb, at.hk, p.horiz!.ksize, 0, at.t2);
    k.transpose(at.t2, h, p.outW, C, to);
  };
  if (p.verticalFirst) {
    k.convolveRows(at.src, W * C, p.outH, at.vb, at.vk, p.vert!.ksize, 0, at.mid);
    horizontal(at.mid, W, p.outH, at.out);
  } else if (p.horiz && p.vert) {
    horizontal(at.src, W, R, at.mid);
    k.convolveRows(at.mid, p.outW * C, p.outH, at.vb, at.vk, p.vert.ksize, y0, at.out);
  } else if (p.horiz) {
    horizontal(at.src, W, R, at.out);
  } else {
    k.convolveRows(at.src, W * C, p.outH, at.vb, at.vk, p.vert!.ksize, y0, at.out);
  }
  return new Uint8Array(mem.buffer, at.out, p.outW * p.outH * C).slice();
}
