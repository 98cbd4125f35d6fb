// generate()'s signal (docs/api.md, "Cancelling"): aborted before the call, it rejects at once and
// runs nothing; aborted while it runs, no further session run starts (counted, not timed) and the
// call rejects with the reason — greedy decoding, sampling and beam search alike, a staged call
// still waiting its turn too. A beam search's replay of its sequences to onToken stops at the next
// token on an abort or an async onToken's rejection.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { load, type BlipModel, type GenerateOptions } from '../../../src/index.js';
import { compileFixture, countingSessionWork, fixturePath, tempDir } from './harness.js';

const tmp = tempDir('blip-abort-');
after(() => tmp.remove());

const IMAGES = [fixturePath('images', 'rgb_37x23.png'), fixturePath('images', 'photo_64x48.jpg')];
let dir: string;
let model: BlipModel;
before(async () => {
  dir = await compileFixture('blip-caption-a', tmp.dir);
  model = await load(dir, { threads: 1 });
});
after(() => model.close());

/** Twenty new tokens whatever the model says. */
const LONG: GenerateOptions = { maxNewTokens: 20, minNewTokens: 20 };
const ids = (r: Array<{ tokenIds: number[] }>) => r.map((x) => x.tokenIds);

test('aborted while it runs, generate() starts no further session run and rejects with the reason; the next call is unaffected', async () => {
  for (const [name, o] of [
    ['greedy', {}],
    ['sampling', { doSample: true, seed: 3 }],
    ['beam search', { numBeams: 3 }],
  ] as Array<[string, GenerateOptions]>) {
    const opts = { ...LONG, ...o };
    let want: number[][] = [];
    // (with a signal, greedy decoding in the graph runs four tokens a call: the count of runs is the aborted call's)
    const full = await countingSessionWork(async () => void (want = ids(await model.generate(IMAGES, { ...opts, signal: new AbortController().signal }))));
    const ac = new AbortController();
    const reason = new Error(`${name} cancelled`);
    const ABORT_AT = 5; // two encodes, the prefill and two decoder runs
    const cut = await countingSessionWork(
      () => assert.rejects(model.generate(IMAGES, { ...opts, signal: ac.signal }), (e) => e === reason),
      (n) => n === ABORT_AT && ac.abort(reason),
    );
    assert.ok(full.runs >= ABORT_AT + 3, `${name}: ${full.runs} runs uninterrupted`);
    assert.equal(cut.runs, ABORT_AT, `${name}: no run after the one the abort came in`);
    assert.deepEqual(ids(await model.generate(IMAGES, opts)), want, `${name}: the next call`);
  }
});

test('a signal aborted before the call rejects it at once with the reason, opening and running no session (resident and staged)', async () => {
  const reason = new Error('aborted before');
  const staged = await load(dir, { threads: 1, staged: true });
  try {
    for (const m of [model, staged]) {
      const work = await countingSessionWork(() => assert.rejects(m.generate(IMAGES, { ...LONG, signal: AbortSignal.abort(reason) }), (e) => e === reason));
      assert.deepEqual(work, { runs: 0, opened: 0 });
    }
    await assert.rejects(model.generate(IMAGES, { signal: AbortSignal.abort() }), { name: 'AbortError' });
  } finally {
    await staged.close();
  }
});

test("a staged call aborted while it waits its turn rejects then, not after the call before it", async () => {
  const staged = await load(dir, { threads: 1, staged: true });
  try {
    let firstDone = false;
    const first = staged.generate(IMAGES, LONG).then(() => (firstDone = true));
    const ac = new AbortController();
    const reason = new Error('no longer wanted');
    const second = staged.generate(IMAGES, { ...LONG, signal: ac.signal });
    ac.abort(reason);
    await assert.rejects(second, (e) => e === reason);
    assert.equal(firstDone, false, 'the call before it was still running');
    await first;
  } finally {
    await staged.close();
  }
});

test('fifteen staged calls sharing one signal add one abort listener to it, not fifteen (no MaxListenersExceededWarning), removed when they settle', async () => {
  const staged = await load(dir, { threads: 1, staged: true });
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  try {
    const SHORT: GenerateOptions = { maxNewTokens: 2 };
    const ac = new AbortController();
    const calls = Array.from({ length: 15 }, () => staged.generate(IMAGES, { ...SHORT, signal: ac.signal }));
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1, 'while they wait');
    const settled = await Promise.allSettled(calls);
    assert.deepEqual(settled.map((r) => r.status), Array(15).fill('fulfilled'));
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'once they settled');

    // aborted while fourteen wait behind a call without the signal: each rejects with the reason
    const cut = new AbortController();
    const reason = new Error('all cancelled');
    const first = staged.generate(IMAGES, SHORT);
    const queued = Array.from({ length: 14 }, () => staged.generate(IMAGES, { ...SHORT, signal: cut.signal }));
    assert.equal(getEventListeners(cut.signal, 'abort').length, 1);
    cut.abort(reason);
    const rejected = await Promise.allSettled(queued);
    assert.ok(rejected.every((r) => r.status === 'rejected' && r.reason === reason));
    await first;
    await staged.close(); // (the queued calls' turns settled too)
    assert.equal(getEventListeners(cut.signal, 'abort').length, 0);
    await new Promise((resolve) => setImmediate(resolve)); // (a warning is emitted on the next tick)
    assert.deepEqual(warnings, []);
  } finally {
    process.off('warning', onWarning);
    await staged.close();
  }
});

test("beam search's replay to onToken stops at the next token on an abort or an async onToken's rejection", async () => {
  const beams: GenerateOptions = { maxNewTokens: 8, minNewTokens: 8, numBeams: 2 };
  const reason = new Error('stop the replay');
  let calls = 0;
  await assert.rejects(
    model.generate(IMAGES, {
      ...beams,
      onToken: () => {
        calls++;
        return Promise.reject(reason);
      },
    }),
    (e) => e === reason,
  );
  assert.equal(calls, 1, 'onToken calls after its promise rejected');
  const ac = new AbortController();
  calls = 0;
  await assert.rejects(model.generate(IMAGES, { ...beams, signal: ac.signal, onToken: () => void (calls++, ac.abort(reason)) }), (e) => e === reason);
  assert.equal(calls, 1, 'onToken calls after the abort');
});

test('signal must be an AbortSignal (BLIP5030)', async () => {
  const g = model as unknown as { generate(i: unknown, o: unknown): Promise<unknown> };
  await assert.rejects(g.generate(IMAGES, { signal: 'x' }), (e: Error & { code?: string }) => e.code === 'BLIP5030' && /^signal must be an AbortSignal \(AbortController\.signal\), found the string "x"$/.test(e.message));
});
