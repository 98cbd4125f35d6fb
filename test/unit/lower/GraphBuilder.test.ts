import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../../src/lower/GraphBuilder.js';
import { WeightStore } from '../../../src/lower/WeightStore.js';
import { toModelProto, encodeModel } from '../../../src/lower/emitOnnx.js';

async function buildAndRun(floatType: 'float32' | 'float16') {
  const dir = mkdtempSync(join(tmpdir(), 'gb-'));
  try {
    const store = new WeightStore(floatType);
    const build = (name: string) => {
      const b = new GraphBuilder(name, store);
      const x = b.input('x', floatType, ['batch', 2]);
      const w = b.weight({ key: 'proj.weight', dims: [2, 3], produce: () => new Float32Array([1, 2, 3, 4, 5, 6]) });
      const bias = b.weight({ key: 'proj.bias', dims: [3], produce: () => new Float32Array([0.5, -0.5, 0]) });
      const y = b.scope('proj', () => b.linear(x, w, bias));
      b.output(y, 'y', floatType, ['batch', 3]);
      return b;
    };
    const g1 = build('one');
    const g2 = build('two');
    const end = await store.writeAll(join(dir, 'weights.bin'));
    // Both graphs share the two tensors: written once, 64-byte aligned.
    assert.equal(store.location('proj.bias').offset % 64, 0);
    assert.ok(end < 2 * 64 + 64);
    for (const g of [g1, g2]) {
      writeFileSync(join(dir, `${g.name}.onnx`), encodeModel(toModelProto(g, store, { dataFile: 'weights.bin', producerVersion: 'test' })));
    }
    const s = await ort.InferenceSession.create(join(dir, 'two.onnx'));
    const x = floatType === 'float32' ? new ort.Tensor('float32', new Float32Array([1, 1, 2, 0]), [2, 2]) : new ort.Tensor('float16', new Uint16Array([0x3c00, 0x3c00, 0x4000, 0]), [2, 2]);
    const out = await s.run({ x });
    return out.y;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a graph built with GraphBuilder runs in onnxruntime with external weights shared by two graphs', async () => {
  const y = await buildAndRun('float32');
  assert.deepEqual([...(y.data as Float32Array)], [5.5, 6.5, 9, 2.5, 3.5, 6]);
});

test('float16 stores convert weights to half precision', async () => {
  const y = await buildAndRun('float16');
  assert.equal(y.type, 'float16');
});
