// The bench's "of bound, probes beside it" column (bench/bound.ts): each timed call is held to the
// bound of the higher of the two bandwidth readings around it, then the calls are averaged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { besideFraction, boundTokensPerSecond } from '../../../bench/bound.js';

test('the bound is bandwidth over the bytes a token reads', () => {
  // 50 GB/s over 500 MB a token: 100 tokens/s at most
  assert.equal(boundTokensPerSecond(50, 500e6), 100);
});

test('each call is held to the higher reading beside it, then the calls are averaged', () => {
  const step = 500e6; // 50 GB/s -> 100 tok/s, 40 GB/s -> 80 tok/s
  const calls = [
    { decode_tokens_per_s: 70, bandwidth_before_gb_s: 40, bandwidth_after_gb_s: 50 }, // 70 / 100
    { decode_tokens_per_s: 60, bandwidth_before_gb_s: 50, bandwidth_after_gb_s: 30 }, // 60 / 100, not 60 / 60
    { decode_tokens_per_s: 64, bandwidth_before_gb_s: 30, bandwidth_after_gb_s: 40 }, // 64 / 80
  ];
  const b = besideFraction(calls, step);
  assert.ok(Math.abs(b.fraction - (0.7 + 0.6 + 0.8) / 3) < 1e-12, `fraction ${b.fraction}`);
  assert.deepEqual(b.readings, [40, 50, 30, 40]);
});

test('no calls is an error, not NaN', () => {
  assert.throws(() => besideFraction([], 1), /no timed calls/);
});
