// A full-size BLIP-base captioning checkpoint with random weights (made by
// test/oracle/make_fullsize.py into .bench/, not committed: ~900 MB), compiled and compared with
// transformers: image embeddings, and decoder logits teacher-forced through the KV cache. Skipped
// where the checkpoint has not been made.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../../../src/lower/compile.js';
import { readManifest } from '../../../src/artifact/manifest.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { close, emptyPast, i64, loadModel, nextPast, rows, session, stepPositions, tmp } from './harness.js';
import * as ort from 'onnxruntime-node';

const BENCH = '.bench/blip-base-random';
const skip = existsSync(join(BENCH, 'checkpoint', 'model.safetensors')) ? false : `no ${BENCH} (make it with test/oracle/make_fullsize.py)`;

test('BLIP-base (random weights, 224 M parameters) compiles and matches transformers', { skip, timeout: 600_000 }, async (t) => {
  const root = tmp('fullsize-');
  try {
    const { model, text } = loadModel('graphs/blip-caption.blip');
    const out = join(root, 'out');
    const r = await compile({ model, graphFile: 'graphs/blip-caption.blip', graphText: text, weights: join(BENCH, 'checkpoint'), out });
    const exp = JSON.parse(readFileSync(join(BENCH, 'expected.json'), 'utf8'));
    assert.equal(r.parameters, exp.parameters, "transformers' parameter count: the tied LM head is stored once");
    const st = SafetensorsFile.open(join(BENCH, 'expected.safetensors'));
    const arr = (n: string) => ({ data: st.readFloat32(n), shape: st.info(n)!.shape });
    const m = readManifest(out);
    const diffs: Record<string, number> = {};
    const e = await (await session(join(out, 'encode.onnx'))).run({ pixel_values: new ort.Tensor('float32', arr('pixel_values').data, arr('pixel_values').shape) });
    close('image_embeds', e.image_embeds.data as Float32Array, arr('image_embeds').data, diffs);
    const dec = await session(join(out, 'decoder.onnx'));
    const fixed = Object.fromEntries(m.decoder!.from_encode.map((n) => [n, e[n]]));
    const ids: number[][] = exp.decoder_input_ids;
    const mask: number[][] = exp.attention_mask;
    const logits = arr('decoder_logits');
    let past = emptyPast(dec, 2, m.decoder!.kv_heads, m.decoder!.head_dim);
    for (let s = 0; s < ids[0].length; s++) {
      const step = ids.map((row) => [row[s]]);
      const o = await dec.run({ ...fixed, ...past, ...stepPositions(dec, s, step), input_ids: i64(step), attention_mask: i64(mask.map((row) => row.slice(0, s + 1))) });
      close('decoder logits (step by step)', o.logits.data as Float32Array, rows(logits, s, s + 1), diffs);
      past = nextPast(o);
    }
    t.diagnostic(Object.entries(diffs).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ') + `; compile ${r.seconds.toFixed(1)} s`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
