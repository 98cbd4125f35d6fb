// The bench's "same tokens" (bench/agreement.ts): both sides are asked for exactly N new tokens, so a
// blip-graph row shorter than N is a disagreement. It was compared only as far as its own length, so
// an empty or cut-short row counted as the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sameNewTokens } from '../../../bench/agreement.js';

const torch = [
  [101, 7, 8, 1, 2, 3, 4], // prompt 101 7 8, then the new tokens 1 2 3 4
  [101, 7, 8, 5, 6, 7, 8],
];

test("the same new tokens: each row exactly N long and equal to the end of transformers' row", () => {
  assert.equal(sameNewTokens([[1, 2, 3, 4], [5, 6, 7, 8]], torch, 4), true);
  assert.equal(sameNewTokens([[1, 2, 3, 9], [5, 6, 7, 8]], torch, 4), false);
});

test('a short or empty row, or a missing one, is not the same', () => {
  assert.equal(sameNewTokens([[1, 2, 3], [5, 6, 7, 8]], torch, 4), false);
  assert.equal(sameNewTokens([[], [5, 6, 7, 8]], torch, 4), false);
  assert.equal(sameNewTokens([[1, 2, 3, 4]], torch, 4), false);
  assert.equal(sameNewTokens([[1, 2, 3, 4], [5, 6, 7, 8]], [[2, 3, 4], torch[1]], 4), false, "transformers' row shorter than N");
});
