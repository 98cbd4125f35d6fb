// What a chat completion counts and how it says it ended: usage.prompt_tokens with the
// encoder-side text (VQA question, T5 prompt, InstructBLIP instruction), usage.completion_tokens
// summed over every choice (non-streamed and streamed), and finish_reason "stop" when EOS is the
// last token max_tokens allows.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import OpenAI from 'openai';
import { load, type BlipModel } from '../../../runtime/model.js';
import { loadTokenizer } from '../../../runtime/tokenizers/hf.js';
import { readManifest } from '../../../src/artifact/manifest.js';
import type { BlipServer } from '../../../runtime/server/index.js';
import { chatBody, compiledFixture, dataUrl, imageBytes, serve } from './helpers.js';

let s: BlipServer;
let client: OpenAI;
const dirs: Record<'cap' | 'vqa' | 't5' | 'instruct', string> = { cap: '', vqa: '', t5: '', instruct: '' };
let cap: BlipModel;

before(async () => {
  dirs.cap = await compiledFixture('blip-caption', 'blip-caption-a');
  dirs.vqa = await compiledFixture('blip-vqa', 'blip-vqa-a');
  dirs.t5 = await compiledFixture('blip2-t5', 'blip2-t5-a');
  dirs.instruct = await compiledFixture('instructblip-t5', 'instructblip-t5-a');
  s = await serve({ models: Object.entries(dirs).map(([id, dir]) => ({ id, dir })) });
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  cap = await load(dirs.cap, { threads: 1 });
});

after(async () => {
  await s?.close();
  await cap?.close();
});

const chat = (body: Record<string, unknown>) => client.chat.completions.create(body as never) as Promise<OpenAI.Chat.Completions.ChatCompletion>;

/** The model's own tokenizer's count of a text (special tokens included, as the model is fed it). */
function tokens(dir: string, text: string): number {
  const tokenizer = readManifest(dir).tokenizer;
  assert.ok(tokenizer, `${dir}: the manifest names a tokenizer`);
  return loadTokenizer(join(dir, tokenizer.dir)).encode(text).length;
}

test('prompt_tokens counts the encoder-side text: a VQA question, a BLIP-2 T5 prompt, an InstructBLIP-T5 instruction (plus the one decoder start position)', async () => {
  for (const [id, text] of [
    ['vqa', 'what is in the picture?'],
    ['vqa', 'how many red cars are parked in front of the old house?'],
    ['t5', 'Question: what is on the table? Answer:'],
    ['instruct', 'Describe the image in detail.'],
  ] as const) {
    const r = await chat(chatBody(id, { max_tokens: 2 }, text));
    const want = 1 + tokens(dirs[id], text);
    assert.ok(want > 3, `${id}: ${JSON.stringify(text)} is ${want - 1} tokens`);
    assert.equal(r.usage?.prompt_tokens, want, `${id}: ${JSON.stringify(text)}`);
    assert.equal(r.usage?.total_tokens, want + r.usage!.completion_tokens);
  }
});

test('completion_tokens sums the tokens of every choice (n = 3), non-streamed and streamed', async () => {
  const body = chatBody('cap', { max_tokens: 5, n: 3, temperature: 1.5, seed: 42, logprobs: true });
  const r = await chat(body);
  assert.equal(r.choices.length, 3);
  // one logprobs entry per generated token
  const perChoice = r.choices.map((c) => c.logprobs!.content!.length);
  assert.ok(perChoice.every((k) => k > 0), JSON.stringify(perChoice));
  const sum = perChoice.reduce((a, k) => a + k, 0);
  assert.equal(r.usage?.completion_tokens, sum, `tokens per choice ${JSON.stringify(perChoice)}`);
  assert.equal(r.usage?.total_tokens, r.usage!.prompt_tokens + sum);

  const stream = (await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } } as never)) as unknown as AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>;
  const streamedPerChoice = [0, 0, 0];
  let usage: OpenAI.CompletionUsage | undefined | null;
  for await (const c of stream) {
    for (const ch of c.choices) streamedPerChoice[ch.index] += ch.logprobs?.content?.length ?? 0;
    if (c.usage) usage = c.usage;
  }
  assert.deepEqual(streamedPerChoice, perChoice);
  assert.deepEqual(usage, r.usage);
});

test('finish_reason is "stop" when EOS is the last token max_tokens allows', async () => {
  // blip-caption-a captions palette_33x17.png with one word and EOS: 2 tokens
  const image = 'palette_33x17.png';
  const [g] = await cap.generate([imageBytes(image)], { maxNewTokens: 30 });
  assert.equal(g.tokenIds.length, 2, JSON.stringify(g.tokenIds));
  assert.ok(cap.manifest.text.eos_token_id.includes(g.tokenIds[1]), `${JSON.stringify(g.tokenIds)} ends with EOS`);
  const atLimit = await chat(chatBody('cap', { max_tokens: 2 }, undefined, dataUrl(image)));
  assert.equal(atLimit.choices[0].message.content, g.text);
  assert.equal(atLimit.usage?.completion_tokens, 2);
  assert.equal(atLimit.choices[0].finish_reason, 'stop');
  // one token short of EOS: cut by the limit
  const cut = await chat(chatBody('cap', { max_tokens: 1 }, undefined, dataUrl(image)));
  assert.equal(cut.choices[0].finish_reason, 'length');
});
