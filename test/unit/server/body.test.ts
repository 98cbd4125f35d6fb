// Request bodies the server refuses or never gets whole: what the client reads, and what /metrics
// counts. The fake backend stands in for the model (no request here reaches it).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { promisify } from 'node:util';
import type { BlipServer } from '../../../runtime/server/index.js';
import { compiledFixture, fakeBackend, serve, until } from './helpers.js';

let s: BlipServer;

before(async () => {
  const dir = await compiledFixture('blip-caption', 'blip-caption-a');
  // the default --max-body (20 MiB): a body over it is far more than a socket's buffers hold
  s = await serve({ models: [{ id: 'cap', dir }], backendModule: fakeBackend(), backendOptions: { gate: new SharedArrayBuffer(4), log: new SharedArrayBuffer(8) } });
});

after(async () => {
  await s?.close();
});

const MiB = 1024 * 1024;

/**
 * POST a body of `mib` MiB (Content-Length, or chunked) `times` times with Node's fetch from
 * another process (in this one, the client's writes interleave with the server's event loop and the
 * race does not show): a tally of statuses and error codes, and the distinct error messages.
 */
async function fetchBigBodies(url: string, mib: number, times: number, chunked: boolean): Promise<{ tally: Record<string, number>; messages: string[] }> {
  const script = `
    const [url, mib, times, chunked] = process.argv.slice(1);
    const head = '{"model":"cap","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,';
    const tail = '"}}]}]}';
    const mb = Buffer.alloc(1024 * 1024, 'A');
    const tally = {}, messages = new Set();
    for (let k = 0; k < +times; k++) {
      const body = chunked === '1'
        ? new ReadableStream({ start(c) { c.enqueue(Buffer.from(head)); for (let i = 0; i < +mib; i++) c.enqueue(mb); c.enqueue(Buffer.from(tail)); c.close(); } })
        : head + mb.toString().repeat(+mib) + tail;
      let key;
      try {
        const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body, duplex: 'half' });
        const j = await r.json();
        key = r.status + ' ' + j.error.code + ' ' + r.headers.get('connection');
        messages.add(j.error.message);
      } catch (e) { key = e.cause?.code ?? e.message; }
      tally[key] = (tally[key] ?? 0) + 1;
    }
    console.log(JSON.stringify({ tally, messages: [...messages] }));`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, url, String(mib), String(times), chunked ? '1' : '0'], { encoding: 'utf8' });
  return JSON.parse(stdout) as { tally: Record<string, number>; messages: string[] };
}

test('a body over --max-body is answered 413 to a client still uploading it (fetch), naming the declared size', async () => {
  const r = await fetchBigBodies(`${s.url}/v1/chat/completions`, 21, 20, false);
  assert.deepEqual(r.tally, { '413 request_too_large close': 20 });
  const size = 21 * MiB + 122;
  assert.deepEqual(r.messages, [`the request body is ${size} bytes; at most ${20 * MiB} are accepted (--max-body)`]);
});

test('a body over --max-body without a Content-Length (chunked) is answered 413 as well', async () => {
  const r = await fetchBigBodies(`${s.url}/v1/chat/completions`, 40, 3, true);
  assert.deepEqual(r.tally, { '413 request_too_large close': 3 });
  assert.deepEqual(r.messages, [`the request body is more than ${20 * MiB} bytes; at most ${20 * MiB} are accepted (--max-body)`]);
});

/** Connect to `s` and send `head`; `answer` is all the server wrote until the connection closed. */
function rawSocket(s: BlipServer, head: string): { sock: Socket; answer: Promise<string>; closed: () => boolean } {
  const u = new URL(s.url);
  const sock = connect(Number(u.port), u.hostname);
  let got = '';
  let closed = false;
  sock.on('data', (d) => (got += d));
  sock.on('error', () => undefined);
  const answer = new Promise<string>((resolve) => sock.on('close', () => ((closed = true), resolve(got))));
  sock.write(head);
  return { sock, answer, closed: () => closed };
}

test('a body declared larger than 4 x --max-body is not read: the 413 comes and the connection closes at once', { timeout: 30_000 }, async () => {
  const { sock, answer } = rawSocket(s, `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${80 * MiB + 1}\r\n\r\n{"model":`);
  const a = await answer;
  assert.match(a, /^HTTP\/1.1 413 [^]*\r\nConnection: close\r\n[^]*the request body is 83886081 bytes; at most 20971520 are accepted/);
  assert.equal(sock.destroyed, true);
});

test('an endless chunked body is read on for at most 4 x --max-body past the limit, then cut', { timeout: 60_000 }, async () => {
  const small = await serve({ models: s.models.map((m) => ({ id: m.id, dir: m.dir })), maxBodyBytes: MiB, backendModule: fakeBackend(), backendOptions: { gate: new SharedArrayBuffer(4), log: new SharedArrayBuffer(8) } });
  try {
    const c = rawSocket(small, 'POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
    const piece = Buffer.alloc(64 * 1024, 'A');
    const frame = Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]);
    let sent = 0;
    while (!c.closed() && sent < 64 * MiB) {
      sent += piece.length;
      if (!c.sock.write(frame)) await Promise.race([new Promise((r) => c.sock.once('drain', r)), c.answer]);
    }
    assert.match(await c.answer, /^HTTP\/1.1 413 [^]*the request body is more than 1048576 bytes/);
    // the limit, then 4 MiB read on; what the socket buffers held when it closed comes on top
    assert.ok(sent > 5 * MiB && sent < 24 * MiB, `${sent / MiB} MiB sent`);
  } finally {
    await small.close();
  }
});

test('a body of exactly --max-body bytes is read, with a Content-Length or chunked, as JSON or a +json media type; one byte more is 413', async () => {
  // read and parsed, it reaches the model lookup: 404 model_not_found, not 413 or 415
  const body = JSON.stringify({ model: 'nope', input: 'a'.repeat(200) });
  const limit = Buffer.byteLength(body);
  const exact = await serve({ models: s.models.map((m) => ({ id: m.id, dir: m.dir })), maxBodyBytes: limit, backendModule: fakeBackend(), backendOptions: { gate: new SharedArrayBuffer(4), log: new SharedArrayBuffer(8) } });
  try {
    const status = (a: string) => /^HTTP\/1.1 (\d+) [^]*"code":"(\w+)"/.exec(a)?.slice(1).join(' ');
    const declared = (type: string, b: string) => rawSocket(exact, `POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(b)}\r\nConnection: close\r\n\r\n${b}`).answer;
    // two chunks, so the size is only known as it arrives
    const chunked = (b: string) => {
      const [p, q] = [b.slice(0, 100), b.slice(100)];
      const frames = `${p.length.toString(16)}\r\n${p}\r\n${q.length.toString(16)}\r\n${q}\r\n0\r\n\r\n`;
      return rawSocket(exact, `POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${frames}`).answer;
    };
    assert.equal(status(await declared('application/json', body)), '404 model_not_found');
    assert.equal(status(await chunked(body)), '404 model_not_found');
    assert.equal(status(await declared('application/vnd.api+json; charset=utf-8', body)), '404 model_not_found');
    const over = `${body} `;
    assert.equal(status(await declared('application/json', over)), '413 request_too_large');
    assert.equal(status(await chunked(over)), '413 request_too_large');
  } finally {
    await exact.close();
  }
});

test('a client that goes away while uploading its body is counted as 499 client_closed, not as a 400', async () => {
  const body = JSON.stringify({ model: 'cap', image: `data:image/png;base64,${'A'.repeat(4096)}`, texts: ['a'] });
  for (let k = 0; k < 3; k++) {
    const routed = once(s.http, 'request');
    const c = rawSocket(s, `POST /v1/itm HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 100)}`);
    await routed;
    c.sock.destroy();
    await c.answer;
  }
  const counted = () => s.metrics.registry.render();
  await until(() => /blip_requests_total\{endpoint="itm",status="\d+"\} 3/.test(counted()), 'the three requests to be counted');
  assert.match(counted(), /blip_requests_total\{endpoint="itm",status="499"\} 3/);
  assert.match(counted(), /blip_rejected_total\{reason="client_closed"\} 3/);
});

test('a body that breaks the HTTP framing midway is answered 400 bad_request and counted as such', async () => {
  const routed = once(s.http, 'request');
  const c = rawSocket(s, 'POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"mod\r\n');
  await routed;
  c.sock.write('not a chunk size\r\n');
  assert.match(await c.answer, /^HTTP\/1.1 400 [^]*"code":"bad_request"/);
  const counted = () => s.metrics.registry.render();
  await until(() => /blip_requests_total\{endpoint="embeddings",status="\d+"\} 1/.test(counted()), 'the request to be counted');
  assert.match(counted(), /blip_requests_total\{endpoint="embeddings",status="400"\} 1/);
});
