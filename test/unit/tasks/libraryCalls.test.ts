// The library API as a caller meets it (docs/api.md): close() and staged calls, options checked
// and named as GenerateOptions names them (with no images too), sampling settings without
// sampling refused, image inputs a browser or Node program has at hand, an async onToken, results
// and manifests that later calls cannot change through the caller's hands, nor calls already made
// through the arguments the caller still holds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { load, type BlipModel, type GenerateOptions } from '../../../src/index.js';
import { compileFixture, countingSessionWork, fixturePath, tempDir } from './harness.js';

const tmp = tempDir('blip-library-calls-');
after(() => tmp.remove());

const IMG = fixturePath('images', 'rgb_37x23.png');
let dir: string;
let caption: BlipModel;
before(async () => {
  dir = await compileFixture('blip-caption-a', tmp.dir);
  caption = await load(dir, { threads: 1 });
});
after(() => caption.close());

type Coded = Error & { code?: string };
const says = (code: string, message: RegExp) => (e: unknown) => (assert.equal((e as Coded).code, code, String(e)), assert.match((e as Error).message, message), true);
const untyped = () => caption as unknown as { generate(images: unknown, opts?: unknown): Promise<unknown[]>; itm(i: unknown, t: unknown, o?: unknown): Promise<unknown[]> };

test('a staged model finishes the calls made before close(), which then resolves; a second close() waits as the first does', async () => {
  const want = await caption.generate([IMG], { maxNewTokens: 5 });
  const staged = await load(dir, { threads: 1, staged: true });
  const calls = [0, 1, 2].map(() => staged.generate([IMG], { maxNewTokens: 5 }));
  const first = staged.close();
  const second = staged.close();
  let closed = false;
  void second.then(() => (closed = true));
  for (const c of calls) assert.deepEqual((await c).map((r) => r.tokenIds), want.map((r) => r.tokenIds));
  await first;
  await second;
  assert.ok(closed);
  await assert.rejects(staged.generate([IMG]), says('BLIP5043', /was closed/));
});

test('a second close() of a resident model resolves only when the running call is done', async () => {
  const m = await load(dir, { threads: 1 });
  let done = false;
  const running = m.generate([IMG, IMG], { maxNewTokens: 8, numBeams: 3 }).then(() => (done = true));
  void m.close();
  await m.close();
  assert.ok(done, 'the call had finished when the second close() resolved');
  await running;
});

test('generate() options are named as the library names them, with what was found (a string quoted)', async () => {
  const g = untyped();
  const cases: Array<[object, RegExp]> = [
    [{ numBeams: -1 }, /^numBeams must be an integer >= 1, found -1$/],
    [{ minNewTokens: -1 }, /^minNewTokens must be an integer >= 0, found -1$/],
    [{ lengthPenalty: NaN }, /^lengthPenalty must be a finite number, found NaN$/],
    [{ earlyStopping: 'yes' }, /^earlyStopping must be true, false or "never", found the string "yes"$/],
    [{ repetitionPenalty: 0 }, /^repetitionPenalty must be a number > 0, found 0$/],
    [{ noRepeatNgramSize: 1.5 }, /^noRepeatNgramSize must be an integer >= 0, found 1\.5$/],
    [{ doSample: 'true' }, /^doSample must be true or false, found the string "true"$/],
    [{ doSample: true, topP: 1.5 }, /^topP must be a number from 0 to 1, found 1\.5$/],
    [{ doSample: true, topK: -1 }, /^topK must be an integer >= 0, found -1$/],
    [{ maxNewTokens: '5' }, /^maxNewTokens must be an integer >= 1, found the string "5"$/],
    [{ numReturnSequences: 3, numBeams: 2 }, /^numReturnSequences \(3\) must not exceed numBeams \(2\)$/],
    [{ numReturnSequences: 2 }, /numReturnSequences 2 needs numBeams >= it or doSample: true$/],
    [{ numBeams: 1000 }, /^numBeams is 1000, more than the 256 rows/],
    [{ prompt: ['a', 5] }, /^prompt\[1\] must be a string, found number 5$/],
  ];
  for (const [opts, message] of cases) await assert.rejects(g.generate([IMG], opts), says('BLIP5030', message), JSON.stringify(opts));
  // the decoder's positions: "lower maxNewTokens"
  await assert.rejects(caption.generate([IMG], { maxNewTokens: 10_000 }), says('BLIP5032', /lower maxNewTokens$/));
  // asked as maxLength, the same check before any work (it failed inside onnxruntime, BLIP5043)
  await assert.rejects(caption.generate([IMG], { maxLength: 10_000 }), says('BLIP5032', /new tokens were asked for \(maxLength 10000\); .* lower maxLength$/));
});

test('with no images the options and the pairing rule are still checked', async () => {
  await assert.rejects(caption.generate([], { numBeams: -1 }), says('BLIP5030', /^numBeams must be/));
  await assert.rejects(caption.generate([], { temperature: 0.5 }), says('BLIP5030', /^temperature applies when sampling/));
  assert.deepEqual(await caption.generate([], { numBeams: 2 }), []);
  const itm = await load(await compileFixture('blip-itm-a', tmp.dir), { threads: 1 });
  try {
    await assert.rejects(itm.itm([], ['a', 'b']), says('BLIP5030', /^0 images for 2 texts; give one image, one text, or as many of each$/));
    await assert.rejects(itm.itm([IMG, IMG], []), says('BLIP5030', /^2 images for 0 texts/));
    await assert.rejects(itm.itm([], [], { batchSize: 0 }), says('BLIP5030', /^batchSize must be/));
    assert.deepEqual(await itm.itm([], []), []);
  } finally {
    await itm.close();
  }
});

test('sampling settings without sampling are refused, unless the generation config samples by default', async () => {
  for (const opts of [{ temperature: 0.5 }, { topP: 0.5 }, { topK: 5 }, { seed: 3 }]) {
    const name = Object.keys(opts)[0];
    await assert.rejects(caption.generate([IMG], opts), says('BLIP5030', new RegExp(`^${name} applies when sampling: set doSample: true$`)));
  }
  await assert.rejects(caption.generate([IMG], { doSample: false, seed: 1 }), says('BLIP5030', /^seed applies when sampling: set doSample: true \(doSample is false\)$/));
  assert.equal((await caption.generate([IMG], { doSample: true, temperature: 0.5, seed: 3, maxNewTokens: 3 })).length, 1);
  // an artifact whose generation config samples takes them without doSample
  const sampling = join(tmp.dir, 'sampling');
  cpSync(dir, sampling, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(sampling, 'manifest.json'), 'utf8'));
  manifest.generation = { ...manifest.generation, do_sample: true };
  writeFileSync(join(sampling, 'manifest.json'), JSON.stringify(manifest));
  const m = await load(sampling, { threads: 1 });
  try {
    const [a, b] = await Promise.all([m.generate([IMG], { seed: 3, maxNewTokens: 4 }), m.generate([IMG], { seed: 3, temperature: 1, maxNewTokens: 4 })]);
    assert.deepEqual(a[0]!.tokenIds, b[0]!.tokenIds);
  } finally {
    await m.close();
  }
});

test('pixels as a Uint8ClampedArray (canvas ImageData) and encoded bytes as an ArrayBuffer are taken; other pixel arrays are named', async () => {
  const rgba = { data: new Uint8Array(4 * 6 * 4).map((_, i) => (i * 37) % 256), width: 4, height: 6, channels: 4 };
  const [want] = await caption.generate([rgba], { maxNewTokens: 4 });
  const [clamped] = await caption.generate([{ ...rgba, data: new Uint8ClampedArray(rgba.data) }], { maxNewTokens: 4 });
  assert.deepEqual(clamped!.tokenIds, want!.tokenIds);
  const file = readFileSync(IMG);
  const [fromBuffer] = await caption.generate([file], { maxNewTokens: 4 });
  const copy = file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer;
  const [fromArrayBuffer] = await caption.generate([copy], { maxNewTokens: 4 });
  assert.deepEqual(fromArrayBuffer!.tokenIds, fromBuffer!.tokenIds);
  const g = untyped();
  await assert.rejects(g.generate([{ ...rgba, data: new Float32Array(96) }]), says('BLIP5010', /^cannot read image #0 \(4x6 pixels\): data must be a Uint8Array \(or Uint8ClampedArray\) of 8-bit pixels, found a Float32Array of 96$/));
  await assert.rejects(g.generate([IMG, { ...rgba, data: [1, 2, 3] }]), says('BLIP5010', /^cannot read image #1 \(4x6 pixels\): data must be a Uint8Array .* found an array of 3$/));
  await assert.rejects(g.generate([{ ...rgba, data: new Uint8Array(5) }]), says('BLIP5010', /^cannot read image #0 \(4x6 pixels\): 5 bytes of pixel data for 4x6x4 \(width x height x channels = 96 expected\)$/));
  await assert.rejects(g.generate([null]), says('BLIP5010', /^cannot read image #0: expected a file path, /));
});

test('an async onToken that rejects rejects the call (generation stops), and one that resolves is waited for', async () => {
  const failure = new Error('async onToken failed');
  let calls = 0;
  await assert.rejects(
    caption.generate([IMG], {
      maxNewTokens: 8,
      onToken: async () => {
        calls++;
        throw failure;
      },
    }),
    (e) => e === failure,
  );
  assert.ok(calls >= 1);
  let settled = 0;
  const res = await caption.generate([IMG], {
    maxNewTokens: 4,
    onToken: async () => {
      await new Promise((r) => setTimeout(r, 5));
      settled++;
    },
  });
  assert.equal(settled, res[0]!.tokenIds.length, 'every callback had settled when generate() resolved');
  // beam search replays its sequences: the same
  await assert.rejects(caption.generate([IMG], { maxNewTokens: 4, numBeams: 2, onToken: () => Promise.reject(failure) }), (e) => e === failure);
  // a call that fails otherwise (here onToken throws at once) also settles only after the promises returned before
  let late = 0;
  let n = 0;
  await assert.rejects(
    caption.generate([IMG], {
      maxNewTokens: 6,
      onToken: () => {
        if (++n > 2) throw failure;
        return new Promise<void>((r) => setTimeout(() => (late++, r()), 30));
      },
    }),
    (e) => e === failure,
  );
  assert.equal(late, 2, 'the two pending callbacks had settled when generate() rejected');
});

test('prompt: null is no prompt, as null options are no options', async () => {
  const none = await caption.generate([IMG], { maxNewTokens: 3 });
  const nul = await caption.generate([IMG], { maxNewTokens: 3, prompt: null as unknown as string });
  assert.deepEqual(nul[0]!.tokenIds, none[0]!.tokenIds);
});

test("each result has its own timingsMs, and the model's manifest cannot be changed under later calls", async () => {
  const res = await caption.generate([IMG, IMG], { maxNewTokens: 3 });
  assert.notEqual(res[0]!.timingsMs, res[1]!.timingsMs);
  assert.deepEqual(res[0]!.timingsMs, res[1]!.timingsMs);
  res[0]!.timingsMs.total = -1;
  assert.notEqual(res[1]!.timingsMs.total, -1);
  assert.ok(Object.isFrozen(caption.manifest) && Object.isFrozen(caption.manifest.generation) && Object.isFrozen(caption.manifest.text.eos_token_id));
  assert.throws(() => {
    (caption.manifest.generation as { max_new_tokens?: number }).max_new_tokens = 1;
  }, TypeError);
});

test('a call uses its arguments as they were when it was made: the caller may change its options object and lists right after (resident and staged)', async () => {
  const I = (n: string) => fixturePath('images', n);
  const texts = (r: Array<{ text: string }>) => r.map((x) => x.text);
  const alone = async (m: BlipModel, images: string[], o: GenerateOptions) => texts(await m.generate(images, o));
  for (const staged of [false, true]) {
    const m = staged ? await load(dir, { threads: 1, staged: true }) : caption;
    try {
      const sampled = { doSample: true, maxNewTokens: 8 };
      const one = await alone(m, [IMG], { ...sampled, seed: 1 });
      const two = await alone(m, [IMG], { ...sampled, seed: 2 });
      assert.notDeepEqual(one, two, 'seeds 1 and 2 sample different texts (else this test shows nothing)');
      // one options object for two calls, its seed changed in between
      const o: GenerateOptions = { ...sampled, seed: 1 };
      const first = m.generate([IMG], o);
      o.seed = 2;
      const second = m.generate([IMG], o);
      assert.deepEqual([texts(await first), texts(await second)], [one, two], `staged ${staged}`);
      // the image list, the prompts and the other options changed at once
      const images = [I('photo_64x48.jpg'), I('rgb_37x23.png')];
      const prompts = ['a picture of', 'the'];
      const want = await alone(m, images, { prompt: prompts, maxNewTokens: 4 });
      const seen: string[] = [];
      const o2: GenerateOptions = { prompt: prompts, maxNewTokens: 4, onToken: () => void seen.push('first') };
      const call = m.generate(images, o2);
      images.length = 0;
      images.push(I('gray_45x31.png'));
      prompts[0] = 'x'.repeat(1000);
      Object.assign(o2, { maxNewTokens: 2, numBeams: 2, logprobs: true, onToken: () => void seen.push('second') });
      const got = await call;
      assert.deepEqual(texts(got), want, `staged ${staged}`);
      assert.ok(got.every((r) => r.logprobs === undefined));
      assert.deepEqual([...new Set(seen)], ['first']);
    } finally {
      if (staged) await m.close();
    }
  }
});

test('options a caller inherits (Object.create(defaults)) or computes (a class getter) are read, as options given directly are', async () => {
  const lengths = async (o: GenerateOptions) => (await caption.generate([IMG], o)).map((r) => r.tokenIds.length);
  const direct = await lengths({ maxNewTokens: 3, minNewTokens: 3 });
  assert.deepEqual(direct, [3]);
  const inherited = Object.create({ maxNewTokens: 3, minNewTokens: 3 }) as GenerateOptions;
  assert.deepEqual(await lengths(inherited), direct);
  class Options {
    get maxNewTokens() {
      return 3;
    }
    get minNewTokens() {
      return 3;
    }
  }
  assert.deepEqual(await lengths(new Options() as GenerateOptions), direct);
});

test('load() refuses a decoder without its image encoder (BLIP5044) before it opens any session', async () => {
  const noEncoder = join(tmp.dir, 'no-encoder');
  cpSync(dir, noEncoder, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(noEncoder, 'manifest.json'), 'utf8'));
  delete manifest.graphs.encode;
  writeFileSync(join(noEncoder, 'manifest.json'), JSON.stringify(manifest));
  const work = await countingSessionWork(() => assert.rejects(load(noEncoder, { threads: 1 }), says('BLIP5044', /decoder\.onnx without encode\.onnx; recompile the model$/)));
  assert.equal(work.opened, 0, 'sessions opened (and left to the garbage collector) before the refusal');
});

test("load('') names what was expected", async () => {
  await assert.rejects(load(''), says('BLIP5001', /^load\(\) takes the compiled model's directory as a string, found an empty string$/));
});
