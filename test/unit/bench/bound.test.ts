// The bench's "of bound, probes beside it" column (bench/bound.ts): each timed call is held to the
// bound of the higher of the two bandwidth readings around it, then the calls are averaged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { besideFraction, boundTokensPerSecond, stepWeightBytes } from '../../../bench/bound.js';

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

test('a step reads every weight whole, but a table only Gathers look up by the rows it gathers', () => {
  const bytes = (n: number) => new Uint8Array(n);
  const graph = {
    initializer: [
      { name: 'embed', dims: [100, 8], rawData: bytes(3200) }, // looked up only: 3 rows of 32 bytes
      { name: 'tied', dims: [50, 8], rawData: bytes(1600) }, // looked up and the head's weight: whole
      { name: 'w', dims: [8, 8], rawData: bytes(256) },
      { name: 'inner', dims: [10, 8], rawData: bytes(320) }, // looked up, but also read in a Loop body
      { name: 'ext', dims: [4, 4], externalData: [{ key: 'location', value: 'weights.bin' }, { key: 'length', value: '64' }] },
    ],
    node: [
      { opType: 'Gather', input: ['embed', 'ids'] },
      { opType: 'Gather', input: ['tied', 'ids'] },
      { opType: 'MatMul', input: ['h', 'tied'] },
      { opType: 'MatMul', input: ['h', 'w'] },
      { opType: 'Gather', input: ['inner', 'ids'] },
      { opType: 'Loop', input: ['n', 'c'], attribute: [{ g: { node: [{ opType: 'MatMul', input: ['x', 'inner'] }] } }] },
      { opType: 'Add', input: ['h', 'ext'] },
      { opType: 'Gather', input: ['table_of_ids', 'embed'] }, // 'embed' as the indices of another Gather: a read of it
    ],
  };
  // 'embed' is also the indices input of the last Gather, so it is read whole as well
  assert.equal(stepWeightBytes(graph, 3), 3200 + 1600 + 256 + 320 + 64);
  graph.node.pop();
  assert.equal(stepWeightBytes(graph, 3), 3 * 32 + 1600 + 256 + 320 + 64);
  assert.equal(stepWeightBytes(graph, 200), 3200 + 1600 + 256 + 320 + 64); // never more than the table
});
