// The WebAssembly SIMD resampling passes (runtime/preprocess/resampleSimd.ts) against the
// JavaScript ones, which preprocess.test.ts holds to Pillow's bytes; and the committed module
// against its source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { resizePil, setResampleSimd, type Image8, type Resample } from '../../../runtime/preprocess/resize.js';
import { repoRoot } from './fixtures.js';

/** Deterministic pseudo-random bytes (xorshift), smooth enough in places to hit every weight sign. */
function image(width: number, height: number, channels: number, seed: number): Image8 {
  const data = new Uint8Array(width * height * channels);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    // half the rows noise, half a gradient with sharp edges (overshoot: clipping at 0 and 255)
    const y = Math.floor(i / (width * channels));
    data[i] = y % 2 ? s & 255 : (i % 7 < 3 ? 0 : 255);
  }
  return { width, height, channels, data };
}

function both(src: Image8, w: number, h: number, r: Resample): [Uint8Array, Uint8Array] {
  setResampleSimd(false);
  const js = resizePil(src, w, h, r).data;
  setResampleSimd(true);
  return [js, resizePil(src, w, h, r).data];
}

test('SIMD passes give the JavaScript passes\' bytes: every filter, both pass orders, one-pass resizes, 1-4 channels', () => {
  const filters: Resample[] = ['bicubic', 'bilinear', 'lanczos', 'box', 'hamming'];
  const cases: Array<[number, number, number, number, number]> = [
    // src w, h, channels, out w, h
    [1000, 700, 3, 384, 384], // down, horizontal first
    [1000, 700, 3, 224, 224],
    [40, 300, 3, 36, 20], // height shrinks far more: vertical first
    [37, 23, 3, 384, 384], // up
    [64, 48, 3, 64, 17], // vertical only
    [64, 48, 3, 13, 48], // horizontal only
    [1, 1, 3, 5, 3],
    [17, 5, 1, 3, 9],
    [9, 31, 2, 30, 4],
    [33, 17, 4, 16, 40],
    [300, 1, 3, 7, 1],
    [1, 300, 3, 1, 7],
  ];
  let n = 0;
  for (const [sw, sh, c, w, h] of cases) {
    const src = image(sw, sh, c, sw * 31 + sh);
    for (const f of filters) {
      const [js, simd] = both(src, w, h, f);
      assert.equal(simd.length, js.length);
      const at = simd.findIndex((v, i) => v !== js[i]);
      assert.equal(at, -1, `${sw}x${sh}x${c} -> ${w}x${h} ${f}: first difference at byte ${at}`);
      n++;
    }
  }
  assert.equal(n, cases.length * filters.length);
});

test('SIMD passes: a resize too large to keep its memory (a throwaway instance) and one after it', () => {
  for (const [src, w, h] of [
    [image(2600, 2400, 3, 7), 384, 384],
    [image(120, 90, 3, 8), 50, 61],
  ] as const) {
    const [js, simd] = both(src, w, h, 'bicubic');
    assert.ok(simd.every((v, i) => v === js[i]), `${src.width}x${src.height} -> ${w}x${h}`);
  }
});

test('resampleWasm.ts is what scripts/build-wasm.mjs makes of resample.wat', async () => {
  const build = (await import(pathToFileURL(join(repoRoot(), 'scripts', 'build-wasm.mjs')).href)) as {
    assemble(): Promise<Buffer>;
    render(bytes: Buffer): string;
  };
  const committed = readFileSync(join(repoRoot(), 'runtime', 'preprocess', 'resampleWasm.ts'), 'utf8');
  assert.equal(committed, build.render(await build.assemble()), 'run node scripts/build-wasm.mjs');
});
