// The task calls read every image before their first model run (docs/api.md, "load"): an image
// that cannot be read, placed after several batches of good ones, fails generate(), itm() and
// embedImages() with one BLIP5010 line naming it (path, name or #index) and no session has run;
// resized images are kept up to a byte budget, past which an image is read again at its batch.
// itm() and embedTexts() tokenize every text first: one too long for the model fails them so too.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readManifest } from '../../../src/artifact/manifest.js';
import { load } from '../../../src/index.js';
import { preprocessFromHf, preprocessFromManifest } from '../../../runtime/preprocess/config.js';
import { loadTokenizer } from '../../../runtime/tokenizers/hf.js';
import { generateForImages, type GenerateContext } from '../../../runtime/tasks/generate.js';
import { embedImages, embedTexts, itmPairs, type RetrievalContext } from '../../../runtime/tasks/retrieval.js';
import { prepareImages, type ImageInput } from '../../../runtime/tasks/images.js';
import { compileFixture, fixturePath, tempDir } from './harness.js';

const tmp = tempDir('blip-images-up-front-');
after(() => tmp.remove());

const A = fixturePath('images', 'rgb_37x23.png');
const B = fixturePath('images', 'photo_64x48.jpg');
const CORRUPT = fixturePath('preprocess', 'images', 'corrupt.png');
const MISSING = join(tmp.dir, 'missing.png');
/** Ten good images (more than two batches of 4), then `last`. */
const goodThen = (last: ImageInput): ImageInput[] => [...Array.from({ length: 10 }, (_, i) => (i % 2 ? B : A)), last];

type Session = { inputNames: readonly string[]; outputNames: readonly string[]; run(f: Record<string, ort.Tensor>, o?: string[]): Promise<Record<string, ort.Tensor>> };
function recording(s: Session) {
  const calls: Array<Record<string, ort.Tensor>> = [];
  return { calls, inputNames: s.inputNames, outputNames: s.outputNames, run: (f: Record<string, ort.Tensor>, o?: string[]) => (calls.push(f), s.run(f, o)) };
}

/** A one-line BLIP5010 naming `who`, for a rejects() check. */
const unreadable = (who: string) => (e: unknown) => {
  assert.equal((e as { code?: string }).code, 'BLIP5010', String(e));
  const message = (e as Error).message;
  assert.ok(message.startsWith(`cannot read image ${who}: `) && !message.includes('\n'), message);
  return true;
};

test('generate(): an unreadable last image fails the call before any encode or decoder run, naming it', async () => {
  const dir = await compileFixture('blip-caption-a', tmp.dir);
  const manifest = readManifest(dir);
  const opts = { intraOpNumThreads: 1 };
  const encode = recording((await ort.InferenceSession.create(join(dir, 'encode.onnx'), opts)) as unknown as Session);
  const decoder = recording((await ort.InferenceSession.create(join(dir, 'decoder.onnx'), opts)) as unknown as Session);
  const ctx: GenerateContext = { manifest, preprocess: preprocessFromManifest(manifest.preprocess), tokenizer: loadTokenizer(join(dir, manifest.tokenizer!.dir)), encode, decoder };
  const cases: Array<[ImageInput, string]> = [
    [MISSING, MISSING],
    [CORRUPT, CORRUPT],
    [{ name: 'upload.png', bytes: new Uint8Array(readFileSync(CORRUPT)) }, 'upload.png'],
    [new Uint8Array(readFileSync(CORRUPT)), '#10'],
  ];
  for (const [last, who] of cases) {
    await assert.rejects(generateForImages(ctx, goodThen(last), { batchSize: 4, maxNewTokens: 4 }), unreadable(who));
    assert.equal(encode.calls.length + decoder.calls.length, 0, `no session ran before ${who} failed`);
  }
  // the good ones alone run, in batches of 4, each batch timing its share of the up-front read
  const res = await generateForImages(ctx, goodThen(A), { batchSize: 4, maxNewTokens: 4 });
  assert.equal(res.length, 11);
  for (const r of res) assert.ok(r.timingsMs.preprocess > 0 && r.timingsMs.total >= r.timingsMs.preprocess, JSON.stringify(r.timingsMs));
  assert.equal(encode.calls.reduce((n, f) => n + f.pixel_values.dims[0], 0), 11);
});

test('load().generate(), staged too: no session runs (nor, staged, opens) before an unreadable image fails the call', async () => {
  const dir = await compileFixture('blip-caption-a', tmp.dir);
  const proto = (ort.InferenceSession as unknown as { prototype: unknown }).prototype as { run: (...a: unknown[]) => Promise<unknown> };
  const create = ort.InferenceSession.create;
  const run = proto.run;
  for (const staged of [false, true]) {
    let runs = 0;
    let opened = 0;
    const model = await load(dir, { threads: 1, staged });
    proto.run = function (this: ort.InferenceSession, ...a: unknown[]) {
      runs++;
      return run.apply(this, a);
    };
    (ort.InferenceSession as { create: unknown }).create = (...a: unknown[]) => (opened++, (create as (...b: unknown[]) => unknown).apply(ort.InferenceSession, a));
    try {
      await assert.rejects(model.generate(goodThen(CORRUPT), { batchSize: 4, maxNewTokens: 4 }), unreadable(CORRUPT));
    } finally {
      proto.run = run;
      (ort.InferenceSession as { create: unknown }).create = create;
      await model.close();
    }
    assert.deepEqual({ staged, runs, opened }, { staged, runs: 0, opened: 0 });
  }
});

test('itm() and embedImages(): an unreadable last image fails the call before any retrieval.onnx run, naming it', async () => {
  const dir = await compileFixture('blip-itm-a', tmp.dir);
  const manifest = readManifest(dir);
  const retrieval = recording((await ort.InferenceSession.create(join(dir, 'retrieval.onnx'), { intraOpNumThreads: 1 })) as unknown as Session);
  const ctx: RetrievalContext = { manifest, preprocess: preprocessFromManifest(manifest.preprocess), tokenizer: loadTokenizer(join(dir, manifest.tokenizer!.dir)), retrieval };
  await assert.rejects(itmPairs(ctx, goodThen(MISSING), ['a dog'], { batchSize: 4 }), unreadable(MISSING));
  const texts = goodThen(A).map((_, i) => `text ${i}`);
  await assert.rejects(itmPairs(ctx, goodThen(new Uint8Array(readFileSync(CORRUPT))), texts, { batchSize: 4 }), unreadable('#10'));
  await assert.rejects(embedImages(ctx, goodThen(CORRUPT), { batchSize: 4 }), unreadable(CORRUPT));
  assert.equal(retrieval.calls.length, 0);
  assert.equal((await itmPairs(ctx, goodThen(B), texts, { batchSize: 4 })).length, 11);
  assert.equal((await embedImages(ctx, goodThen(B), { batchSize: 4 })).length, 11);
});

test('itm() and embedTexts(): a text too long for the model, last, fails the call before any retrieval.onnx run', async () => {
  for (const fixture of ['blip-itm-a', 'blip2-itm-a']) {
    const dir = await compileFixture(fixture, tmp.dir);
    const manifest = readManifest(dir);
    const retrieval = recording((await ort.InferenceSession.create(join(dir, 'retrieval.onnx'), { intraOpNumThreads: 1 })) as unknown as Session);
    const ctx: RetrievalContext = { manifest, preprocess: preprocessFromManifest(manifest.preprocess), tokenizer: loadTokenizer(join(dir, manifest.tokenizer!.dir)), retrieval };
    const texts = [...Array.from({ length: 10 }, (_, i) => `text ${i}`), 'a dog '.repeat(40)];
    const tooLong = (e: unknown) => (assert.equal((e as { code?: string }).code, 'BLIP5032', String(e)), assert.match((e as Error).message, /^text "a dog a dog .*" is \d+ tokens; this model reads at most \d+: shorten it$/), true);
    await assert.rejects(itmPairs(ctx, goodThen(A), texts, { batchSize: 4 }), tooLong);
    await assert.rejects(itmPairs(ctx, [A], texts, { batchSize: 4 }), tooLong);
    await assert.rejects(embedTexts(ctx, texts, { batchSize: 4 }), tooLong);
    assert.equal(retrieval.calls.length, 0, fixture);
    assert.equal((await embedTexts(ctx, texts.slice(0, 10), { batchSize: 4 })).length, 10);
    assert.equal(retrieval.calls.length, 3);
  }
});

test('prepareImages: sizes checked for every batch up front; past keepBytes an image is read again at its batch', async () => {
  const cfg = preprocessFromHf({ do_resize: true, size: { height: 24, width: 24 }, resample: 3, do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: [0.5, 0.4, 0.3], image_std: [0.2, 0.3, 0.4] });
  // a model that does not resize: the wrong size in the last batch, or two sizes in one batch, fail before batch 0 is built
  const fixed = { ...cfg, do_resize: false };
  await assert.rejects(prepareImages([A, A, A, B], [[0, 1], [2, 3]], fixed, { modelSize: { width: 37, height: 23 } }), (e: unknown) => {
    assert.equal((e as { code?: string }).code, 'BLIP5011');
    assert.match((e as Error).message, new RegExp(`^${B} is 64x48, but this model takes 37x23 images`));
    return true;
  });
  await assert.rejects(prepareImages([A, A, A, B], [[0, 1], [2, 3]], fixed), (e: unknown) => {
    assert.equal((e as Error).message, `${B} is 64x48 but the batch is 37x23; with do_resize false all images must have the same size`);
    return true;
  });

  const a = join(tmp.dir, 'a.png');
  const b = join(tmp.dir, 'b.jpg');
  copyFileSync(A, a);
  copyFileSync(B, b);
  const plan = [[0, 1], [2, 0]];
  const all = await prepareImages([a, b, b], plan, cfg);
  const want = [(await all.pixels(0)).tensor.data, (await all.pixels(1)).tensor.data];
  // none kept: every image read again at its batch, to the same pixel values
  const none = await prepareImages([a, b, b], plan, cfg, { keepBytes: 0 });
  assert.deepEqual([(await none.pixels(0)).tensor.data, (await none.pixels(1)).tensor.data], want);
  // room for one resized image (24 x 24 x 3 bytes): a is kept from the up-front read, b read again at its batch
  const one = await prepareImages([a, b], [[0], [1]], cfg, { keepBytes: 24 * 24 * 3 });
  rmSync(a);
  rmSync(b);
  assert.deepEqual((await one.pixels(0)).tensor.dims, [1, 3, 24, 24]);
  await assert.rejects(one.pixels(1), unreadable(b));
});
