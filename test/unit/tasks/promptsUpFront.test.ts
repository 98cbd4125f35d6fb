// generate() builds and checks every batch's prompts before its first model run (docs/api.md): a
// prompt too long for the model's positions (BLIP5032), one that fills them under the default
// length, one that reaches an explicit maxLength, or an empty one, placed after several batches of
// good ones, fails the call with no session run (nor, staged, opened). With several prompts the
// length error names the prompt (prompt[i], its image where that has a name) and gives its own
// length; one prompt for every image reads as before.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readManifest, type Manifest } from '../../../src/artifact/manifest.js';
import { load } from '../../../src/index.js';
import { preprocessFromManifest } from '../../../runtime/preprocess/config.js';
import { loadTokenizer } from '../../../runtime/tokenizers/hf.js';
import { buildInputs, generateForImages, type GenerateContext } from '../../../runtime/tasks/generate.js';
import type { ImageInput } from '../../../runtime/tasks/images.js';
import { compileFixture, countingSessionWork, fixturePath, tempDir } from './harness.js';

const tmp = tempDir('blip-prompts-up-front-');
after(() => tmp.remove());

const A = fixturePath('images', 'rgb_37x23.png');
const B = fixturePath('images', 'photo_64x48.jpg');
const IMAGES: ImageInput[] = Array.from({ length: 11 }, (_, i) => (i % 2 ? B : A));
/** Ten short prompts (more than two batches of 4), then `last`. */
const goodThen = (last: string): string[] => [...Array.from({ length: 10 }, (_, i) => `what is ${i}`), last];
const LONG = 'a dog '.repeat(900); // 1800 tokens and more, past every fixture's positions

type Session = { inputNames: readonly string[]; outputNames: readonly string[]; run(f: Record<string, ort.Tensor>, o?: string[]): Promise<Record<string, ort.Tensor>> };
function counting(s: Session, count: { runs: number }) {
  return { inputNames: s.inputNames, outputNames: s.outputNames, run: (f: Record<string, ort.Tensor>, o?: string[]) => (count.runs++, s.run(f, o)) };
}

async function context(fixture: string, count: { runs: number }, edit: (m: Manifest) => Manifest = (m) => m): Promise<GenerateContext> {
  const dir = await compileFixture(fixture, tmp.dir);
  const manifest = edit(readManifest(dir));
  const session = async (f: string) => counting((await ort.InferenceSession.create(join(dir, f), { intraOpNumThreads: 1 })) as unknown as Session, count);
  return {
    manifest,
    preprocess: preprocessFromManifest(manifest.preprocess),
    tokenizer: loadTokenizer(join(dir, manifest.tokenizer!.dir)),
    qformerTokenizer: manifest.qformer_tokenizer ? loadTokenizer(join(dir, manifest.qformer_tokenizer.dir)) : undefined,
    encode: await session('encode.onnx'),
    decoder: await session('decoder.onnx'),
  };
}

/** A one-line error with `code` whose message matches `message`, for a rejects() check. */
const refused = (code: string, message: RegExp) => (e: unknown) => {
  assert.equal((e as { code?: string }).code, code, String(e));
  assert.match((e as Error).message, message);
  assert.doesNotMatch((e as Error).message, /\n/);
  return true;
};
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('generate(): a prompt too long for the model, last of 11, fails before any encode or decoder run, naming it', async () => {
  const cases: Array<[string, RegExp]> = [
    ['blip-caption-a', /the prompt takes \d+ positions; the decoder has \d+: shorten the prompt$/],
    ['blip2-opt-a', /the prompt takes \d+ positions; the decoder has \d+: shorten the prompt$/],
    ['blip2-opt-legacy', /the prompt takes \d+ positions; the decoder has \d+: shorten the prompt$/],
    ['blip-vqa-a', /the question is \d+ tokens, the text encoder has \d+ positions; shorten it$/],
    ['instructblip-vicuna-a', /the instruction is \d+ tokens for the Q-Former, which has \d+ positions; shorten it$/],
  ];
  for (const [fixture, what] of cases) {
    const count = { runs: 0 };
    const ctx = await context(fixture, count);
    const opts = { prompt: goodThen(LONG), batchSize: 4, maxNewTokens: 4 };
    await assert.rejects(generateForImages(ctx, IMAGES, opts), refused('BLIP5032', new RegExp(`^prompt\\[10\\] \\(image ${escape(A)}\\): ${what.source}`)));
    // an unnamed image: the prompt's index alone
    const bytes = [...IMAGES.slice(0, 10), new Uint8Array(readFileSync(A))];
    await assert.rejects(generateForImages(ctx, bytes, opts), refused('BLIP5032', new RegExp(`^prompt\\[10\\]: ${what.source}`)));
    assert.equal(count.runs, 0, `${fixture}: no session ran before the last prompt was refused`);
    // the good ones run
    assert.equal((await generateForImages(ctx, IMAGES.slice(0, 10), { ...opts, prompt: opts.prompt.slice(0, 10) })).length, 10);
  }
});

test('generate(): the first prompt too long in its batch is named with its own length, not the batch width', async () => {
  const count = { runs: 0 };
  const ctx = await context('blip2-opt-a', count);
  const takes = (prompt: string) => buildInputs(ctx, [prompt], 1).prompt.inputIds[0]!.length;
  const long = 'a dog '.repeat(40);
  const longer = 'a dog '.repeat(80);
  const prompts = [...goodThen(long).slice(0, 10), longer];
  prompts[9] = long;
  await assert.rejects(
    generateForImages(ctx, IMAGES, { prompt: prompts, batchSize: 4, maxNewTokens: 4 }),
    refused('BLIP5032', new RegExp(`^prompt\\[9\\] \\(image ${escape(B)}\\): the prompt takes ${takes(long)} positions; the decoder has \\d+: shorten the prompt$`)),
  );
  assert.equal(count.runs, 0);
});

test('generate(): one prompt for every image, or a list of one, reads as before (nothing named)', async () => {
  const count = { runs: 0 };
  const ctx = await context('blip-caption-a', count);
  const before = /^the prompt takes \d+ positions; the decoder has 32: shorten the prompt$/;
  await assert.rejects(generateForImages(ctx, IMAGES, { prompt: LONG, batchSize: 4, maxNewTokens: 4 }), refused('BLIP5032', before));
  await assert.rejects(generateForImages(ctx, [A], { prompt: [LONG], maxNewTokens: 4 }), refused('BLIP5032', before));
  assert.equal(count.runs, 0);
});

test('generate(): a prompt that fills the positions under the default length, or reaches maxLength, last, fails before any run', async () => {
  const count = { runs: 0 };
  // no length anywhere: the default 20 new tokens, capped at the decoder's positions
  const ctx = await context('blip-caption-a', count, (m) => ({ ...m, generation: undefined }));
  const positions = ctx.manifest.text.max_position_embeddings!;
  const takes = (prompt: string) => buildInputs(ctx, [prompt], 1).prompt.inputIds[0]!.length;
  const filling = 'a '.repeat(positions - takes(''));
  assert.equal(takes(filling), positions);
  await assert.rejects(
    generateForImages(ctx, IMAGES, { prompt: goodThen(filling), batchSize: 4 }),
    refused('BLIP5032', new RegExp(`^prompt\\[10\\] \\(image ${escape(A)}\\): the input \\(start tokens, any image prefix and the prompt\\) takes ${positions} of the model's ${positions} positions, .*no new token fits`)),
  );
  // an explicit maxLength the last prompt reaches (within the positions): the loop's BLIP5030, up front too
  await assert.rejects(
    generateForImages(ctx, IMAGES, { prompt: goodThen('a '.repeat(15)), batchSize: 4, maxLength: 10 }),
    refused('BLIP5030', new RegExp(`^prompt\\[10\\] \\(image ${escape(A)}\\): the input \\(start tokens, any image prefix and the prompt\\) is ${takes('a '.repeat(15))} tokens but maxLength is 10, which counts them: raise maxLength or set maxNewTokens$`)),
  );
  assert.equal(count.runs, 0);
});

test('generate(): an empty prompt, last, fails before any run, numbered by its place in the list', async () => {
  const count = { runs: 0 };
  const ctx = await context('blip-vqa-a', count);
  await assert.rejects(
    generateForImages(ctx, IMAGES, { prompt: goodThen('  '), batchSize: 4, maxNewTokens: 4 }),
    refused('BLIP5030', /^prompt 10 is empty: this BLIP question-answering model needs the question$/),
  );
  assert.equal(count.runs, 0);
});

test('load().generate(), staged too: no session runs (nor, staged, opens) before a prompt too long, last, is refused', async () => {
  const dir = await compileFixture('blip2-opt-a', tmp.dir);
  for (const staged of [false, true]) {
    const model = await load(dir, { threads: 1, staged });
    try {
      const { runs, opened } = await countingSessionWork(() => assert.rejects(model.generate(IMAGES, { prompt: goodThen(LONG), batchSize: 4, maxNewTokens: 4 }), refused('BLIP5032', /^prompt\[10\] \(image /)));
      assert.deepEqual({ staged, runs, opened }, { staged, runs: 0, opened: 0 });
    } finally {
      await model.close();
    }
  }
});

test('generate(): settings the loop refuses whatever the prompt (returned sequences past the beams, greedy) fail before any run', async () => {
  const count = { runs: 0 };
  const ctx = await context('blip-caption-a', count);
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ numReturnSequences: 2, numBeams: 1 }, /^greedy decoding returns one sequence per prompt; numReturnSequences 2 needs numBeams >= it or doSample: true$/],
    [{ numReturnSequences: 3, numBeams: 2 }, /^numReturnSequences \(3\) must not exceed numBeams \(2\)$/],
  ];
  for (const [settings, message] of cases) {
    await assert.rejects(generateForImages(ctx, IMAGES, { batchSize: 4, maxNewTokens: 4, ...settings }), (e: unknown) => {
      assert.match((e as Error).message, message);
      return true;
    });
  }
  assert.equal(count.runs, 0, 'no session ran before the settings were refused');
});

test('generate(): with a list of prompts, a settings error names no prompt (it is no prompt\'s fault)', async () => {
  const count = { runs: 0 };
  const ctx = await context('blip-caption-a', count);
  await assert.rejects(generateForImages(ctx, IMAGES, { prompt: goodThen('what is it'), batchSize: 4, maxNewTokens: 4, numBeams: 2, numReturnSequences: 3 }), (e: unknown) => {
    assert.equal((e as Error).message, 'numReturnSequences (3) must not exceed numBeams (2)');
    return true;
  });
  assert.equal(count.runs, 0);
});
