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
