// itm() / embedImages() / embedTexts() on the retrieval fixtures, from image files and raw text:
// ITM probabilities, ITC similarities (the diagonal pairs and, by broadcasting one image over the
// texts, the whole similarity matrix) and the normalised embeddings within 1e-4 of transformers.
// Also load(): what it refuses, and methods that do not fit the model.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, load } from '../../../src/index.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { compileFixture, expected, fixturePath, imagesOf, tempDir } from './harness.js';

const TOL = 1e-4;
const tmp = tempDir('blip-tasks-itm-');
after(() => tmp.remove());

function close(what: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= TOL, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

for (const fixture of ['blip-itm-a', 'blip-itm-b', 'blip2-itm-a']) {
  test(`itm / itc / embeddings from image files == transformers: ${fixture}`, { skip: !existsSync(fixturePath(fixture, 'expected.json')) && 'fixture not present' }, async () => {
    const model = await load(await compileFixture(fixture, tmp.dir), { threads: 1 });
    try {
      assert.equal(model.kind, 'retrieval');
      const exp = expected(fixture);
      const st = SafetensorsFile.open(fixturePath(fixture, 'expected.safetensors'));
      const images = imagesOf(exp);
      const texts = exp.retrieval!.texts;
      const r = await model.itm(images, texts);
      close('itm', r.map((x) => x.itm), exp.retrieval!.itm_probs);
      close('itc', r.map((x) => x.itc), exp.retrieval!.itc_scores);
      // one image against every text: row i of the ITC matrix; one pair per call gives the same
      const matrix = st.readFloat32('itc_matrix');
      for (let i = 0; i < images.length; i++) {
        const row = await model.itm([images[i]], texts, { batchSize: 1 });
        close(`itc_matrix row ${i}`, row.map((x) => x.itc), matrix.subarray(i * texts.length, (i + 1) * texts.length));
        close(`itm of pair ${i}`, [row[i].itm], [exp.retrieval!.itm_probs[i]]);
      }
      const ie = await model.embedImages(images);
      const featShape = st.info('image_feat')!.shape;
      assert.deepEqual(ie[0].dims, featShape.slice(1));
      close('image embeddings', Float32Array.from(ie.flatMap((e) => [...e.data])), st.readFloat32('image_feat'));
      const te = await model.embedTexts(texts);
      close('text embeddings', Float32Array.from(te.flatMap((e) => [...e.data])), st.readFloat32('text_feat'));
      await assert.rejects(model.generate(images), (e: { code?: string }) => e.code === 'BLIP5044');
    } finally {
      await model.close();
    }
  });
}

test('load() refuses a missing directory, another format version, an incomplete artifact and an unknown device', async () => {
  const src = await compileFixture('blip-itm-a', tmp.dir);
  const code = (c: string, re?: RegExp) => (e: unknown) => (e as { code?: string }).code === c && (!re || re.test((e as Error).message));
  await assert.rejects(load(join(tmp.dir, 'nothing-here')), code('BLIP5001', /does not exist/));
  const old = join(tmp.dir, 'old');
  cpSync(src, old, { recursive: true });
  const m = JSON.parse(readFileSync(join(old, 'manifest.json'), 'utf8'));
  writeFileSync(join(old, 'manifest.json'), JSON.stringify({ ...m, version: 999, compiler: { name: 'blip-graph', version: '9.0.0' } }));
  await assert.rejects(load(old), code('BLIP5003', /format version 999 \(written by blip-graph 9\.0\.0\).*Recompile/));
  const partial = join(tmp.dir, 'partial');
  cpSync(src, partial, { recursive: true });
  writeFileSync(join(partial, 'manifest.json'), JSON.stringify({ ...m, graphs: { ...m.graphs, retrieval: { ...m.graphs.retrieval, file: 'gone.onnx' } } }));
  await assert.rejects(load(partial), code('BLIP5004', /gone\.onnx/));
  await assert.rejects(load(src, { device: 'gpu' as never }), code('BLIP5040', /unknown device "gpu"/));
  const model = await load(src, { threads: 1 });
  assert.deepEqual(model.providers, { retrieval: 'cpu' });
  await model.close();
  await assert.rejects(model.itm([fixturePath('images', 'rgb_37x23.png')], ['x']), code('BLIP5043', /closed/));
});

test('itm / embedImages / embedTexts: JavaScript callers get named errors for arguments of the wrong kind', async () => {
  const model = await load(await compileFixture('blip-itm-a', tmp.dir), { threads: 1 });
  try {
    const m = model as unknown as Record<'itm' | 'embedImages' | 'embedTexts', (...a: unknown[]) => Promise<unknown>>;
    const img = imagesOf(expected('blip-itm-a'))[0];
    const says = (message: RegExp) => (e: unknown) => (assert.equal((e as { code?: string }).code, 'BLIP5030', String(e)), assert.match((e as Error).message, message), true);
    await assert.rejects(m.itm(img, ['a dog']), says(/^images must be an array \(one entry per image\), found /));
    await assert.rejects(m.itm([img], 'a dog'), says(/^texts must be an array of strings, found the string "a dog"$/));
    await assert.rejects(m.itm([img], ['a dog', 5]), says(/^texts\[1\] must be a string, found number 5$/));
    await assert.rejects(m.itm([img], ['a dog'], { batch: 2 }), says(/^unknown option 'batch' \(the options: batchSize, maxTextTokens, signal\)$/));
    await assert.rejects(m.itm([img], ['a dog'], { maxTextTokens: 2 }), says(/^maxTextTokens must be an integer of at least 3 \(the 2 special tokens and one of the text\), found 2$/));
    // a text past the encoder's positions: refused, or cut to its first tokens when asked
    const long = 'dog '.repeat(80);
    await assert.rejects(m.itm([img], [long]), (e: unknown) => (e as { code?: string }).code === 'BLIP5032');
    assert.equal(((await m.itm([img], [long], { maxTextTokens: 12 })) as unknown[]).length, 1);
    await assert.rejects(m.embedImages(null), says(/^images must be an array \(one entry per image\), found null$/));
    await assert.rejects(m.embedTexts([null]), says(/^texts\[0\] must be a string, found null$/));
    assert.equal(((await m.itm([img], ['a dog'], null)) as unknown[]).length, 1);
  } finally {
    await model.close();
  }
});

test('load(): a directory that is not a string, an unknown option (with a suggestion), null options', async () => {
  const loadUntyped = load as unknown as (dir: unknown, opts?: unknown) => Promise<{ close(): Promise<void> }>;
  await assert.rejects(loadUntyped(5), (e: unknown) => (e as { code?: string }).code === 'BLIP5001' && /directory as a string, found number 5$/.test((e as Error).message));
  const dir = await compileFixture('blip-itm-a', tmp.dir);
  await assert.rejects(loadUntyped(dir, { thread: 2 }), (e: unknown) => (e as { code?: string }).code === 'BLIP5030' && /unknown load option 'thread'; did you mean 'threads'\?/.test((e as Error).message));
  // wrong types are named, as the methods' options are (BLIP5030), before anything loads
  for (const [opts, re] of [
    ['cpu', /^load\(\) options must be an object, found the string "cpu"$/],
    [{ threads: '2' }, /^load option threads must be a number, found the string "2"$/],
    [{ threads: 0 }, /^load option threads must be a positive integer, found 0$/],
    [{ staged: 'yes' }, /^load option staged must be true or false, found the string "yes"$/],
    [{ deviceId: -1 }, /^load option deviceId must be a non-negative integer, found number -1$/],
  ] as const) {
    await assert.rejects(loadUntyped(dir, opts), (e: unknown) => (assert.equal((e as { code?: string }).code, 'BLIP5030', String(e)), assert.match((e as Error).message, re), true));
  }
  await (await loadUntyped(dir, null)).close();
});

test('compile(): options checked for JavaScript callers — an unknown one (with a suggestion), a dtype it does not make, missing paths', async () => {
  const compileUntyped = compile as unknown as (graph: unknown, opts?: unknown) => Promise<unknown>;
  const weights = fixturePath('blip-itm-a', 'checkpoint');
  const out = join(tmp.dir, 'never-written');
  const says = (re: RegExp) => (e: unknown) => (assert.equal((e as { code?: string }).code, 'BLIP4015'), assert.match((e as Error).message, re), true);
  await assert.rejects(compileUntyped('graphs/blip-itm.blip', { weights, out, dtpye: 'fp16' }), says(/unknown compile option 'dtpye'; did you mean 'dtype'\?/));
  await assert.rejects(compileUntyped('graphs/blip-itm.blip', { weights, out, dtype: 'bf16' }), says(/unknown dtype 'bf16' \(expected fp32 or fp16\)/));
  await assert.rejects(compileUntyped('graphs/blip-itm.blip', { weights }), says(/needs the out option/));
  await assert.rejects(compileUntyped('graphs/blip-itm.blip'), says(/needs options with weights and out/));
  assert.ok(!existsSync(out));
});
