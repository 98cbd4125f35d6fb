// logprobs are the log-softmax of the raw logits, "before any logits processor" (api.md), also when
// the processors change the scores: a repetition penalty, a temperature, a top-k. blip-caption-a's
// vocabulary (364) is under the default top-k 50 only in name, so these settings are what move the
// processed scores off the raw ones. Each step is held to transformers' raw logits of the greedy run
// (output_logits, recorded in the fixture) where its prefix is that run's, and to the plain greedy
// run's own logprobs where the prefixes agree.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { load, type BlipModel } from '../../../src/index.js';
import { expected as expectedTensors } from '../compiler/harness.js';
import { compileFixture, expected, imagesOf, tempDir } from '../tasks/harness.js';

const FIXTURE = 'blip-caption-a';
const tmp = tempDir('blip-logprobs-raw-');
let m: BlipModel;

before(async () => {
  m = await load(await compileFixture(FIXTURE, tmp.dir), { threads: 1 });
});
after(async () => {
  await m.close();
  tmp.remove();
});

interface Entry {
  id: number;
  logprob: number;
  top: { id: number; logprob: number }[];
}
interface Row {
  tokenIds: number[];
  logprobs?: Entry[];
}

function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (x) => x - lse);
}

const samePrefix = (a: number[], b: number[], t: number) => a.length >= t && b.length >= t && a.slice(0, t).every((x, i) => x === b[i]);
const tol = (x: number) => 1e-4 * Math.max(1, Math.abs(x));

/** Holds every step of `rows` whose prefix is transformers' greedy one (prompt case) to its raw logits; returns the steps compared. */
function checkAgainstTransformers(rows: Row[], label: string): number {
  const exp = expected(FIXTURE);
  const g = exp.cases!.find((c) => c.name === 'prompt')!.generation.find((x) => x.name === 'greedy')!;
  const steps = expectedTensors(FIXTURE).array('prompt/greedy/step_logits');
  const [B, T, V] = steps.shape;
  assert.equal(rows.length, B);
  let checked = 0;
  rows.forEach((r, b) => {
    assert.equal(r.logprobs!.length, r.tokenIds.length);
    r.logprobs!.forEach((e, t) => {
      assert.equal(e.id, r.tokenIds[t]);
      // step t's logits depend on the tokens before it only
      if (t >= T || !samePrefix(r.tokenIds, g.new_tokens[b], t)) return;
      const want = logSoftmax(steps.data.subarray((b * T + t) * V, (b * T + t + 1) * V));
      assert.ok(Math.abs(e.logprob - want[e.id]) <= tol(want[e.id]), `${label}: row ${b} step ${t} token ${e.id}: logprob ${e.logprob}, transformers' raw log-softmax ${want[e.id]}`);
      const best = [...want.keys()].sort((i, j) => want[j] - want[i]);
      e.top.forEach((x, k) => assert.ok(Math.abs(x.logprob - want[best[k]]) <= tol(want[best[k]]), `${label}: row ${b} step ${t} top ${k}: ${x.logprob} vs ${want[best[k]]}`));
      checked++;
    });
  });
  return checked;
}

/** Holds the steps of `rows` whose prefix is `plain`'s to plain's logprobs (the same decoder calls: equal to float precision). */
function checkAgainstPlain(rows: Row[], plain: Row[], label: string): number {
  let checked = 0;
  rows.forEach((r, b) => {
    r.logprobs!.forEach((e, t) => {
      if (!samePrefix(r.tokenIds, plain[b].tokenIds, t) || t >= plain[b].tokenIds.length) return;
      const p = plain[b].logprobs![t];
      assert.deepEqual(e.top.map((x) => x.id), p.top.map((x) => x.id), `${label}: row ${b} step ${t} top ids`);
      e.top.forEach((x, k) => assert.ok(Math.abs(x.logprob - p.top[k].logprob) <= 1e-6, `${label}: row ${b} step ${t} top ${k}: ${x.logprob} vs plain greedy ${p.top[k].logprob}`));
      const same = p.top.find((x) => x.id === e.id) ?? (p.id === e.id ? p : undefined);
      if (same) assert.ok(Math.abs(e.logprob - same.logprob) <= 1e-6, `${label}: row ${b} step ${t} token ${e.id}: ${e.logprob} vs plain greedy ${same.logprob}`);
      checked++;
    });
  });
  return checked;
}

test('repetition penalty 1.5 (greedy): logprobs are the raw logits\' log-softmax, not the penalised scores\'', async () => {
  const imgs = imagesOf(expected(FIXTURE));
  const opts = { maxNewTokens: 12, numBeams: 1, logprobs: true, topLogprobs: 5 } as const;
  const prompted = await m.generate(imgs, { ...opts, prompt: 'a picture of', repetitionPenalty: 1.5 });
  const n = checkAgainstTransformers(prompted, 'prompt, repetition penalty 1.5');
  assert.ok(n >= 4, `${n} steps compared with transformers`);
  // without a prompt the penalised run keeps the plain run's tokens for most of its steps
  const plain = await m.generate(imgs, { ...opts, repetitionPenalty: 1 });
  const penalised = await m.generate(imgs, { ...opts, repetitionPenalty: 1.5 });
  const k = checkAgainstPlain(penalised, plain, 'no prompt, repetition penalty 1.5');
  assert.ok(k >= 12, `${k} steps compared with the plain greedy run`);
});

test('sampling at temperature 0.5: logprobs are the raw logits\' log-softmax, not the tempered scores\'', async () => {
  const imgs = imagesOf(expected(FIXTURE));
  const opts = { prompt: 'a picture of', maxNewTokens: 12, numBeams: 1, doSample: true, temperature: 0.5, logprobs: true, topLogprobs: 5 } as const;
  // with top-k 1 the draw is the greedy token at every step, so every step has transformers' logits
  const topOne = await m.generate(imgs, { ...opts, topK: 1, seed: 1 });
  const g = expected(FIXTURE).cases!.find((c) => c.name === 'prompt')!.generation.find((x) => x.name === 'greedy')!;
  topOne.forEach((r, b) => assert.deepEqual(r.tokenIds, g.new_tokens[b].slice(0, r.tokenIds.length)));
  const n = checkAgainstTransformers(topOne, 'temperature 0.5, top-k 1');
  assert.ok(n >= 10, `${n} steps compared with transformers`);
  // free draws: each seed's first step (and any later one whose prefix is the greedy run's)
  let k = 0;
  for (let seed = 0; seed < 4; seed++) k += checkAgainstTransformers(await m.generate(imgs, { ...opts, seed }), `temperature 0.5, seed ${seed}`);
  assert.ok(k >= 8, `${k} sampled steps compared with transformers`);
});
