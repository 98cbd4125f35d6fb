// Queueing, dynamic batching, cancellation, back-pressure and shutdown of `blip serve`, with a
// fake backend in the workers that blocks its thread until the test opens a gate (as onnxruntime
// blocks during session.run). No assertion depends on timing: the tests wait for states.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import OpenAI from 'openai';
import type { BlipServer } from '../../../runtime/server/index.js';
import { chatBody, compiledFixture, dataUrl, fakeBackend, health, post, postAbortable, serve, until } from './helpers.js';

interface Gate {
  gate: SharedArrayBuffer;
  log: SharedArrayBuffer;
  open(): void;
  close(): void;
  batches(): number[];
}

function gate(): Gate {
  const g = new SharedArrayBuffer(4);
  const l = new SharedArrayBuffer(4 * 64);
  const gi = new Int32Array(g);
  const li = new Int32Array(l);
  return {
    gate: g,
    log: l,
    open() {
      Atomics.store(gi, 0, 1);
      Atomics.notify(gi, 0);
    },
    close() {
      Atomics.store(gi, 0, 0);
    },
    batches() {
      return Array.from(li.subarray(1, 1 + Math.min(Atomics.load(li, 0), 63)));
    },
  };
}

async function start(g: Gate, o: Record<string, unknown> = {}): Promise<BlipServer> {
  const dir = await compiledFixture('blip-caption', 'blip-caption-a');
  return serve({ models: [{ id: 'cap', dir }], backendModule: fakeBackend(), backendOptions: { gate: g.gate, log: g.log }, ...o });
}

test('requests that arrive while a batch runs share the next model call; /health answers while the worker is blocked', async () => {
  const g = gate();
  const s = await start(g, { maxBatch: 4, maxQueue: 16 });
  try {
    const url = `${s.url}/v1/chat/completions`;
    const first = post(url, chatBody('cap', { max_tokens: 2 }));
    await until(async () => (await health(s.url)).in_flight === 1, 'the first request to run');
    // the worker thread is blocked now; the HTTP thread still answers
    const h = await health(s.url);
    assert.equal(h.status, 'ok');
    const same = [0, 1, 2, 3, 4].map(() => post(url, chatBody('cap', { max_tokens: 2 })));
    const other = post(url, chatBody('cap', { max_tokens: 3 }));
    await until(async () => (await health(s.url)).queue_depth === 6, 'six queued requests');
    g.open();
    const results = await Promise.all([first, ...same, other]);
    for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(results[0].json.choices[0].message.content, '64x48 0');
    assert.equal(results[0].json.usage.completion_tokens, 2);
    assert.equal(results[6].json.usage.completion_tokens, 3);
    // 1 alone, then the five compatible ones as 4 + 1 (--max-batch 4), the max_tokens 3 one on its own
    const b = g.batches();
    assert.deepEqual(b[0], 1);
    assert.deepEqual([...b.slice(1)].sort(), [1, 1, 4]);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(metrics, /blip_batch_size_bucket\{le="4",model="cap",task="generate"\} 4/);
    assert.match(metrics, /blip_requests_total\{endpoint="chat",status="200"\} 7/);
    assert.match(metrics, /blip_generated_tokens_total\{model="cap"\} 15/);
    // the 15 tokens over the rate's 10 s window
    assert.match(metrics, /^blip_tokens_per_second 1\.5$/m);
  } finally {
    g.open();
    await s.close();
  }
});

test('a full queue answers 429 with Retry-After, and the openai client sees a RateLimitError', async () => {
  const g = gate();
  const s = await start(g, { maxBatch: 1, maxQueue: 2 });
  try {
    const url = `${s.url}/v1/chat/completions`;
    const running = post(url, chatBody('cap', { max_tokens: 1 }));
    await until(async () => (await health(s.url)).in_flight === 1, 'a running request');
    const queued = [post(url, chatBody('cap', { max_tokens: 1 })), post(url, chatBody('cap', { max_tokens: 1 }))];
    await until(async () => (await health(s.url)).queue_depth === 2, 'two queued requests');
    const r = await post(url, chatBody('cap', { max_tokens: 1 }));
    assert.equal(r.status, 429);
    assert.equal(r.json.error.type, 'rate_limit_error');
    assert.equal(r.json.error.code, 'queue_full');
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    // the openai client retries a 429 unless told not to (x-should-retry: false, as a 4xx that would fail again says)
    assert.equal(r.headers.get('x-should-retry'), null);
    const unknown = await post(url, chatBody('nope', { max_tokens: 1 }));
    assert.deepEqual([unknown.status, unknown.headers.get('x-should-retry')], [404, 'false']);
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0 });
    await assert.rejects(
      client.chat.completions.create(chatBody('cap', { max_tokens: 1 }) as never),
      (e: unknown) => e instanceof OpenAI.RateLimitError && e.status === 429,
    );
    g.open();
    for (const x of await Promise.all([running, ...queued])) assert.equal(x.status, 200);
    assert.match(await (await fetch(`${s.url}/metrics`)).text(), /blip_rejected_total\{reason="queue_full"\} 2/);
  } finally {
    g.open();
    await s.close();
  }
});

test('Retry-After counts the waiting requests in model calls of --max-batch: 16 waiting at --max-batch 8 are 2 calls', async () => {
  const g = gate();
  g.open();
  const s = await start(g, { maxBatch: 8, maxQueue: 16 });
  try {
    const url = `${s.url}/v1/chat/completions`;
    s.scheduler.hold();
    const queued = Array.from({ length: 16 }, () => post(url, chatBody('cap', { max_tokens: 1 })));
    await until(async () => (await health(s.url)).queue_depth === 16, '16 queued requests');
    const r = await post(url, chatBody('cap', { max_tokens: 1 }));
    assert.equal(r.status, 429);
    // no call has run yet, so each is taken to last 1 s
    assert.equal(r.headers.get('retry-after'), '2');
    assert.equal(r.json.error.message, 'the server is busy: 16 requests are waiting (--max-queue 16); retry in 2 s');
    s.scheduler.release();
    for (const x of await Promise.all(queued)) assert.equal(x.status, 200);
  } finally {
    g.open();
    await s.close();
  }
});

test('a request past --timeout-ms is cancelled with 408 and its slot freed, queued or running', async () => {
  const g = gate();
  const s = await start(g, { maxBatch: 1, maxQueue: 4, timeoutMs: 300 });
  try {
    const url = `${s.url}/v1/chat/completions`;
    const [a, b] = await Promise.all([post(url, chatBody('cap', { max_tokens: 2 })), post(url, chatBody('cap', { max_tokens: 2 }))]);
    for (const r of [a, b]) {
      assert.equal(r.status, 408);
      assert.equal(r.json.error.code, 'timeout');
    }
    // the queue slot is free at once; the running batch stops at its next step once the worker can look
    assert.equal((await health(s.url)).queue_depth, 0);
    g.open();
    await until(async () => (await health(s.url)).in_flight === 0 && s.scheduler.busyWorkers()[0][1] === 0, 'the worker to be free');
    const ok = await post(url, chatBody('cap', { max_tokens: 1 }));
    assert.equal(ok.status, 200);
    assert.match(await (await fetch(`${s.url}/metrics`)).text(), /blip_rejected_total\{reason="timeout"\} 2/);
  } finally {
    g.open();
    await s.close();
  }
});

test('a running batch whose requests are all cancelled stops before its next decoding step, beam search too (no onToken while it decodes)', async () => {
  for (const beams of [false, true]) {
    const g = gate();
    const steps = new SharedArrayBuffer(4);
    const s = await start(g, { maxBatch: 1, timeoutMs: 300, backendOptions: { gate: g.gate, log: g.log, steps, beams } });
    try {
      const url = `${s.url}/v1/chat/completions`;
      // the worker is held in its first step (the gate is closed) until the request has timed out
      const r = await post(url, chatBody('cap', { max_tokens: 30 }));
      assert.equal(r.status, 408);
      g.open();
      await until(() => s.scheduler.busyWorkers()[0][1] === 0, 'the worker to be free');
      const run = Atomics.load(new Int32Array(steps), 0);
      assert.ok(run <= 3, `beams ${beams}: ${run} of the 30 steps ran (the request was cancelled during the first)`);
      const ok = await post(url, chatBody('cap', { max_tokens: 2 }));
      assert.equal(ok.status, 200);
    } finally {
      g.open();
      await s.close();
    }
  }
});

test('a client that goes away while queued frees its slot', async () => {
  const g = gate();
  const s = await start(g, { maxBatch: 1 });
  try {
    const url = `${s.url}/v1/chat/completions`;
    const running = post(url, chatBody('cap', { max_tokens: 1 }));
    await until(async () => (await health(s.url)).in_flight === 1, 'a running request');
    const gone = postAbortable(url, chatBody('cap', { max_tokens: 1 }));
    await until(async () => (await health(s.url)).queue_depth === 1, 'the request to queue');
    gone.abort();
    await assert.rejects(gone.response);
    await until(async () => (await health(s.url)).queue_depth === 0, 'the slot to be freed');
    g.open();
    assert.equal((await running).status, 200);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(metrics, /blip_rejected_total\{reason="client_closed"\} 1/);
    // counted as what it was, not as the response's default 200
    await until(async () => /blip_requests_total\{endpoint="chat",status="499"\} 1/.test(await (await fetch(`${s.url}/metrics`)).text()), 'the 499 to be counted');
    assert.match(await (await fetch(`${s.url}/metrics`)).text(), /blip_requests_total\{endpoint="chat",status="200"\} 1\n/);
  } finally {
    g.open();
    await s.close();
  }
});

test('a client that goes away while its request runs: blip_requests_in_flight drops to 0 with /health, the worker stays busy', async () => {
  const g = gate();
  const s = await start(g, { maxBatch: 1 });
  try {
    const url = `${s.url}/v1/chat/completions`;
    const gone = postAbortable(url, chatBody('cap', { max_tokens: 2 }));
    await until(async () => (await health(s.url)).in_flight === 1, 'a running request');
    // in_flight counts it from when its batch is sent; cancelled while the worker still decodes its
    // image, the batch would end before the model is called, freeing the worker
    await until(() => g.batches().length === 1, 'the model to be called (and held by the gate)');
    gone.abort();
    await assert.rejects(gone.response);
    await until(async () => (await health(s.url)).in_flight === 0, 'the request to be cancelled');
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(metrics, /^blip_requests_in_flight\{model="cap"\} 0$/m);
    // its batch still holds the worker (the gate is closed): the gauge counts requests, not batches
    assert.match(metrics, /^blip_workers_busy\{model="cap"\} 1$/m);
  } finally {
    g.open();
    await s.close();
  }
});

test('a client error in a shared batch is attributed by running its requests one at a time', async () => {
  const g = gate();
  g.open();
  const s = await start(g, { maxBatch: 8 });
  try {
    const url = `${s.url}/v1/chat/completions`;
    s.scheduler.hold();
    const pending = ['photo_64x48.jpg', 'rgb_37x23.png', 'photo_50x40.webp'].map((im) => post(url, chatBody('cap', { max_tokens: 1 }, undefined, dataUrl(im))));
    await until(async () => (await health(s.url)).queue_depth === 3, 'three queued requests');
    s.scheduler.release();
    const [a, bad, c] = await Promise.all(pending);
    assert.equal(a.status, 200);
    assert.equal(a.json.choices[0].message.content, '64x48 0');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, 'invalid_generation_settings');
    assert.match(bad.json.error.message, /refuses 37-pixel-wide/);
    assert.equal(c.status, 200);
    assert.equal(c.json.choices[0].message.content, '50x40 0');
    assert.deepEqual(g.batches(), [3, 1, 1, 1]);
  } finally {
    await s.close();
  }
});

test('a worker that dies fails its batch with 500, logged, and is replaced', async () => {
  const g = gate();
  g.open();
  const logs: string[] = [];
  const s = await start(g, { log: (line: string) => logs.push(line) });
  try {
    const url = `${s.url}/v1/chat/completions`;
    const dead = await post(url, chatBody('cap', { max_tokens: 1 }, undefined, dataUrl('gray_45x31.png')));
    assert.equal(dead.status, 500);
    assert.equal(dead.json.error.code, 'worker_failed');
    // a server-side failure is the operator's to see (the fake backend's worker exits with code 3)
    assert.deepEqual(logs.filter((l) => l.startsWith('error:')), ['error: POST /v1/chat/completions: the inference worker of cap failed (exit code 3)']);
    const ok = await post(url, chatBody('cap', { max_tokens: 1 }));
    assert.equal(ok.status, 200);
    assert.equal((await health(s.url)).status, 'ok');
  } finally {
    await s.close();
  }
});

test('streaming through the openai client: role chunk, token deltas, finish_reason, usage', async () => {
  const g = gate();
  g.open();
  const s = await start(g);
  try {
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0 });
    const stream = await client.chat.completions.create({ ...(chatBody('cap', { max_tokens: 3, n: 2, seed: 1 }) as object), stream: true, stream_options: { include_usage: true } } as never);
    const text = ['', ''];
    const finish: Array<string | null> = [null, null];
    let usage: { completion_tokens: number } | undefined;
    for await (const c of stream as unknown as AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>) {
      for (const ch of c.choices) {
        text[ch.index] += ch.delta.content ?? '';
        if (ch.finish_reason) finish[ch.index] = ch.finish_reason;
      }
      if (c.usage) usage = c.usage;
    }
    assert.deepEqual(text, ['w w w ', 'w w w ']);
    assert.deepEqual(finish, ['length', 'length']);
    assert.equal(usage?.completion_tokens, 6);
  } finally {
    await s.close();
  }
});

test('shutdown: stop accepting, finish queued and running requests, then resolve', async () => {
  const g = gate();
  const s = await start(g, { maxBatch: 1 });
  const url = `${s.url}/v1/chat/completions`;
  const running = post(url, chatBody('cap', { max_tokens: 1 }));
  await until(async () => (await health(s.url)).in_flight === 1, 'a running request');
  const queued = post(url, chatBody('cap', { max_tokens: 1 }));
  await until(async () => (await health(s.url)).queue_depth === 1, 'a queued request');
  // their bodies are in: blip serve's SIGTERM line counts them as queued or running, not as still being received
  assert.equal(s.receiving, 0);
  let closed = false;
  const closing = s.close().then(() => (closed = true));
  assert.equal(s.draining, true);
  assert.equal(s.receiving, 0);
  // new connections are refused (the listener is closed) or answered 503 on a kept-alive one
  const late = await post(url, chatBody('cap', { max_tokens: 1 })).catch((e: Error) => ({ status: 0, error: e }));
  assert.ok(late.status === 0 || late.status === 503, `late request got ${late.status}`);
  assert.equal(closed, false);
  g.open();
  assert.equal((await running).status, 200);
  assert.equal((await queued).status, 200);
  await closing;
  assert.equal(closed, true);
});

test('a model whose worker cannot load fails startup with its code', async () => {
  const g = gate();
  const dir = await compiledFixture('blip-caption', 'blip-caption-a');
  await assert.rejects(serve({ models: [{ id: 'cap', dir }], backendModule: fakeBackend(), backendOptions: { gate: g.gate, log: g.log, failLoad: true } }), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'BLIP5043');
    assert.match(e.message, /cannot load model cap: .*fake backend refused to load/);
    return true;
  });
});

test('startServer() options are checked by name for JavaScript callers: a misspelt limit, no models, a model without an id', async () => {
  const dir = await compiledFixture('blip-caption', 'blip-caption-a');
  const untyped = serve as unknown as (o: unknown) => Promise<BlipServer>;
  for (const [opts, re] of [
    [{ models: [{ id: 'cap', dir }], maxBody: 100 }, /^unknown server option 'maxBody' \(the options: .*maxBodyBytes, maxImagePixels.*, maxInputs, log\)$/],
    // the tests' backend hooks are not offered to users (docs/serve.md does not have them)
    [{ models: [{ id: 'cap', dir }], backend: 'x' }, /^unknown server option 'backend' \(the options: (?!.*backend)/],
    // the library's words as well as the command line's
    [{ models: [{ id: 'cap', dir }, { id: 'cap', dir }] }, /^two models are named cap; give each its own name \(NAME=DIR on the command line, id in startServer's models\)$/],
    [{ port: 0 }, /^no model to serve/],
    [{ models: [{ dir }] }, /^each model needs an id .* and a dir, found \{"dir":/],
    [{ models: [{ id: '', dir }] }, /^each model needs an id/],
    // a queue of 0 would refuse every request with 429
    [{ models: [{ id: 'cap', dir }], maxQueue: 0 }, /^maxQueue must be an integer >= 1, found 0$/],
  ] as const) {
    // (a server that starts all the same is closed, so the failing test ends)
    const started = untyped(opts).then(async (srv) => (await srv.close(), srv));
    await assert.rejects(started, (e: Error & { code?: string }) => (assert.equal(e.code, 'BLIP5901', String(e)), assert.match(e.message, re), true));
  }
});

/**
 * A POST over a raw socket (Connection: close) whose body goes in two parts: resolves once the
 * server has routed it (its handler runs before this 'request' listener), with `rest()` to send
 * the second part and `answer`, all the server wrote until it closed the connection.
 */
async function twoPartPost(s: BlipServer, path: string, body: string): Promise<{ rest(): void; answer: Promise<string> }> {
  const u = new URL(s.url);
  const sock = connect(Number(u.port), u.hostname);
  let got = '';
  sock.on('data', (d) => (got += d));
  sock.on('error', () => undefined);
  const answer = new Promise<string>((resolve) => sock.on('close', () => resolve(got)));
  const routed = once(s.http, 'request');
  const half = body.length >> 1;
  sock.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body.slice(0, half)}`);
  await routed;
  return { rest: () => void sock.write(body.slice(half)), answer };
}

test('shutdown: a request whose body is still uploading when it begins is run and answered, however long the upload takes', async () => {
  const g = gate();
  g.open();
  const s = await start(g);
  const body = JSON.stringify(chatBody('cap', { max_tokens: 1 }));
  const soon = await twoPartPost(s, '/v1/chat/completions', body);
  const late = await twoPartPost(s, '/v1/chat/completions', body);
  // what blip serve's SIGTERM line counts beside the queued and running ones
  assert.equal(s.receiving, 2);
  let closed = false;
  const closing = s.close().then(() => (closed = true));
  soon.rest();
  assert.match(await soon.answer, /^HTTP\/1.1 200 [^]*"content":"64x48 0"/);
  // longer than the second the shutdown leaves connections to take their answers
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(closed, false);
  assert.equal(s.receiving, 1);
  late.rest();
  assert.match(await late.answer, /^HTTP\/1.1 200 [^]*"content":"64x48 0"/);
  await closing;
});

test('shutdown: a request still uploading --timeout-ms after it arrived is answered 408 and holds the shutdown no longer', async () => {
  const g = gate();
  g.open();
  const s = await start(g, { timeoutMs: 300 });
  const stuck = await twoPartPost(s, '/v1/chat/completions', JSON.stringify(chatBody('cap', { max_tokens: 1 })));
  await s.close();
  assert.match(await stuck.answer, /^HTTP\/1.1 408 [^]*"code":"timeout"/);
  assert.match(s.metrics.registry.render(), /blip_rejected_total\{reason="timeout"\} 1/);
});

test('shutdown: a request answered 408 whose body then arrives within the grace second is not run, and is counted once', async () => {
  const g = gate();
  g.open();
  const s = await start(g, { timeoutMs: 300 });
  const stuck = await twoPartPost(s, '/v1/chat/completions', JSON.stringify(chatBody('cap', { max_tokens: 1 })));
  const closing = s.close();
  await until(() => /blip_rejected_total\{reason="timeout"\} 1/.test(s.metrics.registry.render()), 'the 408');
  // the rest of the body, before the second the shutdown leaves connections is up: its handler
  // goes on to submit a job the draining scheduler refuses, on a response already sent
  stuck.rest();
  assert.match(await stuck.answer, /^HTTP\/1.1 408 [^]*"code":"timeout"/);
  await closing;
  const counted = s.metrics.registry.render();
  assert.match(counted, /blip_requests_total\{endpoint="chat",status="408"\} 1\n/);
  assert.doesNotMatch(counted, /blip_requests_total\{endpoint="chat",status="(?!408)/);
  assert.match(counted, /blip_rejected_total\{reason="timeout"\} 1\n/);
  assert.doesNotMatch(counted, /blip_rejected_total\{reason="draining"\}/);
});

test('shutdown: a request answered 408 whose body then arrives while another upload holds the shutdown is not run', async () => {
  const g = gate();
  g.open();
  const s = await start(g, { timeoutMs: 1500 });
  const body = JSON.stringify(chatBody('cap', { max_tokens: 1 }));
  const stuck = await twoPartPost(s, '/v1/chat/completions', body);
  // a second later: its deadline leaves the first's body that long to arrive before the scheduler drains
  await new Promise((r) => setTimeout(r, 1000));
  const other = await twoPartPost(s, '/v1/chat/completions', body);
  const closing = s.close();
  await until(() => /blip_rejected_total\{reason="timeout"\} 1/.test(s.metrics.registry.render()), 'the first one\'s 408');
  stuck.rest();
  assert.match(await stuck.answer, /^HTTP\/1.1 408 [^]*"code":"timeout"/);
  other.rest();
  assert.match(await other.answer, /^HTTP\/1.1 200 [^]*"content":"64x48 0"/);
  await closing;
  // one model call, of one row: the other request's
  assert.deepEqual(g.batches(), [1]);
  const counted = s.metrics.registry.render();
  assert.match(counted, /blip_requests_total\{endpoint="chat",status="408"\} 1\n/);
  assert.match(counted, /blip_requests_total\{endpoint="chat",status="200"\} 1\n/);
  assert.match(counted, /blip_rejected_total\{reason="timeout"\} 1\n/);
});
