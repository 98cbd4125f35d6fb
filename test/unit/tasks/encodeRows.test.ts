// runtime/tasks/encodeRows: encode.onnx run a few rows at a time gives the batch's outputs bit for
// bit; release() empties the buffers it hands back and leaves views and shared buffers alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readManifest } from '../../../src/artifact/manifest.js';
import { openSession } from '../../../runtime/session.js';
import { encodeInRows, release } from '../../../runtime/tasks/encodeRows.js';
import { compileFixture, tempDir } from './harness.js';

/** Feeds for every input of encode.onnx, B rows that differ (the text of the last row padded). */
function feedsFor(inputs: Array<{ name: string; type: string; shape: Array<string | number> }>, B: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const inp of inputs) {
    const dims = inp.shape.map((d, i) => (i === 0 ? B : typeof d === 'number' ? d : 7));
    const n = dims.reduce((a, b) => a * b, 1);
    const per = n / B;
    if (inp.type === 'float32') feeds[inp.name] = new ort.Tensor('float32', Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.731) * 1.5), dims);
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
