// generate({ logprobs, topLogprobs }): each new token's log-probability under the model equals the
// log-softmax of transformers' raw logits of that step (recorded with output_logits), its top
// tokens are transformers' most likely ones, and the bytes of byte-level tokens add up to the text.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { load, type BlipModel } from '../../../src/index.js';
import { expected as expectedTensors } from '../compiler/harness.js';
import { compileFixture, expected, imagesOf, tempDir } from './harness.js';
import { pyStrip } from '../../../runtime/generation/pythonSpace.js';

const tmp = tempDir('blip-logprobs-');
const models = new Map<string, BlipModel>();
// fixture -> the case whose greedy run recorded its raw step logits
const CASES: Record<string, string> = { 'blip-caption-a': 'prompt', 'blip2-opt-a': 'question' };
// one per tokenizer family: WordPiece, byte-level BPE, BPE with byte fallback, Unigram
const FAMILIES = ['blip-caption-a', 'blip2-opt-a', 'instructblip-vicuna-a', 'blip2-t5-a'];

before(async () => {
  for (const f of FAMILIES) models.set(f, await load(await compileFixture(f, tmp.dir), { threads: 1 }));
});
after(async () => {
  for (const m of models.values()) await m.close();
  tmp.remove();
});

function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (x) => x - lse);
}

for (const [fixture, caseName] of Object.entries(CASES)) {
  test(`${fixture}: greedy logprobs and top-5 are the log-softmax of transformers' raw logits at every step`, async () => {
    const m = models.get(fixture)!;
    const exp = expected(fixture);
    const c = exp.cases!.find((x) => x.name === caseName)!;
    const g = c.generation.find((x) => x.name === 'greedy')!;
    const steps = expectedTensors(fixture).array(`${caseName}/greedy/step_logits`);
    const [B, T, V] = steps.shape;
    const opts = { prompt: (c.questions ?? c.prompt ?? undefined) as string | string[] | undefined, maxNewTokens: g.kwargs.max_new_tokens as number, numBeams: 1, repetitionPenalty: 1 };
    const plain = await m.generate(imagesOf(exp), opts);
    const res = await m.generate(imagesOf(exp), { ...opts, logprobs: true, topLogprobs: 5 });
    assert.equal(res.length, B);
    let checked = 0;
    res.forEach((r, b) => {
      // the host loop that logprobs need chooses the tokens the graph's loop does
      assert.deepEqual(r.tokenIds, plain[b].tokenIds);
      assert.equal(r.logprobs!.length, r.tokenIds.length);
      r.logprobs!.forEach((e, t) => {
        assert.equal(e.id, r.tokenIds[t]);
        if (t >= T || r.tokenIds[t] !== g.new_tokens[b][t]) return;
        const want = logSoftmax(steps.data.subarray((b * T + t) * V, (b * T + t + 1) * V));
        const tol = (x: number) => 1e-4 * Math.max(1, Math.abs(x));
        assert.ok(Math.abs(e.logprob - want[e.id]) <= tol(want[e.id]), `row ${b} step ${t}: ${e.logprob} vs ${want[e.id]}`);
        const best = [...want.keys()].sort((i, j) => want[j] - want[i]).slice(0, 5);
        assert.equal(e.top.length, 5);
        e.top.forEach((x, k) => {
          // the k-th best value (ids may swap only between values within the tolerance)
          assert.ok(Math.abs(x.logprob - want[best[k]]) <= tol(want[best[k]]) && Math.abs(want[x.id] - want[best[k]]) <= tol(want[best[k]]), `row ${b} step ${t} top ${k}`);
        });
        assert.equal(e.top[0].id, e.id); // greedy chose the most likely (no processors here)
        checked++;
      });
    });
    assert.ok(checked >= 10, `${checked} steps compared`);
  });
}

test('every tokenizer family: the tokens\' bytes add up to the text (texts too where no character is split); sampled logprobs follow tokenIds, top lists sorted', async () => {
  let checked = 0;
  const seen = new Set<string>();
  for (const f of FAMILIES) {
    const m = models.get(f)!;
    const eos = m.manifest.text.eos_token_id;
    const rs = await m.generate(imagesOf(expected(f)), { prompt: f === 'blip-caption-a' ? undefined : 'a photo of', maxNewTokens: 16, numBeams: 1, logprobs: true });
    for (const r of rs) {
      // special tokens (EOS here) give their name and no bytes
      for (const e of r.logprobs!.filter((x) => eos.includes(x.id))) assert.deepEqual(e.bytes, [], f);
      const mine = r.logprobs!.filter((e) => e.bytes.length > 0);
      // (where the text shows U+FFFD the bytes are the truth: byte fallback turns a whole invalid run, "\\" with it, into U+FFFD)
      if (r.text.includes('\uFFFD')) continue;
      checked++;
      seen.add(f);
      assert.equal(pyStrip(new TextDecoder().decode(Uint8Array.from(mine.flatMap((e) => e.bytes)))), r.text, f);
      assert.equal(pyStrip(mine.map((e) => e.token).join('')), r.text, f);
      assert.ok(r.logprobs!.every((e) => e.top.length === 0));
    }
  }
  assert.ok(checked >= 4 && seen.has('blip-caption-a') && seen.has('blip2-t5-a'), `${checked} texts without U+FFFD, from ${[...seen].join(', ')}`);
  const m = models.get('blip2-opt-a')!;
  const exp = expected('blip2-opt-a');
  const [r] = await m.generate(imagesOf(exp).slice(0, 1), { prompt: 'a photo of', maxNewTokens: 12, logprobs: true });
  const sampled = await m.generate(imagesOf(exp), { prompt: 'a photo of', maxNewTokens: 10, doSample: true, seed: 4, numReturnSequences: 2, logprobs: true, topLogprobs: 3 });
  for (const s of sampled.flatMap((x) => x.sequences!)) {
    assert.deepEqual(s.logprobs!.map((e) => e.id), s.tokenIds);
    for (const e of s.logprobs!) {
      assert.ok(e.logprob <= 0 && e.top.length === 3 && e.top[0].logprob >= e.top[1].logprob && e.top[1].logprob >= e.top[2].logprob);
      assert.ok(e.logprob <= e.top[0].logprob);
    }
  }
  // with a stop string: one entry per token kept
  const stop = [...r.text].slice(3, 5).join('');
  const [cut] = await m.generate(imagesOf(exp).slice(0, 1), { prompt: 'a photo of', maxNewTokens: 12, logprobs: true, stop });
  assert.equal(cut.logprobs!.length, cut.tokenIds.length);
});

test('logprobs settings are checked (BLIP5030): not with beams, topLogprobs 0-20 and only with logprobs', async () => {
  const m = models.get('blip-caption-a')!;
  const img = imagesOf(expected('blip-caption-a')).slice(0, 1);
  const code = (re: RegExp) => (e: unknown) => (e as { code?: string }).code === 'BLIP5030' && re.test((e as Error).message);
  await assert.rejects(m.generate(img, { logprobs: true, numBeams: 3 }), code(/not beam search/));
  // a model whose generation config searches with beams: named before any image is read
  const vicuna = models.get('instructblip-vicuna-a')!;
  await assert.rejects(vicuna.generate(['no-such-image.png'], { prompt: 'Describe it.', logprobs: true }), code(/decodes with 5 beams by default; set numBeams: 1$/));
  await assert.rejects(m.generate(img, { logprobs: true, topLogprobs: 21 }), code(/from 0 to 20, found 21/));
  await assert.rejects(m.generate(img, { topLogprobs: 2 }), code(/topLogprobs needs logprobs: true/));
  await assert.rejects(m.generate(img, { logprobs: 'yes' as unknown as boolean }), code(/logprobs must be true or false/));
});
