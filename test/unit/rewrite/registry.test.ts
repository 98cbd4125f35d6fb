// The rewrite registry through the compile driver: per-target pipelines on a real fixture, the
// manifest's record of the target, float16 graphs on the CPU target, and the plain fallback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { compileFixture, tmp } from '../compiler/harness.js';
import { readManifest } from '../../../src/artifact/manifest.js';
import { decodeModel } from '../../../src/lower/emitOnnx.js';
import { opHistogram } from '../../../src/lower/graphCheck.js';
import { FUSIONS, PIPELINES, TARGETS, rewriteGraph } from '../../../src/rewrite/index.js';
import { MatMulNBitsFusion } from '../../../src/rewrite/MatMulNBitsFusion.js';
import { build } from './harness.js';

const ops = (dir: string, graph: string) => opHistogram(decodeModel(readFileSync(join(dir, `${graph}.onnx`))).graph!.node!);
const ms = (h: Record<string, number>) => Object.keys(h).filter((k) => k.startsWith('com.microsoft.'));

test('every target has a pipeline; plain has none', () => {
  assert.deepEqual([...TARGETS].sort(), Object.keys(PIPELINES).sort());
  assert.deepEqual(PIPELINES.plain, []);
  for (const t of ['cpu', 'cuda'] as const) assert.ok(PIPELINES[t].some((f) => f.name === 'MultiHeadAttention'), t);
  // onnxruntime 1.30's WebGPU MultiHeadAttention is wrong from 32 keys on (docs/webgpu.md): attention stays decomposed there
  assert.ok(!PIPELINES.webgpu.some((f) => f.name === 'MultiHeadAttention'));
});

test('FUSIONS is every fusion a rewrite runs; `through` must name one (a misspelt name would run the whole pipeline)', () => {
  assert.deepEqual(new Set(FUSIONS), new Set([...Object.values(PIPELINES).flat(), MatMulNBitsFusion]));
  const lone = () => build((b) => b.output(b.gelu(b.input('x', 'float32', ['B', 4])), 'y', 'float32'));
  assert.throws(() => rewriteGraph(lone(), { target: 'cpu' }, 'BiasGeLU'), /^Error: unknown fusion BiasGeLU \(expected one of BiasGelu, /);
  assert.deepEqual(rewriteGraph(lone(), { target: 'cpu' }, 'BiasGelu'), { BiasGelu: 1 });
});

test('BLIP caption (2-layer ViT, 2-layer BERT decoder): fused op counts per target, recorded in the manifest', async () => {
  const dir = tmp('blip-rw-');
  try {
    const plain = await compileFixture('graphs/blip-caption.blip', 'blip-caption-a', join(dir, 'plain'));
    assert.deepEqual(plain.rewrites, {});
    assert.equal(readManifest(join(dir, 'plain')).target, undefined);
    assert.deepEqual(ms(ops(join(dir, 'plain'), 'encode')), []);
    for (const target of ['cpu', 'cuda'] as const) {
      const out = join(dir, target);
      const r = await compileFixture('graphs/blip-caption.blip', 'blip-caption-a', out, 'float32', target);
      // On the CPU, every attention's projection biases then move into it; the decoder's query
      // projections take the score scale, and its self-attention q, k, v are packed into one MatMul
      // (ViT's projection is packed in the checkpoint and feeds its kernel through a Split).
      const biases = (n: number) => (target === 'cpu' ? { AttentionBias: n } : {});
      const cpuOnly = (r: Record<string, number>) => (target === 'cpu' ? r : {});
      // ViT: per layer one attention, two residual norms (the last feeds post_layernorm), one GELU.
      // (SkipLayerNormalization not on the CPU, whose kernel is slower than the adds + LayerNormalization)
      const skipNorms = (n: number) => (target === 'cpu' ? {} : { SkipLayerNormalization: n });
      assert.deepEqual(r.rewrites.encode, { BiasGelu: 2, ...skipNorms(5), MultiHeadAttention: 2, ...biases(2) });
      // Decoder: per layer self + cross attention, three residual norms, GELU; + embeddings norm and the head's GELU.
      // On the CPU its 13 products with a weight (per layer packed q/k/v, self output, cross query,
      // cross output, fc1, fc2; the head's transform) become 1×1 Convs; the tied head's Gemm stays.
      assert.deepEqual(r.rewrites.decoder, { BiasGelu: 3, ...skipNorms(7), MultiHeadAttention: 4, ...biases(4), ...cpuOnly({ UnitScale: 4, QkvPack: 2, PointwiseConv: 13 }) });
      const dec = ops(out, 'decoder');
      assert.equal(dec.Softmax, undefined);
      assert.equal(dec.Erf, undefined);
      assert.equal(readManifest(out).target, target);
      assert.equal(r.manifest.graphs.decoder!.nodes, decodeModel(readFileSync(join(out, 'decoder.onnx'))).graph!.node!.length);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('float16 for the CPU target: no float-only CPU kernels are emitted', async () => {
  const dir = tmp('blip-rw-');
  try {
    const r = await compileFixture('graphs/blip-caption.blip', 'blip-caption-a', join(dir, 'f16'), 'float16', 'cpu');
    assert.deepEqual(ms(ops(join(dir, 'f16'), 'encode')), []);
    assert.deepEqual(r.rewrites, { encode: {}, decoder: {} });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
