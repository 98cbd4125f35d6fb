// The bench's "of bound, probes beside it" column (bench/bound.ts): each timed call is held to the
// bound of the higher of the two bandwidth readings around it, then the calls are averaged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { besideFraction, besideFractions, boundsOf, boundTokensPerSecond, DTYPE_BYTES, kvStepBytes, ofBound, sideStepBytes, stepWeightBytes } from '../../../bench/bound.js';

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

// The blip2-opt-2.7b-fp16-b1 case: blip-graph's float16 artifact against PyTorch in float32. Each
// side's bound counts the bytes it reads: PyTorch holds the weights in float32, and onnxruntime's CPU
// provider runs the float16 graph's products on float32 copies; until 2026-11-30 both rows used the
// artifact's float16 bytes (a bound twice too high for both).
const FLOAT = 1;
const FLOAT16 = 10;
const INT64 = 7;
const fp16Decoder = {
  initializer: [
    { name: 'w16', dataType: FLOAT16, dims: [8, 8], rawData: new Uint8Array(128) },
    { name: 'embed16', dataType: FLOAT16, dims: [100, 8], externalData: [{ key: 'length', value: '1600' }] }, // looked up only
    { name: 'norm32', dataType: FLOAT, dims: [8], rawData: new Uint8Array(32) }, // kept float32 in the fp16 graph
    { name: 'shape', dataType: INT64, dims: [2], rawData: new Uint8Array(16) }, // not a weight to widen
  ],
  node: [
    { opType: 'Gather', input: ['embed16', 'ids'] },
    { opType: 'MatMul', input: ['h', 'w16'] },
    { opType: 'Mul', input: ['h', 'norm32'] },
    { opType: 'Reshape', input: ['h', 'shape'] },
  ],
};

test('float weights count at the element size the reader holds them in; other initializers as stored', () => {
  assert.equal(stepWeightBytes(fp16Decoder, 2), 128 + 2 * 16 + 32 + 16, 'as stored');
  assert.equal(stepWeightBytes(fp16Decoder, 2, 4), 256 + 2 * 32 + 32 + 16, 'float32: float16 weights doubled, a looked-up row too');
  assert.equal(stepWeightBytes(fp16Decoder, 2, 2), 128 + 2 * 16 + 16 + 16, 'float16: float32 ones halved');
});

test("each side's step bytes at its own dtypes: weights and KV cache, per output token", () => {
  const kv = { layers: 2, kvHeads: 4, headDim: 8, batch: 2, beams: 1, meanSelf: 10, crossLength: 0 };
  assert.equal(kvStepBytes(kv, 4), 2 * 2 * 2 * 4 * 8 * 4 * 10);
  const torchFloat32 = sideStepBytes(fp16Decoder, kv, DTYPE_BYTES.float32, DTYPE_BYTES.float32);
  assert.deepEqual(torchFloat32, { weights: stepWeightBytes(fp16Decoder, 2, 4) / 2, kv: kvStepBytes(kv, 4) / 2, total: (stepWeightBytes(fp16Decoder, 2, 4) + kvStepBytes(kv, 4)) / 2 });
  const halfKv = sideStepBytes(fp16Decoder, kv, DTYPE_BYTES.float32, DTYPE_BYTES.float16);
  assert.equal(halfKv.kv, torchFloat32.kv / 2);
  // beams: the self-attention cache of every beam, the cross K/V once per image; weights by the rows looked up
  const beams = { ...kv, beams: 3, crossLength: 5 };
  assert.equal(kvStepBytes(beams, 4), 2 * 2 * 2 * 4 * 8 * 4 * (10 * 3 + 5));
  assert.equal(sideStepBytes(fp16Decoder, beams, 4, 4).weights, stepWeightBytes(fp16Decoder, 6, 4) / 2);
});

// Issue 7 defines the bound as the weight bytes a token reads over the bandwidth; the bench's single
// fraction counted the KV cache's bytes too. Both are reported.
test('the decode is held to the weights-only bound of issue 7 and to the weights + KV one', () => {
  const step = { weights: 400e6, kv: 100e6, total: 500e6 }; // at 50 GB/s: 125 and 100 tok/s
  assert.deepEqual(boundsOf(50, step), { weights: 125, weights_kv: 100 });
  assert.deepEqual(ofBound(75, 50, step), { weights: 0.6, weights_kv: 0.75 });
  const calls = [{ decode_tokens_per_s: 75, bandwidth_before_gb_s: 40, bandwidth_after_gb_s: 50 }];
  assert.deepEqual(besideFractions(calls, step), { fractions: { weights: 0.6, weights_kv: 0.75 }, readings: [40, 50] });
});
