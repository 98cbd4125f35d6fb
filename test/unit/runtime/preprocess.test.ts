// runtime/preprocess against PIL / transformers (fixtures: test/oracle/preprocess_cases.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeImage,
  preprocessFromHf,
  preprocessFromManifest,
  preprocessImages,
  readHfPreprocessConfig,
  resizePil,
  toRgb,
  truncation,
  PIL_RESAMPLE,
  type RgbImage,
} from '../../../runtime/preprocess/index.js';
import { BlipRuntimeError, ImageDecodeError, PreprocessConfigError } from '../../../runtime/errors.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { pixelBatch } from '../../../runtime/tasks/images.js';
import { Blob, fixturePath, readFixtureJson, type BlobRef } from './fixtures.js';

interface DecodeCase {
  file: string;
  mode?: string;
  error?: string;
  lossless?: boolean;
  rgb?: BlobRef;
  /** PIL's bytes when it opens the file from bytes (BytesIO), where they differ from a path's. */
  rgb_from_bytes?: BlobRef;
}
interface ResizeCase {
  input: string;
  width: number;
  height: number;
  resample: number;
  out: BlobRef;
}
interface PipelineCase {
  config: string;
  inputs: string[];
  pixel_values: BlobRef;
  settings: {
    size: { height: number; width: number };
    resample: number;
    rescale_factor: number;
    do_normalize: boolean;
    image_mean: number[];
    image_std: number[];
    do_convert_rgb: boolean;
  };
}
interface Cases {
  decode: DecodeCase[];
  resize: ResizeCase[];
  pipeline: PipelineCase[];
  configs: string[];
}

const cases = readFixtureJson<Cases>('preprocess', 'cases.json');
const blob = new Blob(fixturePath('preprocess', 'expected.bin.gz'));
const img = (f: string): string => fixturePath('preprocess', 'images', f);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): { max: number; count: number } {
  assert.equal(a.length, b.length, 'lengths differ');
  let max = 0;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > 0) count++;
    if (d > max) max = d;
  }
  return { max, count };
}

function formulaImage(w: number, h: number): RgbImage {
  // the same integer formula as formula_image() in test/oracle/preprocess_cases.py
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = ((x * x * (c + 1) + y * y * (3 - c) + x * y) >> 5) & 255;
    }
  }
  return { width: w, height: h, channels: 3, data };
}

test('decoding matches PIL open().convert("RGB") byte for byte', async () => {
  let checked = 0;
  for (const c of cases.decode) {
    if (c.error) continue;
    const im = await decodeImage(img(c.file));
    const exp = blob.u8(c.rgb!);
    assert.deepEqual([im.height, im.width, 3], c.rgb!.shape, c.file);
    const d = maxDiff(im.data, exp);
    // PNG / lossless WebP must be exact; JPEG / lossy WebP decode with the same libjpeg-turbo / libwebp
    // algorithms and are exact here too, but are allowed one level
    assert.ok(c.lossless ? d.max === 0 : d.max <= 1, `${c.file} (${c.mode}): max difference ${d.max} in ${d.count} samples`);
    checked++;
  }
  assert.ok(checked >= 20, `only ${checked} images decoded`);
});

/** Decode a fixture image and compare it with PIL's bytes exactly (size included). */
async function assertDecodesAsPil(file: string, mode: string, tolerance = 0): Promise<void> {
  const c = cases.decode.find((d) => d.file === file);
  assert.ok(c?.rgb, `${file} is not among the decode cases`);
  assert.equal(c.mode, mode, file);
  const im = await decodeImage(img(file));
  assert.deepEqual([im.height, im.width, 3], c.rgb.shape, `${file}: size`);
  const d = maxDiff(im.data, blob.u8(c.rgb));
  assert.ok(d.max <= tolerance, `${file}: max difference ${d.max} in ${d.count} samples`);
}

test('a 16-bit grayscale PNG with a tRNS chunk decodes as PIL I;16: clipped at 255, not its high byte', async () => {
  await assertDecodesAsPil('gray16_trns_13x11.png', 'I;16');
});

test('a TIFF is turned upright by its orientation as PIL does on load (tag 274, else XMP): every orientation', async () => {
  const tiffs: Array<[string, string]> = [
    ...[1, 2, 3, 4, 5, 6, 7, 8].map((o): [string, string] => [`rgb_7x4_o${o}.tif`, 'RGB']),
    ['rgb_7x4_o6_lzw.tif', 'RGB'], // libtiff's path in PIL
    ['rgb_7x4_xmp_o8.tif', 'RGB'], // no tag 274: tiff:Orientation in the XMP packet
    ['gray16_5x4_o5.tif', 'I;16'],
    ['cmyk_5x3_o3.tif', 'CMYK'],
    ['cmyk_5x3_o6_strips.tif', 'CMYK'],
    // opened by path, one uncompressed strip in a mode PIL maps: read with the swapped size first
    ['cmyk_5x3_o7.tif', 'CMYK'],
    ['gray_6x4_o6.tif', 'L'],
    ['rgba_5x3_o8.tif', 'RGBA'],
    ['palette_6x4_o5.tif', 'P'],
  ];
  for (const [file, mode] of tiffs) await assertDecodesAsPil(file, mode);
  const o6 = await decodeImage(img('rgb_7x4_o6.tif'));
  assert.deepEqual([o6.width, o6.height], [4, 7]);
});

/** An uncompressed 3x2 RGB TIFF (one strip) whose first IFD gives tag 274 once per value in `orientations`. */
function tiffWithOrientations(orientations: number[]): Uint8Array {
  const pixels = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180];
  // [tag, type (3 SHORT, 4 LONG), value]; 273 (the strip's offset) is filled in below
  const entries: Array<[number, number, number]> = [[256, 3, 3], [257, 3, 2], [258, 3, 8], [259, 3, 1], [262, 3, 2], [273, 4, 0]];
  for (const o of orientations) entries.push([274, 3, o]);
  entries.push([277, 3, 3], [278, 3, 2], [279, 4, pixels.length]);
  const dataAt = 8 + 2 + 12 * entries.length + 4;
  const b = new Uint8Array(dataAt + pixels.length);
  const dv = new DataView(b.buffer);
  b.set([0x49, 0x49, 42, 0]);
  dv.setUint32(4, 8, true);
  dv.setUint16(8, entries.length, true);
  entries.forEach(([tag, type, value], i) => {
    const e = 10 + 12 * i;
    dv.setUint16(e, tag, true);
    dv.setUint16(e + 2, type, true);
    dv.setUint32(e + 4, 1, true);
    if (type === 3) dv.setUint16(e + 8, value, true);
    else dv.setUint32(e + 8, tag === 273 ? dataAt : value, true);
  });
  b.set(pixels, dataAt);
  return b;
}

test('a TIFF whose Orientation tag is given twice is turned by the first value, as PIL opens it', async () => {
  // PIL 13 (Image.open(...).convert("RGB"), by path and from bytes alike; exif_transpose gives the same)
  const stored = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180];
  const rotate270 = [100, 110, 120, 10, 20, 30, 130, 140, 150, 40, 50, 60, 160, 170, 180, 70, 80, 90];
  const rotate180 = [160, 170, 180, 130, 140, 150, 100, 110, 120, 70, 80, 90, 40, 50, 60, 10, 20, 30];
  const rotate90 = [70, 80, 90, 160, 170, 180, 40, 50, 60, 130, 140, 150, 10, 20, 30, 100, 110, 120];
  const expected: Array<[number[], [number, number], number[]]> = [
    [[1, 6], [3, 2], stored],
    [[6, 1], [2, 3], rotate270],
    [[3, 8], [3, 2], rotate180],
    [[8, 3], [2, 3], rotate90],
  ];
  const dir = mkdtempSync(join(tmpdir(), 'blip-dup274-'));
  try {
    for (const [orientations, size, rgb] of expected) {
      const name = `dup_${orientations.join('_')}.tif`;
      const bytes = tiffWithOrientations(orientations);
      writeFileSync(join(dir, name), bytes);
      for (const source of [{ name, bytes }, join(dir, name)]) {
        const im = await decodeImage(source);
        const what = `${name} ${typeof source === 'string' ? 'by path' : 'from bytes'}`;
        assert.deepEqual([im.width, im.height], size, what);
        assert.deepEqual(Array.from(im.data), rgb, what);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an AVIF with irot / imir (an EXIF orientation as Pillow writes it) decodes unturned, as PIL opens it', async () => {
  // (libheif applies them; 4:4:4 AVIF is within one level of Pillow's libavif)
  for (const o of [1, 2, 3, 5, 6, 7]) await assertDecodesAsPil(`rgb_7x5_o${o}.avif`, 'RGB', 1);
});

test('a TIFF with associated alpha unpremultiplies as PIL does (floor(c * 255 / a), not libvips\' float32)', async () => {
  await assertDecodesAsPil('rgba_associated_12x6.tif', 'RGBA');
  // a 16-bit one libvips cannot give as PIL reads it: refused, one line
  const tif = new Uint8Array(readFileSync(img('rgba_associated_12x6.tif')));
  const view = new DataView(tif.buffer, tif.byteOffset, tif.length);
  const bps = view.getUint32(8 + 2 + 2 * 12 + 8, true); // entry 3 (258): its values' offset
  for (let k = 0; k < 4; k++) view.setUint16(bps + 2 * k, 16, true);
  view.setUint16(8 + 2 + 1 * 12 + 8, 3, true); // half the height: the strip holds 6 x 3 pixels of 16 bits
  await assert.rejects(decodeImage({ name: 'assoc16.tif', bytes: tif }), /^.*assoc16\.tif: a 16-bit TIFF with associated \(premultiplied\) alpha does not decode as PIL reads it: convert it to PNG$/);
});

test('a TIFF given as bytes decodes as PIL opens it from bytes (nothing mapped into memory)', async () => {
  let differ = 0;
  for (const c of cases.decode) {
    if (!c.file.endsWith('.tif') || !c.rgb) continue;
    const exp = c.rgb_from_bytes ?? c.rgb;
    if (c.rgb_from_bytes) differ++;
    const im = await decodeImage({ name: c.file, bytes: new Uint8Array(readFileSync(img(c.file))) });
    assert.deepEqual([im.height, im.width, 3], exp.shape, `${c.file}: size`);
    const d = maxDiff(im.data, blob.u8(exp));
    assert.equal(d.max, 0, `${c.file} from bytes: max difference ${d.max} in ${d.count} samples`);
  }
  assert.ok(differ >= 5, `only ${differ} TIFFs differ between a path and bytes`);
});

test('unreadable images are one-line BLIP5010 errors naming the file', async () => {
  const bad = cases.decode.filter((c) => c.error).map((c) => c.file);
  assert.ok(bad.includes('corrupt.png') && bad.includes('truncated.jpg') && bad.includes('not_an_image.png'));
  for (const f of [...bad, 'does_not_exist.png']) {
    await assert.rejects(decodeImage(img(f)), (e: unknown) => {
      assert.ok(e instanceof ImageDecodeError, `${f}: ${String(e)}`);
      assert.ok(e instanceof BlipRuntimeError);
      assert.equal(e.code, 'BLIP5010');
      assert.ok(e.message.includes(img(f)), e.message);
      assert.ok(!e.message.includes('\n'), e.message);
      return true;
    });
  }
  await assert.rejects(decodeImage(img('truncated.jpg')), /truncated\.jpg: the file is truncated \(JPEG /);
  await assert.rejects(decodeImage(img('not_an_image.png')), /not a supported image/);
  await assert.rejects(decodeImage({ name: 'empty.jpg', bytes: new Uint8Array(0) }), /empty\.jpg: the file is empty/);
  await assert.rejects(decodeImage(fixturePath('preprocess')), (e: unknown) => e instanceof ImageDecodeError && /directory/.test(e.message));
  // a device would be read without end: refused by what it is, before any read
  if (existsSync('/dev/zero')) await assert.rejects(decodeImage('/dev/zero'), /\/dev\/zero: not a regular file \(a device, pipe or socket\)/);
});

test('a corrupt image gets the same words however many fail at once (libvips shares one error buffer)', async () => {
  // a whole PNG whose compressed pixels are broken, a JPEG whose headers are, and a GIF signature alone
  const png = new Uint8Array(readFileSync(fixturePath('preprocess', 'images', 'photo_100x75.png')));
  const idat = Buffer.from(png).indexOf('IDAT');
  const brokenPng = png.slice();
  for (let i = idat + 4; i < idat + 24; i++) brokenPng[i] ^= 0x5a;
  const jpg = new Uint8Array(readFileSync(fixturePath('images', 'photo_64x48.jpg')));
  const brokenJpg = jpg.slice();
  for (let i = 20; i < 160; i += 7) brokenJpg[i] ^= 0xa5;
  const gif = new TextEncoder().encode('GIF89a');
  const expected: Array<[string, Uint8Array, string]> = [
    ['broken.png', brokenPng, 'the file is corrupt (its PNG data does not decode)'],
    ['broken.jpg', brokenJpg, 'the file is corrupt (its JPEG header does not decode)'],
    ['header.gif', gif, 'the file is corrupt (its GIF header does not decode)'],
  ];
  for (const [name, bytes] of expected) assert.equal(truncation(bytes), undefined, `${name} must not look truncated`);
  const all = expected.flatMap((x) => Array.from({ length: 6 }, () => x));
  const messages = await Promise.all(all.map(([name, bytes]) => decodeImage({ name, bytes }).then(() => 'decoded', (e: Error) => e.message)));
  messages.forEach((m, i) => assert.equal(m, `cannot read image ${all[i][0]}: ${all[i][2]}`));
});

test('an image over the pixel limit is refused by its header, with its size', async () => {
  for (const f of ['photo_64x48.jpg', 'photo_100x75.png', 'photo_64x48_lossy.webp']) {
    const [w, h] = /(\d+)x(\d+)/.exec(f)!.slice(1).map(Number);
    await assert.rejects(decodeImage(img(f), { maxPixels: w * h - 1 }), (e: unknown) => {
      assert.ok(e instanceof ImageDecodeError);
      assert.ok(e.message.endsWith(`: ${w}x${h} is more than the ${w * h - 1} pixels allowed`), e.message);
      return true;
    });
    assert.equal((await decodeImage(img(f), { maxPixels: w * h })).width, w);
  }
});

test('PIL-compatible resize: every filter, up/down/mixed scaling, odd and tiny sizes', () => {
  const inputs = new Map<string, RgbImage>();
  for (const c of cases.decode) {
    if (c.rgb) inputs.set(c.file, { width: c.rgb.shape[1], height: c.rgb.shape[0], channels: 3, data: blob.u8(c.rgb) });
  }
  const offByOne: string[] = [];
  let exact = 0;
  for (const c of cases.resize) {
    if (c.input.startsWith('formula:')) continue;
    const src = inputs.get(c.input);
    assert.ok(src, c.input);
    const out = resizePil(src, c.width, c.height, PIL_RESAMPLE[c.resample]);
    assert.equal(out.width, c.width);
    assert.equal(out.height, c.height);
    const d = maxDiff(out.data, blob.u8(c.out));
    const what = `${c.input} -> ${c.width}x${c.height} ${PIL_RESAMPLE[c.resample]}`;
    assert.ok(d.max <= 1, `${what}: max difference ${d.max} in ${d.count} samples`);
    if (d.max === 0) exact++;
    else offByOne.push(`${what} (${d.count})`);
  }
  // one 8-bit level is the tolerance; in practice every case is identical to PIL
  assert.deepEqual(offByOne, [], `off by one level: ${offByOne.join(', ')}`);
  assert.ok(exact > 100, `${exact} cases`);
});

test('PIL-compatible resize of a large image (1203x907) to model sizes', () => {
  const src = formulaImage(1203, 907);
  const big = cases.resize.filter((c) => c.input === 'formula:1203x907');
  assert.ok(big.length >= 6);
  for (const c of big) {
    const out = resizePil(src, c.width, c.height, PIL_RESAMPLE[c.resample]);
    const what = `1203x907 -> ${c.width}x${c.height} ${PIL_RESAMPLE[c.resample]}`;
    if (c.out.offset !== undefined) {
      const d = maxDiff(out.data, blob.u8(c.out));
      assert.ok(d.max <= 1, `${what}: max difference ${d.max}`);
      assert.equal(d.max, 0, `${what}: ${d.count} samples off by one`);
    } else {
      assert.equal(createHash('sha256').update(out.data).digest('hex'), c.out.sha256, `${what}: differs from PIL`);
    }
  }
});

test('resize edge cases: same size copies, bad sizes are refused', () => {
  const src: RgbImage = { width: 2, height: 2, channels: 3, data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) };
  const same = resizePil(src, 2, 2, 'bicubic');
  assert.deepEqual(same.data, src.data);
  assert.notEqual(same.data, src.data);
  assert.throws(() => resizePil(src, 0, 2, 'bicubic'), RangeError);
  assert.throws(() => resizePil(src, 2.5, 2, 'bicubic'), RangeError);
});

test('pixel_values equal transformers BlipImageProcessorPil (PNG, JPEG, WebP; gray, RGBA, LA, palette, 1-bit)', async () => {
  assert.ok(cases.pipeline.length >= 4);
  for (const c of cases.pipeline) {
    for (const file of ['preprocessor_config.json', 'processor_config.json']) {
      // load each layout on its own
      const dir = mkdtempSync(join(tmpdir(), 'blip-pre-'));
      try {
        copyFileSync(fixturePath('preprocess', 'configs', c.config, file), join(dir, file));
        const { config } = readHfPreprocessConfig(dir);
        assert.deepEqual(config.image_size, c.settings.size);
        assert.equal(config.resample, PIL_RESAMPLE[c.settings.resample]);
        assert.equal(config.rescale_factor, c.settings.rescale_factor);
        assert.equal(config.do_normalize, c.settings.do_normalize);
        assert.deepEqual(config.mean, c.settings.image_mean);
        assert.deepEqual(config.std, c.settings.image_std);
        if (file === 'processor_config.json') continue;
        const pv = await preprocessImages(c.inputs.map(img), config);
        const exp = blob.f32(c.pixel_values);
        assert.deepEqual(pv.dims, c.pixel_values.shape, c.config);
        const d = maxDiff(pv.data, exp);
        assert.equal(d.max, 0, `${c.config}: max |difference| ${d.max} in ${d.count} values`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
});

test('processor_config.json written by a transformers 5 processor is read', () => {
  const { config, file } = readHfPreprocessConfig(fixturePath('preprocess', 'configs', 'saved_by_processor'));
  assert.ok(file.endsWith('processor_config.json'));
  assert.deepEqual(config.image_size, { height: 24, width: 32 });
  assert.equal(config.resample, 'bicubic');
});

test('configuration: manifest form, defaults and clear refusals', () => {
  const m = preprocessFromManifest({ image_size: 384, resample: 'bicubic', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], rescale_factor: 1 / 255 });
  assert.deepEqual(m.image_size, { height: 384, width: 384 });
  assert.equal(m.do_convert_rgb, true);
  assert.equal(preprocessFromManifest({ image_size: { height: 2, width: 3 }, resample: 1 }).resample, 'lanczos');
  const hf = preprocessFromHf({});
  assert.deepEqual(hf.image_size, { height: 384, width: 384 });
  assert.equal(hf.resample, 'bicubic');
  assert.throws(() => preprocessFromHf({ resample: 9 }), (e: unknown) => e instanceof PreprocessConfigError && e.code === 'BLIP5012' && /resample 9/.test(e.message));
  // a name is the manifest's form, not the file's: transformers resizes it with bilinear (PIL) or refuses it (torchvision)
  for (const name of ['nearest', 'bicubic', '3']) assert.throws(() => preprocessFromHf({ resample: name }), new RegExp(`resample "${name}" is not an integer PIL code`));
  assert.throws(() => preprocessFromHf({ do_center_crop: true }), PreprocessConfigError);
  assert.deepEqual(preprocessFromHf({ size: [16, 24] }).image_size, { height: 16, width: 24 }, 'a list is [height, width]');
  assert.throws(() => preprocessFromHf({ size: [16] }), /image size must be/);
  // a crop to the size just resized to changes nothing; any other is refused
  assert.throws(() => preprocessFromHf({ do_center_crop: true, size: { height: 32, width: 32 }, crop_size: { height: 16, width: 16 } }), /the runtime does not crop/);
  assert.throws(() => preprocessFromHf({ do_center_crop: true, do_resize: false, crop_size: 32 }), /the runtime does not crop/);
  assert.deepEqual(preprocessFromHf({ do_center_crop: true, size: { height: 32, width: 32 }, crop_size: [32, 32] }).image_size, { height: 32, width: 32 });
  assert.equal(preprocessFromHf({ do_center_crop: null, crop_size: 16 }).do_resize, true);
  // null is None to transformers: a step switched by null is off, a value it needs left null is refused
  const nulls = preprocessFromHf({ do_resize: null, do_rescale: null, do_normalize: null, do_convert_rgb: null });
  assert.deepEqual([nulls.do_resize, nulls.do_rescale, nulls.do_normalize, nulls.do_convert_rgb], [false, false, false, false]);
  assert.throws(() => preprocessFromHf({ size: null }), /size is null, which do_resize true needs/);
  assert.throws(() => preprocessFromHf({ image_std: null }), /image_std is null, which do_normalize true needs/);
  assert.equal(preprocessFromHf({ image_std: null, do_normalize: false }).do_normalize, false);
  assert.throws(() => preprocessFromHf({ size: { shortest_edge: 224 } }), /aspect-preserving/);
  assert.throws(() => preprocessFromHf({ image_std: [1, 0, 1] }), /std must be positive/);
  assert.throws(() => preprocessFromHf({ image_mean: [1, 2] }), /mean must be 3 numbers/);
  const dir = mkdtempSync(join(tmpdir(), 'blip-pre-'));
  try {
    assert.throws(() => readHfPreprocessConfig(dir), /neither processor_config\.json/);
    writeFileSync(join(dir, 'preprocessor_config.json'), '{not json');
    assert.throws(() => readHfPreprocessConfig(dir), /not valid JSON/);
    // a processor_config.json without a nested image processor (older layout) falls back
    writeFileSync(join(dir, 'processor_config.json'), '{"num_query_tokens": 32}');
    writeFileSync(join(dir, 'preprocessor_config.json'), '{"size": {"height": 224, "width": 224}, "resample": 2}');
    const r = readHfPreprocessConfig(dir);
    assert.deepEqual([r.config.image_size.height, r.config.resample], [224, 'bilinear']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('do_pad true in the image processor file is refused in one line naming the file; false is taken', () => {
  assert.throws(() => preprocessFromHf({ do_pad: true }), (e: unknown) => e instanceof PreprocessConfigError && e.code === 'BLIP5012' && /do_pad is true; the runtime does not pad images/.test(e.message));
  assert.equal(preprocessFromHf({ do_pad: false }).do_resize, true);
  const dir = mkdtempSync(join(tmpdir(), 'blip-pad-'));
  try {
    writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify({ size: { height: 32, width: 32 }, do_pad: true }));
    assert.throws(() => readHfPreprocessConfig(dir), (e: unknown) => {
      assert.ok(e instanceof PreprocessConfigError, String(e));
      assert.equal(e.message, `${join(dir, 'preprocessor_config.json')}: do_pad is true; the runtime does not pad images`);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('decoded grey + alpha pixels (channels 2) become RGB as PIL converts LA: the grey copied, the alpha dropped', async () => {
  const la = new Uint8Array([10, 255, 200, 128, 30, 0, 90, 255]);
  // PIL 13: Image.frombytes("LA", (2, 2), la).convert("RGB").tobytes()
  const pil = [10, 10, 10, 200, 200, 200, 30, 30, 30, 90, 90, 90];
  assert.deepEqual(Array.from(toRgb(la, 2, 2, 2).data), pil);
  // what generate() and the other tasks do with pixels given as pixels
  const cfg = preprocessFromHf({ size: { height: 4, width: 4 } });
  const fromLa = await pixelBatch([{ data: la, width: 2, height: 2, channels: 2 }], cfg);
  const fromRgb = await pixelBatch([{ data: new Uint8Array(pil), width: 2, height: 2, channels: 3 }], cfg);
  assert.deepEqual(fromLa.dims, [1, 3, 4, 4]);
  assert.deepEqual(fromLa.data, fromRgb.data);
});

test('do_resize false: the batch needs equal sizes', async () => {
  const cfg = { ...preprocessFromHf({}), do_resize: false };
  await assert.rejects(preprocessImages([img('rgb_7x5.png'), img('rgb_37x23.png')], cfg), (e: unknown) => e instanceof BlipRuntimeError && e.code === 'BLIP5011');
  const one = await preprocessImages([img('rgb_7x5.png')], cfg);
  assert.deepEqual(one.dims, [1, 3, 5, 7]);
});

// ---- the fixtures helper's image set (test/oracle/images.py: BlipImageProcessorPil) ----
interface ImagesFixture {
  settings: Record<string, { image_mean: number[]; image_std: number[]; images: string[]; resample: number; rescale_factor: number; size: { height: number; width: number } }>;
  rows_384: number[];
  arrays: Record<string, { dtype: string; shape: number[] }>;
}

test('pixel_values and resized bytes equal the images fixture (BlipImageProcessorPil)', { skip: !existsSync(fixturePath('images', 'expected.json')) && 'test/fixtures/images not present' }, async () => {
  const fx = readFixtureJson<ImagesFixture>('images', 'expected.json');
  const st = SafetensorsFile.open(fixturePath('images', 'expected.safetensors'));
  let compared = 0;
  try {
    for (const [name, s] of Object.entries(fx.settings)) {
      const cfg = preprocessFromHf({ size: s.size, resample: s.resample, rescale_factor: s.rescale_factor, image_mean: s.image_mean, image_std: s.image_std });
      for (const image of s.images) {
        const decoded = await decodeImage(fixturePath('images', image));
        const resizedKey = `resized/${image}/${name}`;
        if (fx.arrays[resizedKey]) {
          const got = resizePil(decoded, s.size.width, s.size.height, cfg.resample);
          assert.equal(maxDiff(got.data, st.readRaw(resizedKey)).max, 0, resizedKey);
          compared++;
        }
        const pv = await preprocessImages([fixturePath('images', image)], cfg);
        const full = `pixel_values/${image}/${name}`;
        const rowsKey = `pixel_values_rows/${image}/${name}`;
        if (fx.arrays[full]) {
          assert.equal(maxDiff(pv.data, st.readFloat32(full)).max, 0, full);
          compared++;
        } else if (fx.arrays[rowsKey]) {
          // (3, rows, W): the listed rows of each channel
          const H = s.size.height;
          const W = s.size.width;
          const want = st.readFloat32(rowsKey);
          const got = new Float32Array(want.length);
          fx.rows_384.forEach((r, i) => {
            for (let c = 0; c < 3; c++) got.set(pv.data.subarray(c * H * W + r * W, c * H * W + (r + 1) * W), (c * fx.rows_384.length + i) * W);
          });
          assert.equal(maxDiff(got, want).max, 0, rowsKey);
          compared++;
        }
      }
    }
  } finally {
    st.close();
  }
  assert.ok(compared >= 20, `${compared} arrays compared`);
});

test('a failed decode reads the same however many fail at once (libvips has one error buffer per process)', async () => {
  const jpeg = readFileSync(img('photo_64x48.jpg'));
  const png = readFileSync(img('rgb_37x23.png'));
  const webp = readFileSync(img('photo_64x48_lossy.webp'));
  for (const whole of [jpeg, png, webp]) assert.equal(truncation(whole), undefined);
  assert.match(truncation(jpeg.subarray(0, jpeg.length - 40)) ?? '', /JPEG without its end-of-image marker/);
  assert.match(truncation(jpeg.subarray(0, 30)) ?? '', /JPEG that ends before its image data/);
  assert.match(truncation(png.subarray(0, png.length - 20)) ?? '', /PNG/);
  assert.match(truncation(webp.subarray(0, 60)) ?? '', /WebP says \d+ bytes, the file has 60/);
  const half = jpeg.subarray(0, jpeg.length >> 1);
  const messages = new Set<string>();
  for (let round = 0; round < 40; round++) {
    const all = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => decodeImage({ name: 'half.jpg', bytes: i % 2 ? half : jpeg.subarray(0, 200) })));
    for (const r of all) messages.add(r.status === 'rejected' ? String((r.reason as Error).message) : 'decoded');
  }
  assert.deepEqual([...messages].map((m) => m.replace(/^.*half\.jpg: /, '')).sort(), [
    'the file is truncated (JPEG that ends before its image data)',
    'the file is truncated (JPEG without its end-of-image marker)',
  ]);
});

test('pixelBatch: rows in input order, repeated inputs decoded once, the first failure named, no stray rejection', async () => {
  const cfg = preprocessFromHf({ do_resize: true, size: { height: 24, width: 24 }, resample: 3, do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: [0.5, 0.4, 0.3], image_std: [0.2, 0.3, 0.4] });
  const a = img('rgb_37x23.png');
  const b = { name: 'photo.jpg', bytes: new Uint8Array(readFileSync(img('photo_64x48.jpg'))) };
  const batch = await pixelBatch([a, b, a], cfg);
  assert.deepEqual(batch.dims, [3, 3, 24, 24]);
  const one = (await preprocessImages([a, b], cfg)).data;
  const rows = batch.data as Float32Array;
  const plane = 3 * 24 * 24;
  assert.deepEqual(rows.subarray(0, plane), one.subarray(0, plane));
  assert.deepEqual(rows.subarray(plane, 2 * plane), one.subarray(plane));
  assert.deepEqual(rows.subarray(2 * plane), one.subarray(0, plane));
  // a corrupt second image followed by another corrupt one: the second is named, and nothing the
  // batch started (the look-ahead decode) may surface later as an unhandled rejection
  const stray: unknown[] = [];
  const onStray = (e: unknown): void => void stray.push(e);
  process.on('unhandledRejection', onStray);
  try {
    await assert.rejects(pixelBatch([a, img('corrupt.png'), img('truncated.jpg'), b], cfg, 10), (e: unknown) => {
      assert.ok(e instanceof ImageDecodeError, String(e));
      assert.ok(e.message.includes('corrupt.png') && !e.message.includes('truncated.jpg'), e.message);
      return true;
    });
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    process.off('unhandledRejection', onStray);
  }
  assert.deepEqual(stray, []);
});
