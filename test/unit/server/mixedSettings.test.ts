// `blip serve` batches queued requests whose batch key (runtime/server/openai.ts) is the same, and a
// batch runs with its first request's settings. Requests differing in any setting of the key
// (max_tokens, sampling or not, beams, temperature, top_p, n, stop, top_logprobs) queued together
// must each get what they get alone; so must requests differing only in the seed (one random
// stream per row, which is why the seed is not part of the key).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlipServer } from '../../../runtime/server/index.js';
import { chatBody, compiledFixture, health, post, serve, until } from './helpers.js';
import { fixturePath, repoRoot } from '../runtime/fixtures.js';

let s: BlipServer;
const temps: string[] = [];

before(async () => {
  s = await serve({
    models: [
      { id: 'cap', dir: await compiledFixture('blip-caption', 'blip-caption-a') },
      { id: 'capBeams', dir: await variant('num_beams: 3') },
      { id: 'capSample', dir: await variant('do_sample: true') },
    ],
    maxBatch: 16,
  });
});

after(async () => {
  await s?.close();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

/**
 * blip-caption-a compiled with a generation block that searches with 3 beams or samples, as some
 * checkpoints' configs do (temperature 0 asks for the greedy answer instead).
 */
async function variant(setting: string): Promise<string> {
  const { compile } = await import('../../../src/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'blip-serve-mixed-'));
  temps.push(dir);
  const text = readFileSync(join(repoRoot(), 'graphs', 'blip-caption.blip'), 'utf8').replace('generation { max_new_tokens: 20 }', `generation { max_new_tokens: 20, ${setting} }`);
  assert.ok(text.includes(setting));
  writeFileSync(join(dir, 'variant.blip'), text);
  await compile(join(dir, 'variant.blip'), { weights: fixturePath('blip-caption-a', 'checkpoint'), out: join(dir, 'out') });
  return join(dir, 'out');
}

interface Request {
  model: string;
  settings: Record<string, unknown>;
}
const request = (model: string, settings: Record<string, unknown>): Request => ({ model, settings });

/** What a request answers: its choices (text, finish_reason, logprobs), without ids or timestamps. */
async function answer(r: Request): Promise<unknown> {
  const res = await post(`${s.url}/v1/chat/completions`, chatBody(r.model, r.settings));
  assert.equal(res.status, 200, `${r.model} ${JSON.stringify(r.settings)}: ${JSON.stringify(res.json)}`);
  return res.json.choices;
}

test('requests differing in each batch-key setting, or the seed, queued together each answer what they answer alone', async () => {
  const base = { max_tokens: 8, temperature: 1, seed: 5 };
  const baseAlone = (await answer(request('cap', base))) as Array<{ message: { content: string } }>;
  // a stop string the base answer meets (after its first character, so the answer changes)
  const stop = baseAlone[0].message.content.slice(1, 3);
  assert.equal(stop.length, 2, `base answer ${JSON.stringify(baseAlone[0].message.content)}`);
  // each pair's two requests differ in the key by the one setting it names (the sampled one of
  // 'do_sample' by doSample alone: capSample samples by its config, temperature 0 asks for greedy)
  const variants: Array<[string, Request, Request]> = [
    ['temperature', request('cap', base), request('cap', { ...base, temperature: 1.8 })],
    ['top_p', request('cap', base), request('cap', { ...base, top_p: 0.3 })],
    ['max_tokens', request('cap', base), request('cap', { ...base, max_tokens: 3 })],
    ['n', request('cap', base), request('cap', { ...base, n: 2 })],
    ['stop', request('cap', base), request('cap', { ...base, stop: [stop] })],
    ['top_logprobs', request('cap', { ...base, logprobs: true }), request('cap', { ...base, logprobs: true, top_logprobs: 3 })],
    ['logprobs', request('cap', base), request('cap', { ...base, logprobs: true })],
    ['seed', request('cap', base), request('cap', { ...base, seed: 6 })],
    ['do_sample', request('capSample', { max_tokens: 8, seed: 5 }), request('capSample', { max_tokens: 8, temperature: 0 })],
    ['num_beams', request('capBeams', { max_tokens: 8 }), request('capBeams', { max_tokens: 8, temperature: 0 })],
  ];
  // one copy of each distinct request, in order
  const requests: Request[] = [];
  const index = (r: Request): number => {
    const i = requests.findIndex((x) => x.model === r.model && JSON.stringify(x.settings) === JSON.stringify(r.settings));
    return i >= 0 ? i : requests.push(r) - 1;
  };
  const pairs = variants.map(([what, a, b]) => [what, index(a), index(b)] as const);
  const alone: unknown[] = [];
  for (const r of requests) alone.push(await answer(r));
  for (const [what, a, b] of pairs) assert.notDeepEqual(alone[a], alone[b], `${what}: the two requests answer the same alone`);

  s.scheduler.hold();
  const pending = requests.map((r) => answer(r));
  await until(async () => (await health(s.url)).queue_depth === requests.length, `${requests.length} queued`);
  s.scheduler.release();
  const together = await Promise.all(pending);
  for (const [what, a, b] of pairs) {
    for (const i of [a, b]) assert.deepEqual(together[i], alone[i], `${what}: ${requests[i].model} ${JSON.stringify(requests[i].settings)} queued with the others`);
  }
});
