// A custom graph that reads a tensor of BLIP-2's Q-Former, which a --dtype fp16 artifact keeps in
// float32 (src/lower/keepFloat32.ts), from a node lowered in float16: the tensor is stored once per
// float type (WeightStore.define), and the artifact stays close to the float32 one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadProgram } from '../../../src/syntax/load.js';
import { compile } from '../../../src/lower/compile.js';
import { decodeModel } from '../../../src/lower/emitOnnx.js';
import { ONNX_DTYPE } from '../../../src/lower/GraphBuilder.js';
import { FIXTURES, diff, expected, f32, session, tmp } from './harness.js';

const FIXTURE = 'blip2-opt-a';
const DENSE = 'qformer.encoder.layer.1.attention.output.dense';
const GRAPH = `import "./blip2-opt.blip"
model m extends blip2_opt {
  node extra: linear(qformer) @ "${DENSE}"
  override node projection: linear(extra) @ "language_projection"
}
`;

test('--dtype fp16: a linear node reading a tensor of the float32-kept Q-Former gets a float16 copy of it, and the soft prompt stays close to float32', async (t) => {
  const root = tmp('shared-kept-');
  try {
    const loaded = loadProgram('graphs/user.blip', { text: GRAPH });
    assert.ok(loaded.program, loaded.diagnostics.map((d) => d.message).join('; '));
    const weights = join(FIXTURES, FIXTURE, 'checkpoint');
    const prefix: Record<string, Float32Array> = {};
    const parameters: Record<string, number> = {};
    const pixels = f32(expected(FIXTURE).array('pixel_values'));
    for (const dtype of ['float32', 'float16'] as const) {
      const out = join(root, dtype);
      await compile({ model: loaded.program.models[0]!, graphFile: 'graphs/user.blip', graphText: GRAPH, weights, out, dtype });
      parameters[dtype] = (JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { weights: { parameters: number } }).weights.parameters;
      prefix[dtype] = (await (await session(join(out, 'encode.onnx'))).run({ pixel_values: pixels })).prefix_embeds!.data as Float32Array;
    }
    const encode = decodeModel(readFileSync(join(root, 'float16', 'encode.onnx'))).graph!;
    const typeOf = (name: string) => encode.initializer!.find((i) => i.name === name)?.dataType;
    const readers = (name: string) => encode.node!.filter((n) => n.input!.includes(name)).map((n) => n.name!.split('/')[0]);
    assert.equal(typeOf(`${DENSE}.weight:T`), ONNX_DTYPE.float32);
    assert.equal(typeOf(`${DENSE}.weight:T:float16`), ONNX_DTYPE.float16);
    assert.deepEqual(readers(`${DENSE}.weight:T`), ['qformer.encoder.layer.1.attention']);
    assert.deepEqual(readers(`${DENSE}.weight:T:float16`), ['extra']);
    // the checkpoint's parameters, the float16 copy not counted again
    assert.equal(parameters.float16, parameters.float32);
    const { max, tol } = diff(prefix.float16!, prefix.float32!);
    t.diagnostic(`soft prompt fp16 vs fp32: max difference ${max.toExponential(2)} (${(max / tol).toFixed(1)} × 1e-4 tolerance)`);
    assert.ok(max > 0, 'the float16 artifact does compute in float16');
    assert.ok(max < 50 * tol, `fp16 differs from fp32 by ${max}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
