// topk (runtime/generation/topk.ts), which beam search calls on beams x vocabulary scores every
// step: the same indices as sorting the whole row (descending, ties by lower index, NaN as
// -Infinity), for rows full of ties, infinities and every k.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topk } from '../../../runtime/generation/topk.js';

function bySorting(vals: ArrayLike<number>, k: number): number[] {
  const v = (i: number) => (Number.isNaN(vals[i]) ? -Infinity : vals[i]);
  const idx = Array.from({ length: vals.length }, (_, i) => i);
  idx.sort((a, b) => (v(a) > v(b) ? -1 : v(a) < v(b) ? 1 : a - b));
  return idx.slice(0, Math.max(0, k));
}

function rows(seed: number): Float32Array[] {
  let s = seed;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const special = [-Infinity, Infinity, NaN, 0, -0];
  return [1, 2, 7, 50, 1000].map((n) =>
    Float32Array.from({ length: n }, () => {
      const r = u();
      if (r < 0.1) return special[Math.floor(u() * special.length)];
      return r < 0.6 ? Math.floor(u() * 4) - 2 : (u() - 0.5) * 20; // many exact ties
    }),
  );
}

test('topk agrees with sorting the row, ties by lower index, for k from 0 past the row length', () => {
  for (let seed = 1; seed <= 20; seed++) {
    for (const row of rows(seed)) {
      for (const k of [0, 1, 2, 3, 6, 10, row.length - 1, row.length, row.length + 3]) {
        assert.deepEqual(topk(row, k), bySorting(row, k), `seed ${seed}, n ${row.length}, k ${k}`);
      }
    }
  }
});

test('topk of a plain array: descending, equal values in index order', () => {
  assert.deepEqual(topk([1, 5, 3, 5, 2, 5], 4), [1, 3, 5, 2]);
  assert.deepEqual(topk([NaN, -Infinity, -1], 3), [2, 0, 1]);
});
