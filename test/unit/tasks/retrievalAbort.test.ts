// itm() / embedImages() / embedTexts() take generate()'s signal (docs/api.md, "Cancelling"): aborted
// before the call, it rejects at once and runs nothing; aborted while it runs, no further
// retrieval.onnx call starts (counted, not timed) and the call rejects with the reason; the next
// call is unaffected.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { load, type BlipModel } from '../../../src/index.js';
import { compileFixture, countingSessionWork, expected, imagesOf, tempDir } from './harness.js';

const tmp = tempDir('blip-retrieval-abort-');
after(() => tmp.remove());

let model: BlipModel;
let img: string;
before(async () => {
  model = await load(await compileFixture('blip-itm-a', tmp.dir), { threads: 1 });
  img = imagesOf(expected('blip-itm-a'))[0] as string;
});
after(() => model.close());

const TEXTS = ['a dog', 'a cat on a sofa', 'two birds'];
/** Each method on three inputs, one retrieval.onnx call each (batchSize 1). */
const calls = (signal?: AbortSignal): Array<[string, () => Promise<unknown>]> => [
  ['itm', () => model.itm([img], TEXTS, { batchSize: 1, signal })],
  ['embedImages', () => model.embedImages([img, img, img], { batchSize: 1, signal })],
  ['embedTexts', () => model.embedTexts(TEXTS, { batchSize: 1, signal })],
];

test('itm / embedImages / embedTexts: a signal aborted before the call rejects it at once with the reason, running no session', async () => {
  const reason = new Error('aborted before');
  for (const [name, call] of calls(AbortSignal.abort(reason))) {
    const work = await countingSessionWork(() => assert.rejects(call(), (e) => e === reason));
    assert.equal(work.runs, 0, `${name}: runs`);
  }
  await assert.rejects(model.itm([img], TEXTS, { signal: AbortSignal.abort() }), { name: 'AbortError' });
});

test('itm / embedImages / embedTexts: aborted after the first batch, no further batch runs and the call rejects with the reason; the next call is unaffected', async () => {
  for (let k = 0; k < 3; k++) {
    const [name, uninterrupted] = calls(new AbortController().signal)[k]!;
    const want = await uninterrupted();
    const ac = new AbortController();
    const reason = new Error(`${name} cancelled`);
    const [, call] = calls(ac.signal)[k]!;
    const cut = await countingSessionWork(
      () => assert.rejects(call(), (e) => e === reason),
      (n) => n === 1 && ac.abort(reason),
    );
    assert.equal(cut.runs, 1, `${name}: no run after the one the abort came in`);
    const [, next] = calls()[k]!;
    const full = await countingSessionWork(async () => assert.deepEqual(await next(), want, `${name}: the next call`));
    assert.equal(full.runs, 3, `${name}: runs uninterrupted`);
  }
});

test('itm / embedImages / embedTexts: a signal that is not an AbortSignal is BLIP5030 naming it', async () => {
  const m = model as unknown as Record<'itm' | 'embedImages' | 'embedTexts', (...a: unknown[]) => Promise<unknown>>;
  const says = (e: unknown) => (assert.equal((e as { code?: string }).code, 'BLIP5030', String(e)), assert.match((e as Error).message, /^signal must be an AbortSignal \(AbortController\.signal\), found the string "stop"$/), true);
  await assert.rejects(m.itm([img], ['a dog'], { signal: 'stop' }), says);
  await assert.rejects(m.embedImages([img], { signal: 'stop' }), says);
  await assert.rejects(m.embedTexts(['a dog'], { signal: 'stop' }), says);
});
