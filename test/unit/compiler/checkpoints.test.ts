// Checkpoints as users have them: sharded with an index, stored in float16 or bfloat16; and the
// --dtype fp16 output. The same fixture compiled from each layout is compared with transformers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../../../src/lower/compile.js';
import { readManifest } from '../../../src/artifact/manifest.js';
import { SafetensorsFile, encodeSafetensors } from '../../../src/weights/safetensors.js';
import { floatToHalf } from '../../../src/weights/float16.js';
import { FIXTURES, diff, emptyPast, expected, f32, i64, loadModel, nextPast, rows, session, stepPositions, tmp } from './harness.js';

const CAPTION = 'graphs/blip-caption.blip';
const FIXTURE = 'blip-caption-a';

type Tensor = { name: string; dtype: string; shape: number[]; data: Uint8Array };

function fixtureTensors(): Tensor[] {
  const st = SafetensorsFile.open(join(FIXTURES, FIXTURE, 'checkpoint', 'model.safetensors'));
  const ts = [...st.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: st.readRaw(t.name) }));
  st.close();
  return ts;
}

function toHalf(t: Tensor, dtype: 'F16' | 'BF16'): Tensor {
  const f = new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
  const h = dtype === 'F16' ? Uint16Array.from(f, floatToHalf) : Uint16Array.from(new Uint32Array(f.buffer, f.byteOffset, f.length), (u) => (u + 0x7fff + ((u >>> 16) & 1)) >>> 16);
  return { ...t, dtype, data: new Uint8Array(h.buffer) };
}

/** A checkpoint directory with the fixture's config files and `shards` as its weights. */
function writeCheckpoint(root: string, shards: Tensor[][]): string {
  const dir = join(root, 'checkpoint');
  mkdirSync(dir);
  const src = join(FIXTURES, FIXTURE, 'checkpoint');
  for (const f of readdirSync(src)) if (f !== 'model.safetensors') copyFileSync(join(src, f), join(dir, f));
  if (shards.length === 1) writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(shards[0]));
  else {
    const weight_map: Record<string, string> = {};
    shards.forEach((ts, i) => {
      const name = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
      writeFileSync(join(dir, name), encodeSafetensors(ts));
      for (const t of ts) weight_map[t.name] = name;
    });
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map }));
  }
  return dir;
}

/** Compile, then the max difference of the greedy-step logits (prefill + 3 steps) to transformers, relative to tolerance. */
async function greedyError(weights: string, out: string, dtype: 'float32' | 'float16' = 'float32'): Promise<number> {
  const { model, text } = loadModel(CAPTION);
  await compile({ model, graphFile: CAPTION, graphText: text, weights, out, dtype });
  const m = readManifest(out);
  const exp = expected(FIXTURE);
  const c = exp.json.cases.find((x: { name: string }) => x.name === 'prompt');
  const greedy = c.generation.find((g: { name: string }) => g.name === 'greedy');
  const steps = exp.array('prompt/greedy/step_logits');
  const e = await (await session(join(out, 'encode.onnx'))).run({ pixel_values: f32(exp.array('pixel_values')) });
  const dec = await session(join(out, 'decoder.onnx'));
  const fixed = Object.fromEntries(m.decoder!.from_encode.map((n) => [n, e[n]]));
  let past = emptyPast(dec, 2, m.decoder!.kv_heads, m.decoder!.head_dim);
  let ids: number[][] = c.decoder_input_ids;
  let len = 0;
  let worst = 0;
  for (let step = 0; step < 4; step++) {
    len += ids[0].length;
    const o = await dec.run({ ...fixed, ...past, ...stepPositions(dec, len - ids[0].length, ids), input_ids: i64(ids), attention_mask: i64(ids.map(() => Array(len).fill(1))) });
    const d = diff(o.logits.data as Float32Array, rows(steps, step, step + 1));
    worst = Math.max(worst, d.max / d.tol);
    past = nextPast(o);
    ids = greedy.new_tokens.map((r: number[]) => [r[step]]);
  }
  return worst;
}

test('a sharded checkpoint (index + 3 shards) compiles to the same weights as the single file', async () => {
  const root = tmp('shards-');
  try {
    const ts = fixtureTensors();
    const single = writeCheckpoint(join(root), [ts]);
    const shardedRoot = join(root, 'sharded');
    mkdirSync(shardedRoot);
    const sharded = writeCheckpoint(shardedRoot, [ts.slice(0, 30), ts.slice(30, 60), ts.slice(60)]);
    assert.ok((await greedyError(single, join(root, 'a'))) <= 1);
    assert.ok((await greedyError(sharded, join(root, 'b'))) <= 1);
    assert.deepEqual(readFileSync(join(root, 'a', 'weights.bin')), readFileSync(join(root, 'b', 'weights.bin')));
    assert.deepEqual(readManifest(join(root, 'b')).source.checkpoint.files, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a folder with model.safetensors and an index with shards reads the single file, as transformers does', async () => {
  const root = tmp('both-');
  try {
    const ts = fixtureTensors();
    const dir = writeCheckpoint(root, [ts]);
    // shards holding other values (BF16-rounded) beside the single file
    const other = ts.map((t) => toHalf(t, 'BF16'));
    writeFileSync(join(dir, 'model-00001-of-00001.safetensors'), encodeSafetensors(other));
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: Object.fromEntries(other.map((t) => [t.name, 'model-00001-of-00001.safetensors'])) }));
    assert.ok((await greedyError(dir, join(root, 'out'))) <= 1);
    assert.deepEqual(readManifest(join(root, 'out')).source.checkpoint.files, ['model.safetensors']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

for (const dtype of ['F16', 'BF16'] as const) {
  test(`a ${dtype} checkpoint compiles and stays close to transformers' float32 outputs`, async (t) => {
    const root = tmp('half-');
    try {
      const weights = writeCheckpoint(root, [fixtureTensors().map((t) => toHalf(t, dtype))]);
      const err = await greedyError(weights, join(root, 'out'));
      t.diagnostic(`max difference ${err.toFixed(1)} × tolerance`);
      // Rounding every weight to 11 (F16) or 8 (BF16) significant bits moves logits by ~1e-3..1e-2.
      assert.ok(err > 1, 'the rounded weights do change the outputs (the test reads the half-precision data)');
      assert.ok(err < (dtype === 'F16' ? 50 : 500), `error ${err} × tolerance`);
      assert.deepEqual(readManifest(join(root, 'out')).source.checkpoint.dtypes, { [dtype]: fixtureTensors().length });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}

test('--dtype fp16 halves the weights and stays close to float32', async (t) => {
  const root = tmp('fp16-');
  try {
    const weights = join(FIXTURES, FIXTURE, 'checkpoint');
    const e32 = await greedyError(weights, join(root, 'f32'));
    const e16 = await greedyError(weights, join(root, 'f16'), 'float16');
    t.diagnostic(`max difference fp32 ${e32.toFixed(3)}, fp16 ${e16.toFixed(1)} × tolerance`);
    assert.ok(e32 <= 1);
    assert.ok(e16 < 50, `fp16 error ${e16} × tolerance`);
    const size = (d: string) => statSync(join(root, d, 'weights.bin')).size;
    assert.ok(size('f16') < 0.55 * size('f32'), `${size('f16')} vs ${size('f32')}`);
    assert.equal(readManifest(join(root, 'f16')).dtype, 'float16');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('float16 weights are read exactly: an F16 checkpoint compiled --dtype fp16 gives the bytes of the float32 one compiled --dtype fp16', async () => {
  const root = tmp('f16exact-');
  try {
    const { model, text } = loadModel(CAPTION);
    const weights = writeCheckpoint(root, [fixtureTensors().map((t) => toHalf(t, 'F16'))]);
    await compile({ model, graphFile: CAPTION, graphText: text, weights, out: join(root, 'from-f16'), dtype: 'float16' });
    await compile({ model, graphFile: CAPTION, graphText: text, weights: join(FIXTURES, FIXTURE, 'checkpoint'), out: join(root, 'from-f32'), dtype: 'float16' });
    assert.deepEqual(readFileSync(join(root, 'from-f16', 'weights.bin')), readFileSync(join(root, 'from-f32', 'weights.bin')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
