import { test } from 'node:test';
import assert from 'node:assert/strict';
import { transpose2d } from '../../../src/lower/transformer.js';
import { Scratch } from '../../../src/weights/Scratch.js';

test('transpose2d matches the definition on shapes that are not multiples of its tile', () => {
  for (const [rows, cols] of [[1, 1], [1, 5], [5, 1], [31, 33], [37, 70], [64, 96], [100, 3]]) {
    const src = Float32Array.from({ length: rows * cols }, (_, i) => i * 0.5 - 7);
    const scratch = new Scratch();
    for (const out of [transpose2d(src, rows, cols), transpose2d(src, rows, cols, scratch)]) {
      assert.equal(out.length, rows * cols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) assert.equal(out[c * rows + r], src[r * cols + c], `${rows}x${cols} (${r}, ${c})`);
    }
  }
});
