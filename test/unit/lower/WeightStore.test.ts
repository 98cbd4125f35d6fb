import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WeightStore } from '../../../src/lower/WeightStore.js';
import { floatToHalf } from '../../../src/weights/float16.js';
import type { Scratch } from '../../../src/weights/Scratch.js';

for (const floatType of ['float32', 'float16'] as const) {
  test(`weights produced in scratch memory are written intact, one after another (${floatType})`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ws-'));
    try {
      const store = new WeightStore(floatType);
      const seen: Scratch[] = [];
      const buffers: ArrayBufferLike[] = [];
      const sizes = [3000, 1000, 3000, 17];
      sizes.forEach((n, t) =>
        store.define({
          key: `w${t}`,
          dims: [n],
          produce: (s) => {
            assert.ok(s, 'the store hands producers its scratch');
            seen.push(s);
            const out = s.float32(n);
            buffers.push(out.buffer);
            for (let i = 0; i < n; i++) out[i] = t * 1000 + (i % 997) * 0.25;
            return out;
          },
        }),
      );
      const path = join(dir, 'weights.bin');
      await store.writeAll(path);
      assert.ok(seen.every((s) => s === seen[0]), 'one scratch for the whole write');
      assert.equal(buffers[2], buffers[1], 'memory reused once a round has fitted');
      const file = readFileSync(path);
      sizes.forEach((n, t) => {
        const loc = store.location(`w${t}`);
        for (let i = 0; i < n; i += 7) {
          const want = t * 1000 + (i % 997) * 0.25;
          if (floatType === 'float32') assert.equal(file.readFloatLE(loc.offset + 4 * i), want, `w${t}[${i}]`);
          else assert.equal(file.readUInt16LE(loc.offset + 2 * i), floatToHalf(want), `w${t}[${i}]`);
        }
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('a float16 store asked for one tensor as float32 and as float16 writes one copy of each, rounded once from the data, and counts its parameters once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ws-'));
  try {
    const store = new WeightStore('float16');
    const data = Float32Array.from({ length: 6 }, (_, i) => 1 + i / 3); // not halves: the copies differ
    const produce = () => Float32Array.from(data);
    const kept = store.define({ key: 'w:T', dims: [2, 3], storeAs: 'float32', produce });
    const half = store.define({ key: 'w:T', dims: [2, 3], produce });
    assert.equal(kept, 'w:T');
    assert.equal(half, 'w:T:float16');
    assert.equal(store.define({ key: 'w:T', dims: [2, 3], produce }), 'w:T:float16', 'the float16 copy is shared by its readers');
    assert.equal(store.define({ key: 'w:T', dims: [2, 3], storeAs: 'float32', produce }), 'w:T');
    assert.equal(store.parameters([kept, half]), 6);
    const path = join(dir, 'weights.bin');
    await store.writeAll(path);
    const file = readFileSync(path);
    const [f32, f16] = [store.location(kept), store.location(half)];
    assert.deepEqual([f32.dataType, f16.dataType], ['float32', 'float16']);
    data.forEach((x, i) => {
      assert.equal(file.readFloatLE(f32.offset + 4 * i), Math.fround(x));
      assert.equal(file.readUInt16LE(f16.offset + 2 * i), floatToHalf(x));
    });
    // the other order: a float16 read first, then a float32 one
    const other = new WeightStore('float16');
    assert.equal(other.define({ key: 'v', dims: [6], produce }), 'v');
    assert.equal(other.define({ key: 'v', dims: [6], storeAs: 'float32', produce }), 'v:float32');
    // a float32 store has one storage: storeAs float32 is what it does anyway
    const plain = new WeightStore('float32');
    assert.equal(plain.define({ key: 'v', dims: [6], produce }), 'v');
    assert.equal(plain.define({ key: 'v', dims: [6], storeAs: 'float32', produce }), 'v');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
