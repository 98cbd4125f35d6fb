// Every activation a node kind's attribute schema accepts lowers, and computes HuggingFace ACT2FN's
// function: the schemas and lowering read one table (src/lower/activations.ts), so an `act` the
// checker lets through can no longer reach lowering unknown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { nodeKinds } from '../../../src/nodes/index.js';
import { GraphBuilder } from '../../../src/lower/GraphBuilder.js';
import { WeightStore } from '../../../src/lower/WeightStore.js';
import { toModelProto, encodeModel } from '../../../src/lower/emitOnnx.js';
import { activation } from '../../../src/lower/transformer.js';

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): JavaScript has none.
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x < 0 ? -y : y;
}
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/** transformers' ACT2FN, written out. */
const REFERENCE: Record<string, (x: number) => number> = {
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  quick_gelu: (x) => x * sigmoid(1.702 * x),
  relu: (x) => Math.max(0, x),
  silu: (x) => x * sigmoid(x),
  swish: (x) => x * sigmoid(x),
  tanh: Math.tanh,
};

/** The `act` values each node kind's attribute schema accepts. */
function schemaActivations(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [kind, nk] of Object.entries(nodeKinds)) {
    const props = (nk.attrSchema as { properties?: Record<string, { enum?: string[] }> }).properties ?? {};
    if (props.act?.enum) out.set(kind, props.act.enum);
  }
  return out;
}

async function runActivation(name: string, xs: Float32Array): Promise<Float32Array> {
  const store = new WeightStore('float32');
  const b = new GraphBuilder('act', store);
  const x = b.input('x', 'float32', [xs.length]);
  b.output(activation(b, x, name), 'y', 'float32', [xs.length]);
  const session = await ort.InferenceSession.create(encodeModel(toModelProto(b, store, { dataFile: 'unused.bin', producerVersion: 'test' })));
  const { y } = await session.run({ x: new ort.Tensor('float32', xs, [xs.length]) });
  return y.data as Float32Array;
}

test('node kinds with an act attribute exist (the check below is not vacuous)', () => {
  const kinds = schemaActivations();
  assert.ok(kinds.size >= 5, `kinds with act: ${[...kinds.keys()].join(', ')}`);
});

test('every activation a node kind schema accepts lowers and matches transformers ACT2FN', async () => {
  const accepted = new Set([...schemaActivations().values()].flat());
  const xs = Float32Array.from({ length: 41 }, (_, i) => -5 + i * 0.25);
  for (const name of accepted) {
    const ys = await runActivation(name, xs);
    const reference = REFERENCE[name];
    assert.ok(reference, `no reference written for "${name}": add transformers' formula to REFERENCE`);
    xs.forEach((x, i) => assert.ok(Math.abs(ys[i] - reference(x)) < 1e-5, `${name}(${x}) = ${ys[i]}, expected ${reference(x)}`));
  }
});
