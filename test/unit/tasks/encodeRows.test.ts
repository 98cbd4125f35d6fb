// runtime/tasks/encodeRows: encode.onnx run a few rows at a time gives the batch's outputs bit for
// bit, also into buffers a previous batch left (EncodeBuffers); release() empties the buffers it
// hands back and leaves views and shared buffers alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readManifest } from '../../../src/artifact/manifest.js';
import { openSession } from '../../../runtime/session.js';
import { load } from '../../../runtime/model.js';
import { EncodeBuffers, encodeInRows, release } from '../../../runtime/tasks/encodeRows.js';
import { compileFixture, expected, imagesOf, tempDir } from './harness.js';

/** Feeds for every input of encode.onnx, B rows that differ (the text of the last row padded). */
function feedsFor(inputs: Array<{ name: string; type: string; shape: Array<string | number> }>, B: number, phase = 0): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const inp of inputs) {
    const dims = inp.shape.map((d, i) => (i === 0 ? B : typeof d === 'number' ? d : 7));
    const n = dims.reduce((a, b) => a * b, 1);
    const per = n / B;
    if (inp.type === 'float32') feeds[inp.name] = new ort.Tensor('float32', Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.731 + phase) * 1.5), dims);
    else if (inp.name.endsWith('attention_mask')) feeds[inp.name] = new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => (Math.floor(i / per) === B - 1 && i % per >= per - 2 ? 0n : 1n)), dims);
    else feeds[inp.name] = new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(((i * 7) % 20) + 3)), dims);
  }
  return feeds;
}

for (const fixture of ['blip-caption-a', 'blip-vqa-a']) {
  test(`${fixture}: encode.onnx a row (or two) at a time equals the whole batch, bit for bit`, async () => {
    const tmp = tempDir('blip-rows-');
    try {
      const dir = await compileFixture(fixture, tmp.dir);
      const m = readManifest(dir);
      const { session } = await openSession(join(dir, m.graphs.encode!.file), { device: 'cpu', threads: 1 });
      const B = 3;
      const whole = await session.run(feedsFor(m.graphs.encode!.inputs, B));
      assert.ok(Object.keys(whole).length >= 2);
      for (const rows of [1, 2]) {
        const got = await encodeInRows(session, feedsFor(m.graphs.encode!.inputs, B), B, rows);
        assert.deepEqual(Object.keys(got).sort(), Object.keys(whole).sort());
        for (const [k, t] of Object.entries(whole)) {
          assert.deepEqual(got[k].dims, t.dims, k);
          assert.equal(got[k].type, t.type, k);
          const a = got[k].data as Float32Array;
          const b = t.data as Float32Array;
          assert.ok(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)), `${k} with ${rows} row(s) per run`);
        }
      }
      await session.release();
    } finally {
      tmp.remove();
    }
  });
}

test('release() empties whole unshared buffers; views and smaller typed arrays keep their data', () => {
  const owned = new ort.Tensor('float32', new Float32Array(6).fill(1), [2, 3]);
  const base = new Float32Array(8).fill(2);
  const view = new ort.Tensor('float32', base.subarray(0, 4), [4]);
  release({ owned, view, again: owned });
  assert.equal((owned.data as Float32Array).length, 0);
  assert.equal((view.data as Float32Array).length, 4);
  assert.equal(base[7], 2);
});

/** Whether two typed arrays hold the same bytes. */
function sameBytes(a: ort.Tensor, b: ort.Tensor): boolean {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
}

test('blip-caption-a: a batch encoded in rows reuses the buffers the previous batch of its size left, and writes every row of them', async () => {
  const tmp = tempDir('blip-rows-');
  try {
    const dir = await compileFixture('blip-caption-a', tmp.dir);
    const m = readManifest(dir);
    const { session } = await openSession(join(dir, m.graphs.encode!.file), { device: 'cpu', threads: 1 });
    const inputs = m.graphs.encode!.inputs;
    const buffers = new EncodeBuffers();
    const first = await encodeInRows(session, feedsFor(inputs, 3, 0), 3, 1, buffers);
    assert.equal(buffers.bytes, 0, 'nothing kept before a batch gives its buffers back');
    buffers.keep(first);
    const keptBytes = buffers.bytes;
    assert.equal(keptBytes, Object.values(first).reduce((n, t) => n + (t.data as Float32Array).byteLength, 0));
    // other inputs: every row of the reused buffers must be overwritten
    const second = await encodeInRows(session, feedsFor(inputs, 3, 1), 3, 1, buffers);
    const want = await session.run(feedsFor(inputs, 3, 1));
    for (const [k, t] of Object.entries(want)) {
      assert.equal(second[k].data, first[k].data, `${k}: the kept buffer is reused`);
      assert.ok(sameBytes(second[k], t), `${k} equals one run over the new inputs`);
    }
    assert.equal(buffers.bytes, 0, 'a buffer in use is not kept for another batch meanwhile');
    buffers.keep(second);
    // a batch of another size makes its own and hands the kept set back at once (no two sets held)
    const secondData = Object.fromEntries(Object.entries(second).map(([k, t]) => [k, t.data as Float32Array]));
    const third = await encodeInRows(session, feedsFor(inputs, 2, 2), 2, 1, buffers);
    const want3 = await session.run(feedsFor(inputs, 2, 2));
    for (const [k, t] of Object.entries(want3)) {
      assert.notEqual(third[k].data, secondData[k], k);
      assert.equal(secondData[k].length, 0, `${k}: the batch of 3's buffer was handed back`);
      assert.ok(sameBytes(third[k], t), k);
    }
    assert.equal(buffers.bytes, 0);
    buffers.keep(third);
    assert.equal(buffers.bytes, (keptBytes / 3) * 2);
    const thirdData = Object.values(third).map((t) => t.data as Float32Array);
    buffers.clear();
    assert.equal(buffers.bytes, 0);
    assert.ok(thirdData.every((d) => d.length === 0), 'clear() hands the kept buffers back');
    await session.release();
  } finally {
    tmp.remove();
  }
});

test('EncodeBuffers: take() gives a buffer of that output, type and length once, and hands back one that does not fit; keep() hands back the one it replaces', () => {
  const buffers = new EncodeBuffers();
  const f = new Float32Array(6);
  const view = new Float32Array(8).subarray(0, 4);
  buffers.keep({ a: new ort.Tensor('float32', f, [2, 3]), v: new ort.Tensor('float32', view, [4]) });
  assert.equal(buffers.bytes, 24, 'a view of a larger buffer is not kept');
  assert.equal(buffers.take('b', Float32Array, 6), undefined);
  assert.equal(buffers.take('a', Float32Array, 6), f);
  assert.equal(buffers.take('a', Float32Array, 6), undefined, 'taken once');
  const g = new Float32Array(6);
  buffers.keep({ a: new ort.Tensor('float32', g, [2, 3]) });
  assert.equal(buffers.take('a', Float32Array, 4), undefined, 'another length');
  assert.equal(g.length, 0, 'handed back, not kept beside the batch that could not use it');
  assert.equal(buffers.bytes, 0);
  const h = new Float32Array(6);
  buffers.keep({ a: new ort.Tensor('float32', h, [2, 3]) });
  assert.equal(buffers.take('a', Int32Array, 6), undefined, 'another type');
  assert.equal(h.length, 0);
  const x = new Float32Array(6);
  const y = new Float32Array(6);
  buffers.keep({ a: new ort.Tensor('float32', x, [2, 3]) });
  buffers.keep({ a: new ort.Tensor('float32', y, [2, 3]) });
  assert.equal(x.length, 0, 'the replaced buffer is handed back');
  assert.equal(buffers.take('a', Float32Array, 6), y);
});

test('blip-caption-a: a model reuses its last batch\'s buffers, alone and with calls running together, and gives each call what a fresh model gives it', async () => {
  const tmp = tempDir('blip-rows-');
  const take = EncodeBuffers.prototype.take;
  let reused = 0;
  EncodeBuffers.prototype.take = function (this: EncodeBuffers, ...args: Parameters<typeof take>) {
    const b = take.apply(this, args);
    if (b) reused++;
    return b;
  };
  try {
    const dir = await compileFixture('blip-caption-a', tmp.dir);
    const images = imagesOf(expected('blip-caption-a')).slice(0, 2);
    assert.equal(images.length, 2);
    const swapped = [images[1], images[0]];
    const model = await load(dir, { threads: 1 });
    const fresh = await load(dir, { threads: 1 });
    try {
      const opts = { maxNewTokens: 6, minNewTokens: 6, batchSize: 2 };
      const before = await model.generate(images, opts);
      assert.equal(reused, 0);
      const after = await model.generate(swapped, opts); // into the buffers the first call left
      assert.ok(reused > 0, 'the second batch of 2 took the kept buffers');
      const want = await fresh.generate(swapped, opts);
      assert.deepEqual(after.map((r) => r.tokenIds), want.map((r) => r.tokenIds));
      assert.deepEqual(after.map((r) => r.tokenIds), [before[1].tokenIds, before[0].tokenIds]);
      // calls running together (one with beams): none reads a buffer another one writes
      const beams = { ...opts, numBeams: 2 };
      const [x, y, z] = await Promise.all([model.generate(images, opts), model.generate(swapped, beams), model.generate(images, { ...opts, onToken: () => new Promise<void>((r) => setTimeout(r, 1)) })]);
      assert.deepEqual(x.map((r) => r.tokenIds), before.map((r) => r.tokenIds));
      assert.deepEqual(y.map((r) => r.tokenIds), (await fresh.generate(swapped, beams)).map((r) => r.tokenIds));
      assert.deepEqual(z.map((r) => r.tokenIds), before.map((r) => r.tokenIds));
    } finally {
      await model.close();
      await fresh.close();
    }
  } finally {
    EncodeBuffers.prototype.take = take;
    tmp.remove();
  }
});
