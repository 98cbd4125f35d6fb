import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';

test('onnxruntime-node loads and lists the CPU backend', () => {
  const backends = ort.listSupportedBackends().map((b) => b.name);
  assert.ok(backends.includes('cpu'));
});
