// blip serve on WebGPU: onnxruntime-node 1.30 crashes the process when two worker threads create or
// run WebGPU sessions at once, so the scheduler gives the device to one worker at a time (loads one
// after another, one WebGPU batch at a time across models and --workers). A fake backend whose
// sessions say "webgpu" counts the workers inside a load or a batch at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chatBody, compiledFixture, health, post, serve, until } from './helpers.js';

function backend(): string {
  const ts = new URL('./webgpu-fake-backend.ts', import.meta.url);
  return import.meta.url.endsWith('.ts') && existsSync(ts) ? ts.href : new URL('./webgpu-fake-backend.js', import.meta.url).href;
}

async function run(device: string): Promise<{ most: number; inFlight: number }> {
  const dir = await compiledFixture('blip-caption', 'blip-caption-a');
  const state = new SharedArrayBuffer(8);
  const gate = new SharedArrayBuffer(4);
  const s = await serve({ models: [{ id: 'a', dir }, { id: 'b', dir }], workers: 2, device, backendModule: backend(), backendOptions: { state, gate, loadMs: 150 } });
  let inFlight = 0;
  try {
    // three requests no batch can share (max_tokens differ), for two models with two workers each
    const done = [post(`${s.url}/v1/chat/completions`, chatBody('a', { max_tokens: 1 })), post(`${s.url}/v1/chat/completions`, chatBody('a', { max_tokens: 2 })), post(`${s.url}/v1/chat/completions`, chatBody('b', { max_tokens: 3 }))];
    await until(async () => {
      const h = await health(s.url);
      return h.in_flight >= 1 && h.in_flight + h.queue_depth === 3;
    }, 'the requests to arrive');
    // (time for a scheduler without turns to start the other two: they would block on the gate too)
    await new Promise((r) => setTimeout(r, 300));
    inFlight = (await health(s.url)).in_flight;
    Atomics.store(new Int32Array(gate), 0, 1);
    for (const r of await Promise.all(done)) assert.equal(r.status, 200, JSON.stringify(r.json));
  } finally {
    Atomics.store(new Int32Array(gate), 0, 1);
    await s.close();
  }
  return { most: Atomics.load(new Int32Array(state), 1), inFlight };
}

test('--device webgpu: one worker at a time loads its model or runs a batch, across models and --workers', async () => {
  const r = await run('webgpu');
  assert.equal(r.inFlight, 1, 'requests running at once');
  assert.equal(r.most, 1, 'workers inside a load or a batch at once');
});

test('--device cpu: the workers of two models run their batches at once', async () => {
  const r = await run('cpu');
  assert.equal(r.inFlight, 3);
  assert.ok(r.most >= 3, `${r.most} at once`);
});
