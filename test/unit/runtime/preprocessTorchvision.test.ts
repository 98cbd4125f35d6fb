// The torchvision image backend (runtime/preprocess/resizeTorchvision.ts, normalizationTable) against
// transformers' default BlipImageProcessor (fixtures: test/oracle/torchvision_backend.py).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  decodeImage,
  normalizationTable,
  preprocessFromHf,
  preprocessImages,
  resizePil,
  resizeTorchvision,
  setResampleSimd,
  type PreprocessConfig,
  type Resample,
  type RgbImage,
} from '../../../runtime/preprocess/index.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { load } from '../../../runtime/model.js';
import { GenerationConfigError } from '../../../runtime/errors.js';
import { fixturePath, readFixtureJson } from './fixtures.js';
import { compileFixture, tempDir } from '../tasks/harness.js';
import { runCliBatch } from '../cliHarness.js';

interface Setting {
  size: number;
  resample: number;
  image_mean: number[];
  image_std: number[];
  rescale_factor: number;
}
interface Cases {
  resize: Array<{ image: 'noise' | 'formula'; seed: number; width: number; height: number; out_width: number; out_height: number; resample: Resample; sha256: string }>;
  images: Array<{ image: string; setting: string; resized_sha256: string; pixel_values_sha256: string; bytes_unlike_pil: number }>;
  settings: Record<string, Setting>;
  odd_settings: { image_mean: number[]; image_std: number[]; rescale_factor: number };
  itm: { image: string; text: string; torchvision: { itm: number; itc: number }; pil: { itm: number; itc: number } };
}

const present = existsSync(fixturePath('torchvision-backend', 'cases.json'));
const skip = !present && 'test/fixtures/torchvision-backend not present';
const cases = present ? readFixtureJson<Cases>('torchvision-backend', 'cases.json') : undefined;

const sha = (b: Uint8Array | Float32Array): string => createHash('sha256').update(new Uint8Array(b.buffer, b.byteOffset, b.byteLength)).digest('hex');

/** noise_image() of the oracle: a 32-bit hash of (index, seed), its top byte. */
function noiseImage(w: number, h: number, seed: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  const s = Math.imul(seed, 0x85ebca77);
  for (let i = 0; i < data.length; i++) {
    let x = (Math.imul(i, 0x9e3779b1) + s) >>> 0;
    x = (x ^ (x >>> 15)) >>> 0;
    x = Math.imul(x, 0x2c1b3c6d) >>> 0;
    x = (x ^ (x >>> 12)) >>> 0;
    data[i] = x >>> 24;
  }
  return { width: w, height: h, channels: 3, data };
}

/** formula_image() of the oracle (test/oracle/preprocess_cases.py's). */
function formulaImage(w: number, h: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = ((x * x * (c + 1) + y * y * (3 - c) + x * y) >> 5) & 255;
  return { width: w, height: h, channels: 3, data };
}

function configOf(s: Setting, backend: 'pil' | 'torchvision'): PreprocessConfig {
  return { ...preprocessFromHf({ size: { height: s.size, width: s.size }, resample: s.resample, image_mean: s.image_mean, image_std: s.image_std, rescale_factor: s.rescale_factor }), backend };
}

test('resizeTorchvision gives torchvision\'s bytes: random sizes, nearest / bilinear / bicubic / lanczos, WebAssembly and JavaScript passes', { skip }, () => {
  const bad: string[] = [];
  for (const simd of [true, false]) {
    const was = setResampleSimd(simd);
    try {
      for (const c of cases!.resize) {
        const src = c.image === 'noise' ? noiseImage(c.width, c.height, c.seed) : formulaImage(c.width, c.height);
        const out = resizeTorchvision(src, c.out_width, c.out_height, c.resample);
        if (sha(out.data) !== c.sha256) bad.push(`${c.image} ${c.width}x${c.height} -> ${c.out_width}x${c.out_height} ${c.resample}${simd ? '' : ' (JavaScript)'}`);
      }
    } finally {
      setResampleSimd(was);
    }
  }
  assert.ok(cases!.resize.length >= 300);
  assert.deepEqual(bad, []);
});

test('the test images: torchvision backend equals BlipImageProcessor (default), PIL backend still BlipImageProcessorPil', { skip }, async () => {
  const st = SafetensorsFile.open(fixturePath('torchvision-backend', 'expected.safetensors'));
  try {
    let unlike = 0;
    for (const c of cases!.images) {
      const s = cases!.settings[c.setting];
      const file = fixturePath('images', c.image);
      const decoded = await decodeImage(file);
      const tv = resizeTorchvision(decoded, s.size, s.size, 'bicubic');
      const key = `resized/${c.image}/${c.setting}`;
      if (st.tensors.has(key)) assert.deepEqual(tv.data, st.readRaw(key), key);
      assert.equal(sha(tv.data), c.resized_sha256, `${key}: resized bytes`);
      const pv = await preprocessImages([file], configOf(s, 'torchvision'));
      assert.equal(sha(pv.data), c.pixel_values_sha256, `${c.image} ${c.setting}: pixel_values`);
      // the two backends differ where the oracle says they do (PIL's bytes: the images fixture's test)
      const pil = resizePil(decoded, s.size, s.size, 'bicubic');
      let n = 0;
      for (let i = 0; i < pil.data.length; i++) if (pil.data[i] !== tv.data[i]) n++;
      assert.equal(n, c.bytes_unlike_pil, `${c.image} ${c.setting}: bytes unlike PIL's`);
      unlike += n;
    }
    assert.equal(cases!.images.length, 14);
    assert.ok(unlike > 0);
  } finally {
    st.close();
  }
});

test('normalisation tables: the torchvision backend\'s fused (x - mean*255) / (std*255), rescale only, normalise only', { skip }, () => {
  const st = SafetensorsFile.open(fixturePath('torchvision-backend', 'expected.safetensors'));
  try {
    const o = cases!.odd_settings;
    const tables: Record<string, PreprocessConfig> = {
      ...Object.fromEntries(Object.entries(cases!.settings).map(([k, s]) => [k, configOf(s, 'torchvision')])),
      rescale_only: { ...preprocessFromHf({ image_mean: o.image_mean, image_std: o.image_std, rescale_factor: o.rescale_factor, do_normalize: false }), backend: 'torchvision' },
      normalize_only: { ...preprocessFromHf({ image_mean: o.image_mean, image_std: o.image_std, rescale_factor: o.rescale_factor, do_rescale: false }), backend: 'torchvision' },
    };
    for (const [name, cfg] of Object.entries(tables)) {
      const want = st.readFloat32(`table/${name}`);
      for (let c = 0; c < 3; c++) assert.deepEqual(normalizationTable(cfg, c), want.subarray(c * 256, (c + 1) * 256), `${name} channel ${c}`);
    }
    // the PIL backend's table is not the fused one (a few values differ in the last bit)
    const pil = normalizationTable(configOf(cases!.settings['384'], 'pil'), 0);
    assert.notDeepEqual(pil, normalizationTable(configOf(cases!.settings['384'], 'torchvision'), 0));
  } finally {
    st.close();
  }
});

test('box and hamming: torchvision does not resize tensors with them', () => {
  const src = formulaImage(9, 7);
  for (const r of ['box', 'hamming'] as const) assert.throws(() => resizeTorchvision(src, 4, 4, r), /torchvision does not resize image tensors with the/);
  assert.equal(resizeTorchvision(src, 9, 7, 'box').data.length, 9 * 7 * 3, 'same size: a copy');
});

const tmp = tempDir('blip-tv-backend-');
after(() => tmp.remove());

test('blip-itm-b end to end: load(dir, { imageBackend: "torchvision" }) scores as AutoProcessor.from_pretrained(ckpt) does', { skip: (!present || !existsSync(fixturePath('blip-itm-b', 'expected.json'))) && 'fixtures not present' }, async () => {
  const dir = await compileFixture('blip-itm-b', tmp.dir);
  const want = cases!.itm;
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
  for (const backend of ['torchvision', 'pil'] as const) {
    const model = await load(dir, { imageBackend: backend, threads: 1 });
    try {
      const [r] = await model.itm([fixturePath('images', want.image)], [want.text]);
      assert.ok(rel(r.itc, want[backend].itc) <= 1e-4, `${backend}: itc ${r.itc}, transformers ${want[backend].itc}`);
      assert.ok(rel(r.itm, want[backend].itm) <= 1e-4, `${backend}: itm ${r.itm}, transformers ${want[backend].itm}`);
    } finally {
      await model.close();
    }
  }
  // the two processors' ITC differ by far more than that: the test tells them apart
  assert.ok(rel(want.pil.itc, want.torchvision.itc) > 1e-3);
  await assert.rejects(load(dir, { imageBackend: 'torch' as never }), (e: unknown) => e instanceof GenerationConfigError && /imageBackend must be "pil" or "torchvision", found the string "torch"/.test((e as Error).message));
});

test('blip run --image-backend torchvision | pil: the scores of each processor; another value is a usage error', { skip: (!present || !existsSync(fixturePath('blip-itm-b', 'expected.json'))) && 'fixtures not present' }, async () => {
  const dir = await compileFixture('blip-itm-b', tmp.dir);
  const want = cases!.itm;
  const args = ['run', dir, '--image', fixturePath('images', want.image), '--text', want.text, '--threads', '1'];
  const [tv, pil, bad] = runCliBatch([[...args, '--image-backend', 'torchvision'], [...args, '--image-backend', 'pil'], [...args, '--image-backend', 'torch']]);
  for (const [r, backend] of [[tv, 'torchvision'], [pil, 'pil']] as const) {
    assert.equal(r.code, 0, r.err);
    const got = JSON.parse(r.out) as { itm: number; itc: number };
    assert.ok(Math.abs(got.itc - want[backend].itc) <= 1e-4 * Math.abs(want[backend].itc), `${backend}: itc ${got.itc}, transformers ${want[backend].itc}`);
  }
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--image-backend expects pil or torchvision, found 'torch'/);
});
