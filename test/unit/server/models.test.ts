// What GET /v1/models/{id} says of models the other server tests do not serve: the context length
// of T5 and Vicuna decoders (and the max_tokens that follows from it), the endpoints of a model
// with an ITC head only, and a model name with a slash. The fake backend stands in for the models
// in the workers: these are the HTTP side's own answers, read from the compiled folders.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile } from '../../../src/index.js';
import type { BlipServer } from '../../../runtime/server/index.js';
import { chatBody, compiledFixture, dataUrl, fakeBackend, post, serve } from './helpers.js';
import { fixturePath, repoRoot } from '../runtime/fixtures.js';

let s: BlipServer;

/** blip-itm-a compiled with blip-itm.blip's itc output only (no ITM head). */
async function itcOnly(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'blip-serve-itc-'));
  const text = readFileSync(join(repoRoot(), 'graphs', 'blip-itm.blip'), 'utf8').replace(/^\s*output itm:.*\n/m, '');
  assert.ok(!text.includes('output itm') && text.includes('output itc'));
  writeFileSync(join(dir, 'itc.blip'), text);
  await compile(join(dir, 'itc.blip'), { weights: fixturePath('blip-itm-a', 'checkpoint'), out: join(dir, 'out') });
  return join(dir, 'out');
}

before(async () => {
  const gate = new SharedArrayBuffer(4);
  new Int32Array(gate)[0] = 1; // open: the fake backend answers at once
  s = await serve({
    models: [
      { id: 't5', dir: await compiledFixture('blip2-t5', 'blip2-t5-a') },
      { id: 'vicuna', dir: await compiledFixture('instructblip-vicuna', 'instructblip-vicuna-a') },
      { id: 'org/itc', dir: await itcOnly() },
    ],
    backendModule: fakeBackend(),
    backendOptions: { gate, log: new SharedArrayBuffer(64) },
  });
});

after(async () => {
  await s?.close();
});

async function card(id: string): Promise<{ id: string; context_length: number | null; endpoints: string[]; outputs: string[] }> {
  const r = await fetch(`${s.url}/v1/models/${encodeURIComponent(id)}`);
  assert.equal(r.status, 200, id);
  return (await r.json()) as { id: string; context_length: number | null; endpoints: string[]; outputs: string[] };
}

test('T5: no context length (relative positions; the tokenizer\'s model_max_length 512 bounds the encoder), so max_tokens 600 is run', async () => {
  assert.equal(JSON.parse(readFileSync(fixturePath('blip2-t5-a', 'checkpoint', 'tokenizer_config.json'), 'utf8')).model_max_length, 512);
  assert.equal((await card('t5')).context_length, null);
  const r = await post(`${s.url}/v1/chat/completions`, chatBody('t5', { max_tokens: 600 }, 'Question: what is it? Answer:'));
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.usage.completion_tokens, 600);
});

test('Vicuna: the tokenizer\'s model_max_length 1e30 (transformers\' "no limit") is no context length', async () => {
  assert.equal(JSON.parse(readFileSync(fixturePath('instructblip-vicuna-a', 'checkpoint', 'tokenizer_config.json'), 'utf8')).model_max_length, 1e30);
  assert.equal((await card('vicuna')).context_length, null);
});

test('a model with an ITC head only lists /v1/itm (its similarities) beside /v1/embeddings, and /v1/itm takes it', async () => {
  const c = await card('org/itc');
  assert.deepEqual(c.outputs, ['itc']);
  assert.deepEqual(c.endpoints, ['/v1/itm', '/v1/embeddings']);
  const r = await post(`${s.url}/v1/itm`, { model: 'org/itc', image: dataUrl(), texts: ['a photo'] });
  assert.equal(r.status, 200, JSON.stringify(r.json));
});

test('a model name with a slash is found percent-encoded (as clients encode a path segment) and as it is', async () => {
  const encoded = await fetch(`${s.url}/v1/models/org%2Fitc`);
  assert.equal(encoded.status, 200);
  assert.equal(((await encoded.json()) as { id: string }).id, 'org/itc');
  const plain = await fetch(`${s.url}/v1/models/org/itc`);
  assert.equal(((await plain.json()) as { id: string }).id, 'org/itc');
});
