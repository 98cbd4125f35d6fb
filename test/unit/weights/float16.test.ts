import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bfloat16ToFloat32, float16ToFloat32, float32ToFloat16, floatToHalf, halfToFloat } from '../../../src/weights/float16.js';

test('widening: every one of the 65536 halves gives the value halfToFloat computes', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const wide = float16ToFloat32(all);
  for (let h = 0; h < 65536; h++) {
    const want = halfToFloat(h);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(wide[h]), `half 0x${h.toString(16)}: NaN expected`);
    else assert.equal(wide[h], Math.fround(want), `half 0x${h.toString(16)}`);
  }
  assert.equal(wide[0x3c00], 1);
  assert.equal(wide[0xc000], -2);
  assert.equal(wide[0x0001], 2 ** -24);
  assert.equal(wide[0x7bff], 65504);
  assert.equal(wide[0xfc00], -Infinity);
  assert.ok(Object.is(wide[0x8000], -0));
});

test('narrowing rounds to nearest, ties to even, on the bits of every kind of float32', () => {
  const cases: Array<[number, number]> = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff],
    [65520, 0x7c00], // halfway to the next binade past the largest half: rounds to Infinity
    [65519.99, 0x7bff], [1e6, 0x7c00], [-Infinity, 0xfc00],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], // a tie between 0 and the smallest subnormal: even (0)
    [3 * 2 ** -25, 0x0002], // a tie between 1 and 2 subnormal steps: even (2)
    [1 + 2 ** -11, 0x3c00], // a tie at 1: even (1.0)
    [1 + 3 * 2 ** -11, 0x3c02], // a tie between 0x3c01 and 0x3c02: even
    [2 ** -14, 0x0400], // the smallest normal
    [2 ** -14 - 2 ** -25, 0x0400], // the largest subnormal's neighbourhood rounds up into the normals
  ];
  const src = new Float32Array(cases.map(([x]) => x));
  const out = float32ToFloat16(src);
  cases.forEach(([x, h], i) => {
    assert.equal(out[i], h, `${x}: 0x${out[i].toString(16)}, expected 0x${h.toString(16)}`);
    assert.equal(floatToHalf(x), h, `floatToHalf(${x})`);
  });
  const nan = float32ToFloat16(new Float32Array([NaN]))[0];
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0);
});

test('narrowing then widening is the identity on every finite half, and out arrays are used as given', () => {
  const halves = new Uint16Array(65536).map((_, i) => i).filter((h) => (h & 0x7c00) !== 0x7c00);
  const out = new Float32Array(halves.length + 3).subarray(3); // not at the start of its buffer
  const wide = float16ToFloat32(halves, out);
  assert.equal(wide, out);
  const back = new Uint16Array(halves.length);
  assert.equal(float32ToFloat16(wide, back), back);
  assert.deepEqual(back, halves);
});

test('bfloat16 widening into a given array', () => {
  const out = new Float32Array(5).subarray(1, 3);
  bfloat16ToFloat32(new Uint16Array([0x3f80, 0xc040]), out);
  assert.deepEqual([...out], [1, -3]);
});
