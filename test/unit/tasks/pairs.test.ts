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
import { embedImages, embedTexts, itmPairs, type RetrievalContext } from '../../../runtime/tasks/retrieval.js';
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

test('an artifact without pair_image: one image row per pair, no pair_image fed', async () => {
  const dir = await compileFixture('blip-itm-a', tmp.dir);
  const manifest = readManifest(dir);
  const calls: Array<Record<string, ort.Tensor>> = [];
  const retrieval = {
    inputNames: ['pixel_values', 'input_ids', 'attention_mask'],
    outputNames: ['itm_score', 'itc_score'],
    async run(f: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
      calls.push(f);
      const n = f.input_ids.dims[0];
      assert.equal(f.pixel_values.dims[0], n);
      return { itm_score: new ort.Tensor('float32', new Float32Array(n).fill(0.5), [n]), itc_score: new ort.Tensor('float32', new Float32Array(n).fill(0.25), [n]) };
    },
  };
  const ctx: RetrievalContext = { manifest, preprocess: preprocessFromManifest(manifest.preprocess), tokenizer: loadTokenizer(join(dir, manifest.tokenizer!.dir)), retrieval };
  const r = await itmPairs(ctx, [A], TEXTS);
  assert.deepEqual(r, TEXTS.map(() => ({ itm: 0.5, itc: 0.25 })));
  assert.equal(calls[0].pixel_values.dims[0], 4);
  assert.equal(calls[0].pair_image, undefined);
});
