// The package's compile(): the options `blip compile` has (--target, --quantize) reach the compiler.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { compile, CompileError, shippedGraph } from '../../../src/index.js';
import { resolve } from 'node:path';
import { FIXTURES, tmp } from './harness.js';

const GRAPH = 'graphs/blip-caption.blip';
const weights = join(FIXTURES, 'blip-caption-a', 'checkpoint');

test('compile() takes target and quantize, and refuses values it does not know', async () => {
  const root = tmp('api-');
  try {
    const r = await compile(GRAPH, { weights, out: join(root, 'cpu'), target: 'cpu', quantize: 'int8' });
    assert.equal(r.manifest.target, 'cpu');
    assert.equal(r.manifest.quantize, 'int8');
    const decoder = readFileSync(join(root, 'cpu', 'decoder.onnx')).toString('latin1');
    for (const op of ['MultiHeadAttention', 'BiasGelu', 'MatMulNBits']) assert.ok(decoder.includes(op), `decoder.onnx has no ${op}`);
    const half = await compile(GRAPH, { weights, out: join(root, 'half'), target: 'cpu', dtype: 'fp16' });
    assert.deepEqual(half.warnings.filter((w) => w.startsWith('float16 for the CPU target saves disk only')).length, 1, half.warnings.join('\n'));
    assert.deepEqual(r.warnings.filter((w) => w.startsWith('float16')), []);
    const plain = await compile(GRAPH, { weights, out: join(root, 'plain') });
    assert.equal(plain.manifest.target, undefined);
    assert.ok(!readFileSync(join(root, 'plain', 'decoder.onnx')).toString('latin1').includes('MultiHeadAttention'));
    await assert.rejects(compile(GRAPH, { weights, out: join(root, 'x'), target: 'tpu' as never }), (e) => e instanceof CompileError && /unknown target 'tpu' \(expected plain, cpu, cuda, webgpu\)/.test(e.message));
    await assert.rejects(compile(GRAPH, { weights, out: join(root, 'y'), quantize: 'int2' as never }), (e) => e instanceof CompileError && /unknown quantize 'int2'/.test(e.message));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('shippedGraph() names the shipped .blip file for a checkpoint, which compile() then takes', async () => {
  assert.equal(shippedGraph(weights), resolve('graphs/blip-caption.blip'));
  assert.equal(shippedGraph(join(FIXTURES, 'instructblip-t5-a', 'checkpoint')), resolve('graphs/instructblip-t5.blip'));
  assert.equal(shippedGraph(join(FIXTURES, 'blip2-llama-a', 'checkpoint')), resolve('graphs/examples/blip2-llama.blip'));
  const out = tmp('blip-shipped-');
  try {
    const r = await compile(shippedGraph(weights)!, { weights, out });
    assert.equal(r.manifest.model, 'blip_caption');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  assert.throws(() => shippedGraph(join(FIXTURES, 'nope')), (e: Error & { code?: string }) => e.code === 'BLIP4001' && /does not exist/.test(e.message));
  assert.throws(() => shippedGraph(42 as unknown as string), (e: Error & { code?: string }) => e.code === 'BLIP4015' && /takes the checkpoint folder's path as a string, found number/.test(e.message));
  await assert.rejects(compile(undefined as unknown as string, { weights, out: tmp('blip-shipped-') }), /found undefined \(shippedGraph\(\) gives undefined/);
});
