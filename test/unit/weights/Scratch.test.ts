import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Scratch } from '../../../src/weights/Scratch.js';

test('a first round allocates; after reset the next round gets the same memory, aligned', () => {
  const s = new Scratch();
  const a = s.float32(1000);
  const b = s.uint16(7);
  s.bytes(3);
  assert.equal(s.capacity, 0);
  a.fill(1);
  s.reset();
  assert.ok(s.capacity >= 4000 + 14);
  const c = s.float32(1000);
  const e = s.uint16(7);
  const d = s.bytes(3);
  assert.equal(c.buffer, d.buffer, 'one buffer for the round');
  assert.equal(c.buffer, e.buffer);
  assert.notEqual(c.buffer, a.buffer);
  for (const v of [c, d, e]) assert.equal(v.byteOffset % 64, 0);
  assert.ok(e.byteOffset >= c.byteOffset + c.byteLength, 'no overlap');
  assert.ok(d.byteOffset >= e.byteOffset + e.byteLength, 'no overlap');
  assert.equal(b.length, 7);
});

test('a round that needs more than it holds gets fresh arrays, and the next round fits it', () => {
  const s = new Scratch();
  s.bytes(100);
  s.reset();
  const cap = s.capacity;
  const x = s.bytes(64);
  const big = s.float32(10_000); // does not fit: fresh
  assert.notEqual(big.buffer, x.buffer);
  big.fill(2);
  assert.ok(x.every((v) => v === 0));
  s.reset();
  assert.ok(s.capacity >= 64 + 40_000 && s.capacity > cap);
  const y = s.bytes(64);
  const again = s.float32(10_000);
  assert.equal(again.buffer, y.buffer);
  s.reset();
  assert.equal(s.capacity >= 64 + 40_000, true, 'capacity is kept between rounds');
});
