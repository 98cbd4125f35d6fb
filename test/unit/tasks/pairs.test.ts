// retrieval.onnx takes each image once: pair p is text p with image row pair_image[p]
// (src/lower/pairs.ts). Scoring one image against several texts must encode it once and give the
// scores of scoring each pair on its own; artifacts without pair_image still get one image per pair.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readManifest } from '../../../src/artifact/manifest.js';
import { preprocessFromManifest } from '../../../runtime/preprocess/config.js';
import { loadTokenizer } from '../../../runtime/tokenizers/hf.js';
import { calls, embedImages, embedTexts, itmPairs, type RetrievalContext } from '../../../runtime/tasks/retrieval.js';
import { compileFixture, fixturePath, tempDir } from './harness.js';

const tmp = tempDir('blip-pairs-');
after(() => tmp.remove());

function recording(s: { inputNames: readonly string[]; outputNames: readonly string[]; run(f: Record<string, ort.Tensor>, o?: string[]): Promise<Record<string, ort.Tensor>> }) {
  const calls: Array<Record<string, ort.Tensor>> = [];
  return { calls, inputNames: s.inputNames, outputNames: s.outputNames, run: (f: Record<string, ort.Tensor>, o?: string[]) => (calls.push(f), s.run(f, o)) };
}

const A = fixturePath('images', 'rgb_37x23.png');
const B = fixturePath('images', 'blocks_1000x700.png');
const TEXTS = ['a red square', 'two dogs on a beach', 'blocks', 'nothing at all'];

for (const fixture of ['blip-itm-a', 'blip2-itm-a']) {
  test(`${fixture}: each image encoded once per call, the scores of scoring every pair alone`, { skip: !existsSync(fixturePath(fixture, 'expected.json')) && 'fixture not present' }, async () => {
    const dir = await compileFixture(fixture, tmp.dir);
    const manifest = readManifest(dir);
    assert.deepEqual(manifest.graphs.retrieval!.inputs.map((i) => i.name), ['pixel_values', 'input_ids', 'attention_mask', 'pair_image']);
    const session = await ort.InferenceSession.create(join(dir, 'retrieval.onnx'), { intraOpNumThreads: 1 });
    try {
      const retrieval = recording(session as never);
      const ctx: RetrievalContext = { manifest, preprocess: preprocessFromManifest(manifest.preprocess), tokenizer: loadTokenizer(join(dir, manifest.tokenizer!.dir)), retrieval };
      const images = [A, A, B, A, B];
      const texts = [TEXTS[0], TEXTS[1], TEXTS[2], TEXTS[3], TEXTS[0]];
      const together = await itmPairs(ctx, images, texts, { batchSize: 5 });
      assert.equal(retrieval.calls.length, 1);
      assert.deepEqual(retrieval.calls[0].pixel_values.dims[0], 2, 'two distinct images, two rows');
      assert.deepEqual(Array.from(retrieval.calls[0].pair_image.data as BigInt64Array, Number), [0, 0, 1, 0, 1]);
      const alone: Array<{ itm: number; itc: number }> = [];
      for (let i = 0; i < images.length; i++) alone.push(...(await itmPairs(ctx, [images[i]], [texts[i]])));
      together.forEach((r, i) => {
        assert.ok(Math.abs(r.itm - alone[i].itm) <= 1e-6, `pair ${i} itm ${r.itm} vs ${alone[i].itm}`);
        assert.ok(Math.abs(r.itc - alone[i].itc) <= 1e-6, `pair ${i} itc ${r.itc} vs ${alone[i].itc}`);
      });
      // an image's consecutive pairs stay in one call: A's three and B's three in calls of at
      // most 4 pairs are two calls of one image each, not [A A A B] + [B B] (B encoded twice)
      retrieval.calls.length = 0;
      const grouped = await itmPairs(ctx, [A, A, A, B, B, B], [...TEXTS.slice(0, 3), ...TEXTS.slice(1, 4)], { batchSize: 4 });
      assert.deepEqual(retrieval.calls.map((c) => [c.pixel_values.dims[0], c.input_ids.dims[0]]), [[1, 3], [1, 3]]);
      const oneCall = await itmPairs(ctx, [A, A, A, B, B, B], [...TEXTS.slice(0, 3), ...TEXTS.slice(1, 4)], { batchSize: 6 });
      assert.equal(retrieval.calls.length, 3);
      grouped.forEach((r, i) => assert.ok(Math.abs(r.itm - oneCall[i].itm) <= 1e-6, `pair ${i} itm ${r.itm} vs ${oneCall[i].itm}`));
      // embeddings: the other side is a one-row stand-in
      retrieval.calls.length = 0;
      const ie = await embedImages(ctx, [A, B]);
      assert.deepEqual([retrieval.calls[0].pixel_values.dims[0], retrieval.calls[0].input_ids.dims[0]], [2, 1]);
      const te = await embedTexts(ctx, TEXTS);
      assert.deepEqual([retrieval.calls[1].pixel_values.dims[0], retrieval.calls[1].input_ids.dims[0]], [1, 4]);
      assert.equal(ie.length, 2);
      assert.equal(te.length, 4);
      // each embedding alone is the same
      const [ia] = await embedImages(ctx, [A]);
      const [tb] = await embedTexts(ctx, [TEXTS[1]]);
      assert.ok(ia.data.every((v, i) => Math.abs(v - ie[0].data[i]) <= 1e-6));
      assert.ok(tb.data.every((v, i) => Math.abs(v - te[1].data[i]) <= 1e-6));
    } finally {
      await session.release();
    }
  });
}

test("calls: at most batchSize pairs, split where an image's run of pairs ends", () => {
  assert.deepEqual(calls([3, 3], 4), [[0, 3], [3, 6]]);
  assert.deepEqual(calls([2, 2, 2], 4), [[0, 4], [4, 6]]);
  assert.deepEqual(calls([1, 1, 1, 1, 1], 2), [[0, 2], [2, 4], [4, 5]]);
  // a run longer than a call: calls of it alone, its remainder shared with the next runs
  assert.deepEqual(calls([1, 5, 1], 2), [[0, 1], [1, 3], [3, 5], [5, 7]]);
  assert.deepEqual(calls([5], 2), [[0, 2], [2, 4], [4, 5]]);
  assert.deepEqual(calls([4], 16), [[0, 4]]);
  assert.deepEqual(calls([], 3), []);
  // every pair in exactly one call, in order, none over the cap
  for (const [runs, bs] of [[[3, 1, 4, 1, 5, 9, 2, 6], 4], [[7, 7, 7], 3], [[1, 2, 3], 1]] as Array<[number[], number]>) {
    const c = calls(runs, bs);
    const n = runs.reduce((a, b) => a + b, 0);
    assert.deepEqual(c.flatMap(([s, e]) => Array.from({ length: e - s }, (_, k) => s + k)), Array.from({ length: n }, (_, k) => k));
    assert.ok(c.every(([s, e]) => e > s && e - s <= bs));
  }
});

test('an artifact without pair_image: one image row per pair, no pair_image fed', async () => {
  const dir = await compileFixture('blip-itm-a', tmp.dir);
  const manifest = readManifest(dir);
  const fed: Array<Record<string, ort.Tensor>> = [];
  const retrieval = {
    inputNames: ['pixel_values', 'input_ids', 'attention_mask'],
    outputNames: ['itm_score', 'itc_score'],
    async run(f: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
      fed.push(f);
      const n = f.input_ids.dims[0];
      assert.equal(f.pixel_values.dims[0], n);
      return { itm_score: new ort.Tensor('float32', new Float32Array(n).fill(0.5), [n]), itc_score: new ort.Tensor('float32', new Float32Array(n).fill(0.25), [n]) };
    },
  };
  const ctx: RetrievalContext = { manifest, preprocess: preprocessFromManifest(manifest.preprocess), tokenizer: loadTokenizer(join(dir, manifest.tokenizer!.dir)), retrieval };
  const r = await itmPairs(ctx, [A], TEXTS);
  assert.deepEqual(r, TEXTS.map(() => ({ itm: 0.5, itc: 0.25 })));
  assert.equal(fed[0].pixel_values.dims[0], 4);
  assert.equal(fed[0].pair_image, undefined);
  // every call is full: image runs do not matter when each pair has its own image row
  fed.length = 0;
  await itmPairs(ctx, [A, A, A, B, B, B], [...TEXTS.slice(0, 3), ...TEXTS.slice(1, 4)], { batchSize: 4 });
  assert.deepEqual(fed.map((f) => f.input_ids.dims[0]), [4, 2]);
});
