// order() sorts a whole vocabulary row for top-p / min-p / typical-p every sampled token: one native
// sort of packed (value bits, index) keys. It must order exactly as the comparator sort it replaced:
// by value, ties by lower index, -0 as +0, infinities at the ends and NaN above +Infinity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { order } from '../../../runtime/generation/processors.js';

/** The reference: a comparator sort by value, then index (NaN above everything). */
function reference(row: Float32Array, descending: boolean): number[] {
  const rank = (x: number): number => (x !== x ? Infinity : x);
  const idx = Array.from({ length: row.length }, (_, i) => i);
  idx.sort((a, b) => {
    const [x, y] = [rank(row[a]), rank(row[b])];
    const nanA = row[a] !== row[a];
    const nanB = row[b] !== row[b];
    if (nanA !== nanB) return (nanA ? 1 : -1) * (descending ? -1 : 1);
    if (x !== y) return (x < y ? -1 : 1) * (descending ? -1 : 1);
    return a - b;
  });
  return idx;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

test('order: a 50272-entry row with ties, zeros of both signs, infinities and NaN, both directions', () => {
  const r = lcg(7);
  const V = 50272;
  const row = new Float32Array(V);
  for (let i = 0; i < V; i++) {
    const u = r();
    row[i] = u < 0.2 ? Math.round(r() * 8) - 4 : u < 0.25 ? (r() < 0.5 ? -0 : 0) : u < 0.28 ? -Infinity : u < 0.29 ? Infinity : u < 0.295 ? NaN : (r() - 0.5) * 60;
  }
  for (const descending of [false, true]) assert.deepEqual(Array.from(order(row, descending)), reference(row, descending), `descending ${descending}`);
});

test('order: tiny and extreme magnitudes (subnormals, float32 max) keep their order', () => {
  const row = Float32Array.from([1e-45, -1e-45, 3.4028234663852886e38, -3.4028234663852886e38, 1.1754943508222875e-38, 0, -2, -2, 5]);
  assert.deepEqual(Array.from(order(row, false)), [3, 6, 7, 1, 5, 0, 4, 8, 2]);
  assert.deepEqual(Array.from(order(row, true)), [2, 8, 4, 0, 5, 1, 6, 7, 3]);
});
