// When the server samples and with which seeds: top_p 1 (what many OpenAI clients send by default)
// leaves a greedy model greedy, a seeded request samples what the library samples for that seed
// (rowSeed(seed, k) per choice), and streamed choices of requests sharing a batch each get their
// own rows' tokens.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { load, type BlipModel } from '../../../runtime/model.js';
import type { BlipServer } from '../../../runtime/server/index.js';
import { chatBody, compiledFixture, dataUrl, health, imageBytes, serve, until } from './helpers.js';

let s: BlipServer;
let client: OpenAI;
let cap: BlipModel;

before(async () => {
  const dir = await compiledFixture('blip-caption', 'blip-caption-a');
  s = await serve({ models: [{ id: 'cap', dir }], maxBatch: 8 });
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  cap = await load(dir, { threads: 1 });
});

after(async () => {
  await s?.close();
  await cap?.close();
});

const chat = (body: Record<string, unknown>) => client.chat.completions.create(body as never) as Promise<OpenAI.Chat.Completions.ChatCompletion>;

test('top_p 1 without a temperature is the greedy answer (only top_p < 1 turns sampling on)', async () => {
  const [greedy] = await cap.generate([imageBytes()], { maxNewTokens: 8 });
  const [sampled] = await cap.generate([imageBytes()], { maxNewTokens: 8, doSample: true, seed: 5 });
  assert.notEqual(sampled.text, greedy.text, 'the fixture samples something else than its greedy answer for seed 5');
  for (const seed of [5, 6]) {
    const r = await chat(chatBody('cap', { max_tokens: 8, top_p: 1, seed }));
    assert.equal(r.choices[0].message.content, greedy.text, `top_p 1, seed ${seed}`);
  }
});

test('a seeded request with n = 2 samples what the library samples for that seed', async () => {
  const [lib] = await cap.generate([imageBytes()], { maxNewTokens: 6, doSample: true, seed: 42, numReturnSequences: 2 });
  const want = lib.sequences!.map((q) => q.text);
  assert.notEqual(want[0], want[1]);
  const r = await chat(chatBody('cap', { max_tokens: 6, n: 2, seed: 42 }));
  assert.deepEqual(
    r.choices.map((c) => c.message.content),
    want,
  );
});

/** A streamed request's text per choice, from its content deltas. */
async function streamed(body: Record<string, unknown>): Promise<string[]> {
  const stream = (await client.chat.completions.create({ ...body, stream: true } as never)) as unknown as AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>;
  const text: string[] = [];
  for await (const c of stream) for (const ch of c.choices) text[ch.index] = (text[ch.index] ?? '') + (ch.delta.content ?? '');
  return text;
}

test('streaming requests with n = 2 sharing one batch each stream their own choices, as answered alone', async () => {
  const bodies = [
    chatBody('cap', { max_tokens: 6, n: 2, temperature: 1.2, seed: 1 }, undefined, dataUrl('photo_64x48.jpg')),
    chatBody('cap', { max_tokens: 6, n: 2, temperature: 1.2, seed: 2 }, undefined, dataUrl('rgb_37x23.png')),
  ];
  const alone: string[][] = [];
  for (const b of bodies) alone.push((await chat(b)).choices.map((c) => c.message.content!));
  assert.equal(new Set(alone.flat()).size, 4, `four different choices: ${JSON.stringify(alone)}`);
  const calls = s.metrics.batchSize.count({ model: 'cap', task: 'generate' });
  // hold dispatching until both wait, so they run as one model call of 4 rows
  s.scheduler.hold();
  const pending = bodies.map((b) => streamed(b));
  await until(async () => (await health(s.url)).queue_depth === bodies.length, 'two queued requests');
  s.scheduler.release();
  const together = await Promise.all(pending);
  assert.equal(s.metrics.batchSize.count({ model: 'cap', task: 'generate' }) - calls, 1, 'one model call');
  assert.deepEqual(together, alone);
});
