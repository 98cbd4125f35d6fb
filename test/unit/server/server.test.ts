// `blip serve` over real compiled (tiny) models, driven by the official openai client and by raw
// HTTP: chat completions, streaming, ITM, embeddings, models, health, metrics, and the 4xx
// answers to bad input (the process must keep serving after every one of them).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import OpenAI from 'openai';
import sharp from 'sharp';
import { load, type BlipModel } from '../../../runtime/model.js';
import type { BlipServer } from '../../../runtime/server/index.js';
import { chatBody, compiledFixture, dataUrl, health, imageBytes, post, serve, until } from './helpers.js';
import { fixturePath, repoRoot } from '../runtime/fixtures.js';

let s: BlipServer;
let client: OpenAI;
let dirs: { cap: string; itm: string; opt: string; capBeams: string };
let allowed: string;
const direct: Record<string, BlipModel> = {};

before(async () => {
  dirs = {
    cap: await compiledFixture('blip-caption', 'blip-caption-a'),
    itm: await compiledFixture('blip-itm', 'blip-itm-a'),
    opt: await compiledFixture('blip2-opt', 'blip2-opt-a'),
    capBeams: await beamsVariant(),
  };
  allowed = mkdtempSync(join(tmpdir(), 'blip-serve-files-'));
  copyFileSync(fixturePath('images', 'rgb_37x23.png'), join(allowed, 'ok.png'));
  writeFileSync(join(allowed, 'not-an-image.png'), 'hello');
  symlinkSync(fixturePath('images', 'gray_45x31.png'), join(allowed, 'escape.png'));
  mkdirSync(join(allowed, 'sub'));
  symlinkSync(tmpdir(), join(allowed, 'sub', 'up')); // a folder link pointing outside
  s = await serve({
    models: [
      { id: 'cap', dir: dirs.cap },
      { id: 'itm', dir: dirs.itm },
      { id: 'opt', dir: dirs.opt },
      { id: 'capBeams', dir: dirs.capBeams },
    ],
    maxBatch: 4,
    maxBodyBytes: 256 * 1024,
    maxImagePixels: 4000, // the fixtures' photos are 64 x 48 at most
    maxTextChars: 2000,
    allowFiles: allowed,
  });
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  for (const [k, d] of Object.entries(dirs)) direct[k] = await load(d, { threads: 1 });
});

after(async () => {
  await s?.close();
  for (const m of Object.values(direct)) await m.close();
});

/** blip-caption-a compiled with a generation block that searches with 3 beams, as some checkpoints' configs do. */
async function beamsVariant(): Promise<string> {
  const { compile } = await import('../../../src/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'blip-serve-beams-'));
  const text = readFileSync(join(repoRoot(), 'graphs', 'blip-caption.blip'), 'utf8').replace('generation { max_new_tokens: 20 }', 'generation { max_new_tokens: 20, num_beams: 3 }');
  assert.ok(text.includes('num_beams: 3'));
  writeFileSync(join(dir, 'beams.blip'), text);
  await compile(join(dir, 'beams.blip'), { weights: fixturePath('blip-caption-a', 'checkpoint'), out: join(dir, 'out') });
  return join(dir, 'out');
}

const chat = (body: Record<string, unknown>) => client.chat.completions.create(body as never) as Promise<OpenAI.Chat.Completions.ChatCompletion>;

test('chat completion: the caption the library computes, with usage and finish_reason', async () => {
  const r = await chat(chatBody('cap', { max_tokens: 6 }));
  const [want] = await direct.cap.generate([imageBytes()], { maxNewTokens: 6 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'cap');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, want.text);
  assert.equal(r.usage?.completion_tokens, want.tokenIds.length);
  assert.equal(r.usage?.prompt_tokens, 1); // [DEC]
  assert.equal(r.choices[0].finish_reason, want.tokenIds.length === 6 && !direct.cap.manifest.text.eos_token_id.includes(want.tokenIds[5]) ? 'length' : 'stop');
  // a prompt (caption prefix) goes where the library puts it
  const p = await chat(chatBody('cap', { max_tokens: 4 }, 'a picture of'));
  const [wp] = await direct.cap.generate([imageBytes()], { maxNewTokens: 4, prompt: 'a picture of' });
  assert.equal(p.choices[0].message.content, wp.text);
});

test('streaming: the deltas add up to the non-streamed answer (BLIP-2 OPT)', async () => {
  const body = chatBody('opt', { max_tokens: 8 }, 'Question: what is it? Answer:');
  const whole = await chat(body);
  const stream = (await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } } as never)) as unknown as AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>;
  let text = '';
  let role: string | undefined;
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined | null;
  for await (const c of stream) {
    for (const ch of c.choices) {
      role ??= ch.delta.role;
      text += ch.delta.content ?? '';
      finish = ch.finish_reason ?? finish;
    }
    if (c.usage) usage = c.usage;
  }
  assert.equal(role, 'assistant');
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
});

test('stop: the answer ends before the stop string, finish_reason "stop", streamed the same; as the library does it', async () => {
  const [full] = await direct.cap.generate([imageBytes()], { maxNewTokens: 12 });
  const chars = [...full.text];
  const stop = chars.slice(Math.floor(chars.length / 2), Math.floor(chars.length / 2) + 2).join('');
  const [want] = await direct.cap.generate([imageBytes()], { maxNewTokens: 12, stop: [stop, 'zzz'] });
  assert.ok(want.stop === stop && want.text.length < full.text.length, JSON.stringify([full.text, stop]));
  const body = chatBody('cap', { max_tokens: 12, stop: [stop, 'zzz'] });
  const r = await chat(body);
  assert.equal(r.choices[0].message.content, want.text);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.usage?.completion_tokens, want.tokenIds.length);
  const stream = (await client.chat.completions.create({ ...body, stream: true } as never)) as unknown as AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>;
  let text = '';
  let finish: string | null = null;
  for await (const c of stream) for (const ch of c.choices) (text += ch.delta.content ?? ''), (finish = ch.finish_reason ?? finish);
  assert.equal(text, want.text);
  assert.equal(finish, 'stop');
  // a single string, as OpenAI takes it
  assert.equal((await chat(chatBody('cap', { max_tokens: 12, stop }))).choices[0].message.content, want.text);
  const err = await post(`${s.url}/v1/chat/completions`, chatBody('cap', { stop: ['.', ''] }));
  assert.equal(err.status, 400);
  assert.equal(err.json.error.param, 'stop');
  assert.match(err.json.error.message, /^stop\[1\] is empty/);
});

test('logprobs: OpenAI\'s choice.logprobs from the library\'s, streamed whole with each choice\'s last chunk', async () => {
  const body = chatBody('opt', { max_tokens: 6, logprobs: true, top_logprobs: 2 }, 'a photo of');
  const [want] = await direct.opt.generate([imageBytes()], { maxNewTokens: 6, prompt: 'a photo of', logprobs: true, topLogprobs: 2 });
  const r = await chat(body);
  const content = r.choices[0].logprobs!.content!;
  assert.equal(content.length, want.tokenIds.length);
  content.forEach((e, i) => {
    const w = want.logprobs![i];
    assert.deepEqual([e.token, e.logprob, e.bytes], [w.token, w.logprob, w.bytes]);
    assert.deepEqual(e.top_logprobs.map((x) => [x.token, x.logprob, x.bytes]), w.top.map((x) => [x.token, x.logprob, x.bytes]));
  });
  // without logprobs: null, as OpenAI answers
  assert.equal((await chat(chatBody('opt', { max_tokens: 3 }, 'a photo of'))).choices[0].logprobs, null);
  const stream = (await client.chat.completions.create({ ...body, stream: true } as never)) as unknown as AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>;
  const streamed: unknown[] = [];
  for await (const c of stream) for (const ch of c.choices) streamed.push(...(ch.logprobs?.content ?? []));
  assert.deepEqual(streamed, content);
  for (const [extra, param] of [[{ top_logprobs: 2 }, 'top_logprobs'], [{ logprobs: true, top_logprobs: 21 }, 'top_logprobs'], [{ logprobs: 'yes' }, 'logprobs']] as const) {
    const bad = await post(`${s.url}/v1/chat/completions`, chatBody('opt', extra));
    assert.equal(bad.status, 400, JSON.stringify(extra));
    assert.equal(bad.json.error.param, param);
  }
});

test('a model whose config searches with beams: temperature 0 is its greedy answer (logprobs allowed), omitted its beam answer, n above its beams sampled', async () => {
  const m = direct.capBeams;
  const [greedy] = await m.generate([imageBytes()], { maxNewTokens: 8, numBeams: 1, logprobs: true });
  const [beams] = await m.generate([imageBytes()], { maxNewTokens: 8 });
  assert.notEqual(greedy.text, beams.text, 'the fixture gives beam search and greedy different answers');
  const t0 = await chat(chatBody('capBeams', { max_tokens: 8, temperature: 0, logprobs: true }));
  assert.equal(t0.choices[0].message.content, greedy.text);
  assert.deepEqual(t0.choices[0].logprobs!.content!.map((e) => e.logprob), greedy.logprobs!.map((e) => e.logprob));
  assert.equal((await chat(chatBody('capBeams', { max_tokens: 8 }))).choices[0].message.content, beams.text);
  const five = await chat(chatBody('capBeams', { max_tokens: 8, n: 5, seed: 3 }));
  assert.equal(five.choices.length, 5);
  const refused = await post(`${s.url}/v1/chat/completions`, chatBody('capBeams', { max_tokens: 8, logprobs: true }));
  assert.equal(refused.status, 400);
  assert.match(refused.json.error.message, /beam search \(num_beams 3\) by its generation config: add temperature 0/);
});

test('sampling: n choices, reproducible for a seed', async () => {
  const body = chatBody('opt', { max_tokens: 5, n: 3, temperature: 1.5, top_p: 0.95, seed: 42 });
  const a = await chat(body);
  const b = await chat(body);
  assert.equal(a.choices.length, 3);
  assert.deepEqual(
    a.choices.map((c) => c.message.content),
    b.choices.map((c) => c.message.content),
  );
  assert.deepEqual(
    a.choices.map((c) => c.index),
    [0, 1, 2],
  );
});

test('concurrent requests are batched and answer exactly what each gets alone', async () => {
  const images = ['photo_64x48.jpg', 'rgb_37x23.png', 'gray_45x31.png', 'palette_33x17.png', 'photo_50x40.webp', 'rgba_29x41.png'];
  const before = s.metrics.batchSize.count({ model: 'opt', task: 'generate' });
  // hold dispatching until all six wait, so the batches are exactly 4 + 2 (--max-batch 4)
  s.scheduler.hold();
  const pending = images.map((im) => chat(chatBody('opt', { max_tokens: 6 }, undefined, dataUrl(im))));
  await until(async () => (await health(s.url)).queue_depth === images.length, 'six queued requests');
  s.scheduler.release();
  const together = await Promise.all(pending);
  const calls = s.metrics.batchSize.count({ model: 'opt', task: 'generate' }) - before;
  assert.equal(calls, 2);
  for (let i = 0; i < images.length; i++) {
    const [alone] = await direct.opt.generate([imageBytes(images[i])], { maxNewTokens: 6 });
    assert.equal(together[i].choices[0].message.content, alone.text, images[i]);
  }
});

test('GET /v1/models lists the models with their endpoints', async () => {
  const list = await client.models.list();
  const ids = list.data.map((m) => m.id).sort();
  assert.deepEqual(ids, ['cap', 'capBeams', 'itm', 'opt']);
  const one = (await (await fetch(`${s.url}/v1/models/itm`)).json()) as { endpoints: string[]; family: string };
  assert.deepEqual(one.endpoints, ['/v1/itm', '/v1/embeddings']);
  assert.equal(one.family, 'blip');
  const cap = (await (await fetch(`${s.url}/v1/models/cap`)).json()) as { context_length: number };
  assert.equal(cap.context_length, 32);
  // OPT's position table has 2 rows more than its positions (blip2-opt-a: 66 rows, max_position_embeddings 64)
  const opt = (await (await fetch(`${s.url}/v1/models/opt`)).json()) as { context_length: number };
  assert.equal(opt.context_length, 64);
});

test('OPT without max_tokens: the new tokens are capped at the positions the prompt leaves, and the model runs', async () => {
  // the query tokens and the prompt take 52 of the 64 positions: 12 are left (a 66-position limit left 14, which the model refuses)
  const r = await post(`${s.url}/v1/chat/completions`, chatBody('opt', {}, 'a picture of a cat sitting on a red chair in the garden next to a big tree on a sunny day with clouds'));
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.usage.prompt_tokens, 52);
  assert.ok(r.json.usage.completion_tokens >= 1 && r.json.usage.completion_tokens <= 12, JSON.stringify(r.json.usage));
});

test('GET endpoints answer HEAD, and a path with a trailing slash is the path without it', async () => {
  const head = await fetch(`${s.url}/health`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
  assert.equal((await fetch(`${s.url}/health/`)).status, 200);
  const list = await fetch(`${s.url}/v1/models/`);
  assert.equal(list.status, 200);
  assert.deepEqual(((await list.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id).sort(), ['cap', 'capBeams', 'itm', 'opt']);
  const one = await fetch(`${s.url}/v1/models/cap/`);
  assert.equal(((await one.json()) as { id: string }).id, 'cap');
});

test('POST /v1/itm: ITM probabilities and ITC similarities, as the library computes them', async () => {
  const texts = ['a small red square', 'two dogs', 'nothing at all'];
  const r = await post(`${s.url}/v1/itm`, { model: 'itm', image: dataUrl(), texts });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const want = await direct.itm.itm([imageBytes()], texts);
  assert.equal(r.json.data.length, 3);
  r.json.data.forEach((d: { index: number; text: string; itm_probability: number; itc_similarity: number }, i: number) => {
    assert.equal(d.index, i);
    assert.equal(d.text, texts[i]);
    assert.ok(Math.abs(d.itm_probability - want[i].itm) < 1e-6);
    assert.ok(Math.abs(d.itc_similarity - want[i].itc) < 1e-6);
    assert.ok(d.itm_probability >= 0 && d.itm_probability <= 1);
  });
});

test('POST /v1/embeddings: texts through the openai client (base64), images as image_url parts', async () => {
  const r = await client.embeddings.create({ model: 'itm', input: ['a cat', 'a dog'] });
  const want = await direct.itm.embedTexts(['a cat', 'a dog']);
  assert.equal(r.data.length, 2);
  for (let i = 0; i < 2; i++) {
    assert.equal(r.data[i].embedding.length, want[i].data.length);
    r.data[i].embedding.forEach((v, k) => assert.ok(Math.abs(v - want[i].data[k]) < 1e-6));
  }
  const img = await post(`${s.url}/v1/embeddings`, { model: 'itm', input: [{ type: 'image_url', image_url: { url: dataUrl() } }, 'a cat'], encoding_format: 'float' });
  assert.equal(img.status, 200, JSON.stringify(img.json));
  const [wi] = await direct.itm.embedImages([imageBytes()]);
  assert.equal(img.json.data[0].input_type, 'image');
  assert.equal(img.json.data[1].input_type, 'text');
  img.json.data[0].embedding.forEach((v: number, k: number) => assert.ok(Math.abs(v - wi.data[k]) < 1e-6));
});

test('file:// images: read inside --allow-files, refused outside it and through links', async () => {
  const ok = await chat(chatBody('cap', { max_tokens: 2 }, undefined, pathToFileURL(join(allowed, 'ok.png')).href));
  assert.equal(ok.choices.length, 1);
  for (const url of [
    `file://${allowed}/../${'x'.repeat(3)}/etc/passwd`,
    `file://${allowed}/sub/../../etc/passwd`,
    `file://${allowed}/%2e%2e/%2e%2e/etc/passwd`,
    `file://${allowed}/..%2f..%2fetc%2fpasswd`,
    'file:///etc/passwd',
    pathToFileURL(join(allowed, 'escape.png')).href,
  ]) {
    const r = await post(`${s.url}/v1/chat/completions`, chatBody('cap', {}, undefined, url));
    assert.ok(r.status === 403 || r.status === 400, `${url}: ${r.status}`);
    assert.ok(['file_not_allowed', 'invalid_image_url'].includes(r.json.error.code), `${url}: ${JSON.stringify(r.json)}`);
  }
  // through a folder link pointing outside, a file that exists there and one that does not read the same: 403
  for (const name of [basename(allowed), 'no-such-file-here.png']) {
    const r = await post(`${s.url}/v1/chat/completions`, chatBody('cap', {}, undefined, pathToFileURL(join(allowed, 'sub', 'up', name)).href));
    assert.equal(r.status, 403, `${name}: ${JSON.stringify(r.json)}`);
  }
  const notImage = await post(`${s.url}/v1/chat/completions`, chatBody('cap', {}, undefined, pathToFileURL(join(allowed, 'not-an-image.png')).href));
  assert.equal(notImage.status, 400);
  assert.equal(notImage.json.error.code, 'invalid_image');
});

test('bad input is a 4xx in OpenAI error shape, through the openai client', async () => {
  const cases: Array<[Record<string, unknown>, abstract new (...a: never[]) => Error, string | null]> = [
    [chatBody('nope'), OpenAI.NotFoundError, 'model_not_found'],
    [chatBody('itm'), OpenAI.BadRequestError, 'wrong_model_task'],
    [{ model: 'cap', messages: [{ role: 'user', content: 'no image here' }] }, OpenAI.BadRequestError, 'missing_image'],
    [chatBody('cap', {}, undefined, 'data:image/png;base64,aGVsbG8gd29ybGQ='), OpenAI.BadRequestError, 'invalid_image'],
    [chatBody('cap', { stream: true }, undefined, 'data:image/png;base64,aGVsbG8gd29ybGQ='), OpenAI.BadRequestError, 'invalid_image'],
    [chatBody('cap', {}, undefined, 'data:text/plain;base64,aGVsbG8='), OpenAI.BadRequestError, 'invalid_image_content_type'],
    [chatBody('cap', {}, undefined, 'https://example.com/cat.jpg'), OpenAI.BadRequestError, 'invalid_image_url'],
    [chatBody('cap', {}, 'word '.repeat(40)), OpenAI.BadRequestError, 'context_length_exceeded'],
    [chatBody('cap', { max_tokens: 100 }), OpenAI.BadRequestError, 'context_length_exceeded'],
    [chatBody('cap', { temperature: 5 }), OpenAI.BadRequestError, null],
    [chatBody('cap', { n: 1000 }), OpenAI.BadRequestError, null],
    [chatBody('cap', { tools: [{ type: 'function', function: { name: 'f' } }] }), OpenAI.BadRequestError, 'unsupported_parameter'],
    [chatBody('cap', { stop: ['.', ''] }), OpenAI.BadRequestError, null],
    [chatBody('cap', { stop: ['a', 'b', 'c', 'd', 'e'] }), OpenAI.BadRequestError, null],
    [chatBody('cap', { stop: 7 }), OpenAI.BadRequestError, null],
    [{ model: 'cap', messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: '', format: 'wav' } }] }] }, OpenAI.BadRequestError, 'unsupported_content_type'],
    [{ model: 'cap', messages: [] }, OpenAI.BadRequestError, null],
  ];
  for (const [body, cls, code] of cases) {
    await assert.rejects(chat(body), (e: unknown) => {
      assert.ok(e instanceof cls, `${JSON.stringify(body).slice(0, 120)}: ${e}`);
      const err = (e as unknown as { error: unknown }).error as { message: string; type: string; code: string | null };
      assert.equal(typeof err.message, 'string');
      if (code) assert.equal(err.code, code, err.message);
      return true;
    });
  }
  assert.equal((await health(s.url)).status, 'ok');
  // n answers from greedy decoding: the conflict is named at n
  const greedyN = await post(`${s.url}/v1/chat/completions`, chatBody('cap', { n: 2, temperature: 0 }));
  assert.equal(greedyN.status, 400);
  assert.equal(greedyN.json.error.param, 'n');
  assert.match(greedyN.json.error.message, /^n is 2, but temperature 0 asks for the one greedy answer/);
  // an image whose header says more pixels than --max-image-pixels: refused before decoding
  const big = await sharp({ create: { width: 100, height: 50, channels: 3, background: '#808080' } }).png().toBuffer();
  await assert.rejects(chat(chatBody('cap', {}, undefined, `data:image/png;base64,${big.toString('base64')}`)), (e: unknown) => {
    assert.ok(e instanceof OpenAI.BadRequestError, String(e));
    const err = (e as unknown as { error: { message: string; code: string } }).error;
    assert.equal(err.code, 'invalid_image');
    assert.match(err.message, /100x50 is more than the 4000 pixels allowed/);
    return true;
  });
});

test('an image that does not decode is a 400 invalid_image naming its request field, on each endpoint', async () => {
  const junk = `data:image/png;base64,${Buffer.from('not an image at all').toString('base64')}`;
  const cases: Array<[string, unknown, string]> = [
    ['/v1/chat/completions', { model: 'cap', messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'image_url', image_url: { url: junk } }] }] }, 'messages[0].content[1].image_url'],
    ['/v1/itm', { model: 'itm', image: junk, texts: ['a'] }, 'image'],
    ['/v1/itm', { model: 'itm', image_url: { url: junk }, texts: ['a'] }, 'image_url'],
    ['/v1/embeddings', { model: 'itm', input: ['a', { type: 'image_url', image_url: { url: junk } }] }, 'input[1]'],
  ];
  for (const [path, body, param] of cases) {
    const r = await post(`${s.url}${path}`, body);
    assert.deepEqual([r.status, r.json.error.code, r.json.error.param], [400, 'invalid_image', param], path);
    assert.equal(r.json.error.message, `${param}: cannot read image data:image/png;base64,... (19 bytes): not a supported image (PNG, JPEG, WebP, GIF, TIFF or AVIF expected)`);
  }
});

test('bad input over raw HTTP: malformed JSON, oversized body, wrong content type, wrong method, unknown path', async () => {
  const url = `${s.url}/v1/chat/completions`;
  const bad = await post(url, '{"model": "cap", "messages": [');
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 'invalid_json');
  assert.equal(bad.json.error.type, 'invalid_request_error');
  const arr = await post(url, '[1, 2]');
  assert.equal(arr.status, 400);
  const big = await post(url, chatBody('cap', {}, 'x', `data:image/png;base64,${'A'.repeat(400 * 1024)}`));
  assert.equal(big.status, 413);
  assert.equal(big.json.error.code, 'request_too_large');
  const text = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'hi' });
  assert.equal(text.status, 415);
  assert.equal(((await text.json()) as { error: { code: string } }).error.code, 'unsupported_media_type');
  const get = await fetch(url);
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  const nowhere = await fetch(`${s.url}/v2/whatever`);
  assert.equal(nowhere.status, 404);
  const itm = await post(`${s.url}/v1/itm`, { model: 'cap', image: dataUrl(), texts: ['a'] });
  assert.equal(itm.status, 400);
  const noTexts = await post(`${s.url}/v1/itm`, { model: 'itm', image: dataUrl(), texts: [] });
  assert.equal(noTexts.status, 400);
  const tokens = await post(`${s.url}/v1/embeddings`, { model: 'itm', input: [[1, 2, 3]] });
  assert.equal(tokens.status, 400);
  // texts longer than --max-text-chars are refused before they are tokenized
  const long = 'word '.repeat(500);
  const longChat = await post(url, chatBody('cap', {}, long));
  assert.deepEqual([longChat.status, longChat.json.error.code, longChat.json.error.message], [400, 'context_length_exceeded', 'messages is 2499 characters; this server takes at most 2000 characters of text (--max-text-chars)']);
  const longItm = await post(`${s.url}/v1/itm`, { model: 'itm', image: dataUrl(), texts: ['a cat', long] });
  assert.deepEqual([longItm.status, longItm.json.error.param], [400, 'texts[1]']);
  // an image_url nested 15000 deep (within --max-body) is a 400 about the image, not a stack overflow
  const nested = `${'{"image_url":'.repeat(15000)}${JSON.stringify({ url: dataUrl() })}${'}'.repeat(15000)}`; // (JSON.stringify would overflow here)
  const deep = await post(url, `{"model":"cap","messages":[{"role":"user","content":[{"type":"image_url","image_url":${nested}}]}]}`);
  assert.deepEqual([deep.status, deep.json.error.code], [400, 'invalid_image_url']);
  // a model name that is not valid percent-encoding is an unknown model
  const odd = await fetch(`${s.url}/v1/models/%E0%A4%A`);
  assert.equal(odd.status, 404);
  // an error found before the body is read closes the connection instead of reading the body on
  assert.equal(text.headers.get('connection'), 'close');
  assert.equal((await health(s.url)).status, 'ok');
});

test('GET /metrics is Prometheus text with requests, latency, queue depth, batch sizes and tokens/s', async () => {
  const r = await fetch(`${s.url}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0.0.4/);
  const text = await r.text();
  for (const name of ['blip_requests_total', 'blip_request_duration_seconds', 'blip_queue_depth', 'blip_batch_size', 'blip_tokens_per_second', 'blip_generated_tokens_total']) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
  assert.match(text, /^blip_request_duration_seconds_bucket\{endpoint="chat",le="\+Inf"\} \d+$/m);
  assert.match(text, /^blip_queue_depth\{model="opt"\} 0$/m);
  assert.match(text, /^blip_requests_total\{endpoint="chat",status="400"\} \d+$/m);
  // every sample line is NAME{labels} VALUE
  for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) assert.match(line, /^[a-z_]+(\{[^}]*\})? [-+0-9.eInfa]+$/, line);
});
