// The task API end to end on every generating fixture: compile() the checkpoint with its shipped
// graph, load() the artifact, and generate() from the image files and the prompt text alone —
// preprocessing, prompt building per family (BLIP caption prefix, BLIP VQA question, BLIP-2 OPT
// placeholders or the legacy prepended prefix, T5 encoder prompt, InstructBLIP instruction into
// both tokenizers, left padding of different prompts), encode, decoding and text. Greedy, beam-3 and
// both with penalties must give transformers' new tokens (greedy: up to a recorded top-2 margin
// below 1e-4, after which a float difference may legitimately pick the other token) and its text.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { load, type BlipModel, type GenerateOptions } from '../../../src/index.js';
import { compileFixture, expected, expectedRow, fixturePath, imagesOf, tempDir, type CaseRecord, type GenRecord } from './harness.js';
import { pyStrip } from '../../../runtime/generation/pythonSpace.js';

const FIXTURES = [
  'blip-caption-a',
  'blip-caption-b',
  'blip-vqa-a',
  'blip2-opt-a',
  'blip2-opt-b',
  'blip2-opt-legacy',
  'blip2-t5-a',
  'instructblip-vicuna-a',
  'instructblip-vicuna-b',
  'instructblip-t5-a',
  'blip2-llama-a',
];

const tmp = tempDir('blip-tasks-gen-');
after(() => tmp.remove());

/** transformers' kwargs as task options; settings it left at its defaults are set explicitly (the graphs carry other defaults). */
function optionsOf(g: GenRecord): GenerateOptions {
  const k = g.kwargs as Record<string, number | undefined>;
  return {
    maxNewTokens: k.max_new_tokens,
    numBeams: k.num_beams ?? 1,
    minNewTokens: k.min_new_tokens ?? 0,
    repetitionPenalty: k.repetition_penalty ?? 1,
    noRepeatNgramSize: k.no_repeat_ngram_size ?? 0,
    lengthPenalty: k.length_penalty ?? 1,
    earlyStopping: false,
    doSample: false,
  };
}

function promptOf(c: CaseRecord): string | string[] | undefined {
  return c.questions ?? c.prompt ?? undefined;
}

for (const fixture of FIXTURES) {
  const present = existsSync(fixturePath(fixture, 'expected.json'));
  test(`generate() from image files == transformers: ${fixture}`, { skip: !present && `fixture ${fixture} not present` }, async (t) => {
    const model = await load(await compileFixture(fixture, tmp.dir), { threads: 1 });
    try {
      const exp = expected(fixture);
      const images = imagesOf(exp);
      const eos = model.manifest.text.eos_token_id;
      let runs = 0;
      let skipped = 0;
      for (const c of exp.cases!) {
        for (const g of c.generation) {
          const res = await model.generate(images, { ...optionsOf(g), prompt: promptOf(c) });
          assert.equal(res.length, images.length);
          res.forEach((r, b) => {
            const e = expectedRow(g, b, eos);
            const what = `${fixture} ${c.name} ${g.name} row ${b}`;
            if (e.certain === e.ids.length) {
              assert.deepEqual(r.tokenIds, e.ids, what);
              assert.equal(r.text, pyStrip(g.text[b]), `${what}: text`);
            } else {
              assert.deepEqual(r.tokenIds.slice(0, e.certain), e.ids.slice(0, e.certain), what);
              skipped++;
            }
            if (g.sequences_scores) assert.ok(Math.abs(r.score! - g.sequences_scores[b]) < 1e-3, `${what}: score ${r.score} vs ${g.sequences_scores[b]}`);
            for (const k of ['preprocess', 'encode', 'prefill', 'decode', 'total'] as const) assert.ok(r.timingsMs[k] >= 0, k);
          });
          runs++;
        }
      }
      assert.ok(runs >= 4, `${runs} generations`);
      // VQA and InstructBLIP need their question / instruction; the others caption without one
      const needs = fixture === 'blip-vqa-a' || fixture.startsWith('instructblip');
      assert.equal(model.promptStyle?.required, needs);
      if (needs) await assert.rejects(model.generate(images, { maxNewTokens: 2 }), (e: { code?: string; message?: string }) => e.code === 'BLIP5030' && /needs the (question|instruction)/.test(e.message ?? ''));
      else assert.equal((await model.generate(images, { maxNewTokens: 2 })).length, images.length);
      t.diagnostic(`${runs} generations x ${images.length} images identical to transformers${skipped ? ` (${skipped} rows compared up to a near tie)` : ''}`);
    } finally {
      await model.close();
    }
  });
}

// ---- batching, sampling, streaming, several sequences: on two small models ----

let caption: BlipModel;
let opt: BlipModel;
before(async () => {
  caption = await load(await compileFixture('blip-caption-a', tmp.dir), { threads: 1 });
  opt = await load(await compileFixture('blip2-opt-a', tmp.dir), { threads: 1 });
});
after(async () => {
  await caption?.close();
  await opt?.close();
});

const imgs = () => [fixturePath('images', 'rgb_37x23.png'), fixturePath('images', 'photo_64x48.jpg'), fixturePath('images', 'gray_45x31.png')];

test('results do not depend on the batch size; images as bytes and as pixels give the same as paths', async () => {
  const { readFileSync } = await import('node:fs');
  const { decodeImage } = await import('../../../runtime/preprocess/image.js');
  for (const m of [caption, opt]) {
    const o: GenerateOptions = { maxNewTokens: 10, prompt: m === opt ? ['a photo of', 'Question: how many dogs are there? Answer:', 'a'] : undefined };
    const one = await m.generate(imgs(), { ...o, batchSize: 1 });
    const all = await m.generate(imgs(), { ...o, batchSize: 3 });
    assert.deepEqual(all.map((r) => r.tokenIds), one.map((r) => r.tokenIds));
    const bytes = await m.generate(imgs().map((p) => new Uint8Array(readFileSync(p))), o);
    const pixels = await m.generate(await Promise.all(imgs().map((p) => decodeImage(p))), o);
    assert.deepEqual(bytes.map((r) => r.text), all.map((r) => r.text));
    assert.deepEqual(pixels.map((r) => r.text), all.map((r) => r.text));
  }
});

test('sampling: reproducible for a seed, independent of the batch size, other seeds differ', async () => {
  const o: GenerateOptions = { doSample: true, topP: 0.9, maxNewTokens: 12, seed: 7 };
  const a = await caption.generate(imgs(), o);
  const b = await caption.generate(imgs(), { ...o, batchSize: 1 });
  assert.deepEqual(b.map((r) => r.tokenIds), a.map((r) => r.tokenIds));
  const c = await caption.generate(imgs(), { ...o, seed: 8 });
  assert.notDeepEqual(c.map((r) => r.tokenIds), a.map((r) => r.tokenIds));
  const greedy = await caption.generate(imgs(), { maxNewTokens: 12 });
  assert.notDeepEqual(a.map((r) => r.tokenIds), greedy.map((r) => r.tokenIds));
  // explicit per-sequence seeds: sequence j of image i is seeded by seeds[i * n + j] alone
  const seeds = [11, 12, 21, 22, 31, 32];
  const many = await caption.generate(imgs(), { ...o, seed: seeds, numReturnSequences: 2 });
  assert.equal(many.length, 3);
  for (const r of many) assert.equal(r.sequences!.length, 2);
  const alone = await caption.generate([imgs()[1]], { ...o, seed: [22] });
  assert.deepEqual(many[1].sequences![1].tokenIds, alone[0].tokenIds);
  assert.deepEqual(many[1].tokenIds, many[1].sequences![0].tokenIds);
});

test('beam search returns numReturnSequences ranked sequences with scores', async () => {
  const r = await opt.generate(imgs().slice(0, 2), { numBeams: 3, numReturnSequences: 3, maxNewTokens: 8 });
  for (const x of r) {
    assert.equal(x.sequences!.length, 3);
    const s = x.sequences!.map((q) => q.score!);
    assert.ok(s[0] >= s[1] && s[1] >= s[2], JSON.stringify(s));
  }
});

test('onToken streams each row; the pieces concatenate to its text (greedy, sampling and beam search)', async () => {
  for (const o of [{}, { doSample: true, seed: 3 }, { numBeams: 3 }] as GenerateOptions[]) {
    const pieces = new Map<number, string[]>();
    const ids = new Map<number, number[]>();
    const res = await opt.generate(imgs(), {
      ...o,
      maxNewTokens: 12,
      prompt: 'a photo of',
      onToken: (row, text, id) => {
        pieces.set(row, [...(pieces.get(row) ?? []), text]);
        ids.set(row, [...(ids.get(row) ?? []), id]);
      },
    });
    res.forEach((r, i) => {
      assert.equal(pieces.get(i)!.join(''), r.text, JSON.stringify(o));
      assert.deepEqual(ids.get(i), r.tokenIds);
    });
  }
});

test('bad requests fail with BLIP5030 before running', async () => {
  const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;
  await assert.rejects(caption.generate(imgs(), { prompt: ['a', 'b'] }), code('BLIP5030'));
  await assert.rejects(caption.generate(imgs(), { doSample: true, seed: [1, 2] }), code('BLIP5030'));
  await assert.rejects(caption.generate(imgs(), { batchSize: 0 }), code('BLIP5030'));
  await assert.rejects(caption.generate(imgs(), { maxNewTokens: Infinity }), code('BLIP5030'));
  await assert.rejects(caption.generate(imgs(), { doSample: true, seed: 1.5 }), code('BLIP5030'));
  await assert.rejects(caption.generate(imgs(), { numBeams: 2, numReturnSequences: 3 }), code('BLIP5030'));
  await assert.rejects(caption.generate([fixturePath('images', 'nope.png')]), code('BLIP5010'));
  await assert.rejects(caption.itm(imgs(), ['x']), code('BLIP5044'));
});

test('a model whose prompt is required refuses a blank one (BLIP5030), naming which', async () => {
  const vqa = await load(await compileFixture('blip-vqa-a', tmp.dir), { threads: 1 });
  try {
    await assert.rejects(vqa.generate(imgs().slice(0, 2), { prompt: ['what is it?', '  '] }), (e: unknown) => (e as { code?: string }).code === 'BLIP5030' && /^prompt 1 is empty: this BLIP question-answering model needs the question$/.test((e as Error).message));
    assert.equal((await vqa.generate(imgs().slice(0, 1), { prompt: 'what is it?', maxNewTokens: 3 })).length, 1);
  } finally {
    await vqa.close();
  }
});

test('close() lets running calls finish, then refuses new ones', async () => {
  const m = await load(await compileFixture('blip-caption-a', tmp.dir), { threads: 1 });
  const want = await m.generate(imgs(), { maxNewTokens: 6 });
  const running = m.generate(imgs(), { maxNewTokens: 6 });
  await m.close();
  assert.deepEqual((await running).map((r) => r.tokenIds), want.map((r) => r.tokenIds));
  await assert.rejects(m.generate(imgs()), (e: unknown) => (e as { code?: string }).code === 'BLIP5043' && /was closed/.test((e as Error).message));
});

test('JavaScript callers get named errors, not TypeErrors: a misspelt option, a non-array, a value that is no image', async () => {
  const says = (c: string, message: RegExp) => (e: unknown) => (assert.equal((e as { code?: string }).code, c, String(e)), assert.match((e as Error).message, message), true);
  const untyped = caption as unknown as { generate(images: unknown, opts?: unknown): Promise<unknown> };
  await assert.rejects(untyped.generate(imgs(), { maxTokens: 5 }), says('BLIP5030', /unknown option 'maxTokens'; did you mean 'maxNewTokens'\? \(the options: prompt, maxNewTokens, /));
  await assert.rejects(untyped.generate(imgs()[0]), says('BLIP5030', /^images must be an array \(one entry per image\), found the string "\/.*…"$/));
  await assert.rejects(untyped.generate(imgs(), 'greedy'), says('BLIP5030', /^options must be an object, found the string "greedy"$/));
  await assert.rejects(untyped.generate(imgs(), { noRepeatNgramSize: 1.5 }), says('BLIP5030', /noRepeatNgramSize must be an integer >= 0, found 1\.5/));
  await assert.rejects(untyped.generate(imgs(), { doSample: 'yes' }), says('BLIP5030', /doSample must be true or false, found the string "yes"/));
  for (const [bad, found] of [[null, 'null'], [5, 'number 5'], [{ name: 'x' }, 'an object with name: string'], [{ name: 'x', bytes: 'a/path.png' }, 'an object with name: string, bytes: string']] as const) {
    await assert.rejects(untyped.generate([bad]), says('BLIP5010', new RegExp(`^cannot read image #0: expected a file path, .* found ${found}$`)));
  }
  // null options are no options
  assert.equal(((await untyped.generate([imgs()[0]], null)) as unknown[]).length, 1);
});
