import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readManifest, manifestErrors, MANIFEST_VERSION, type Manifest } from '../../../src/artifact/manifest.js';
import { BlipError } from '../../../src/cli/Command.js';

export function sampleManifest(): Manifest {
  const io = (name: string, type: 'float32' | 'int64', shape: Array<number | string>) => ({ name, type, shape });
  return {
    format: 'blip-graph-artifact',
    version: MANIFEST_VERSION,
    compiler: { name: 'blip-graph', version: '0.1.0' },
    model: 'BlipCaption',
    family: 'blip',
    task: 'caption',
    dtype: 'float32',
    outputs: [{ name: 'caption', task: 'generate', graph: 'decoder' }],
    graphs: {
      encode: { file: 'encode.onnx', inputs: [io('pixel_values', 'float32', ['batch', 3, 384, 384])], outputs: [io('image_embeds', 'float32', ['batch', 577, 768])], nodes: 10 },
      decoder: { file: 'decoder.onnx', inputs: [io('input_ids', 'int64', ['batch', 'sequence'])], outputs: [io('logits', 'float32', ['batch', 30524])], nodes: 20 },
    },
    weights: { file: 'weights.bin', bytes: 128, tensors: 2, parameters: 32 },
    decoder: { layers: 1, kv_heads: 2, head_dim: 4, hidden_size: 8, vocab_size: 30524, inputs: ['input_ids'], from_encode: [], positions: 'past_length', cross_attention: true },
    preprocess: { image_size: 384, mean: [0.48, 0.45, 0.4], std: [0.26, 0.26, 0.27], resample: 'bicubic', rescale_factor: 1 / 255, do_resize: true, do_rescale: true, do_normalize: true, do_convert_rgb: true, source: {} },
    tokenizer: { dir: 'tokenizer', files: ['tokenizer.json'] },
    text: { eos_token_id: [102], pad_token_id: 0, decoder_start_token_id: 30522, prompt_format: 'blip' },
    generation: { num_beams: 1, do_sample: false, max_length: 20, source: { max_length: 'default' } },
    source: { graph: { file: 'graphs/blip-caption.blip', sha256: 'a'.repeat(64) }, checkpoint: { dir: '/ckpt', fingerprint: 'b'.repeat(64), files: ['model.safetensors'], dtypes: { F32: 2 } } },
  };
}

function artifact(m: unknown, files = ['encode.onnx', 'decoder.onnx', 'weights.bin', 'tokenizer/tokenizer.json']): string {
  const dir = mkdtempSync(join(tmpdir(), 'manifest-'));
  mkdirSync(join(dir, 'tokenizer'));
  // weights.bin as long as the sample manifest says (128 bytes); the graphs' contents are not read here
  for (const f of files) writeFileSync(join(dir, f), f === 'weights.bin' ? new Uint8Array(128) : '');
  if (m !== undefined) writeFileSync(join(dir, 'manifest.json'), typeof m === 'string' ? m : JSON.stringify(m));
  return dir;
}

function refused(dir: string, code: string, pattern: RegExp) {
  try {
    assert.throws(() => readManifest(dir), (e: unknown) => {
      assert.ok(e instanceof BlipError);
      assert.equal(e.code, code);
      assert.match(e.message, pattern);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a valid manifest is read back as written', () => {
  const m = sampleManifest();
  assert.deepEqual(manifestErrors(m), []);
  const dir = artifact(m);
  try {
    assert.deepEqual(readManifest(dir), m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a weights.bin of another size than the manifest says (a copy cut short) is refused, with both sizes', () => {
  const dir = artifact(sampleManifest());
  writeFileSync(join(dir, 'weights.bin'), new Uint8Array(100));
  refused(dir, 'BLIP5004', /is incomplete: weights\.bin has 100 bytes, manifest\.json says 128; copy it again or recompile$/);
});

test('a directory without manifest.json is refused as not compiled', () => {
  refused(artifact(undefined), 'BLIP5001', /has no manifest\.json/);
});

test('a directory that does not exist is refused', () => {
  assert.throws(() => readManifest('/nonexistent/blip-out'), /BLIP5001|does not exist/);
});

test('a manifest that is not JSON is refused', () => {
  refused(artifact('{"format": '), 'BLIP5002', /not valid JSON/);
});

test('a manifest of another format version is refused, naming both versions', () => {
  refused(artifact({ ...sampleManifest(), version: 99 }), 'BLIP5003', /format version 99 \(written by blip-graph 0\.1\.0\).*reads version 1/);
});

test('schema violations are listed with their paths', () => {
  const m = sampleManifest() as unknown as Record<string, unknown>;
  m.task = 'dance';
  delete (m.text as Record<string, unknown>).pad_token_id;
  refused(artifact(m), 'BLIP5002', /\/task: must be equal to one of the allowed values.*\/text: must have required property 'pad_token_id'/);
});

test('a field this version does not know (a newer compiler\'s) is named, with the fix: upgrade, or recompile with this version', () => {
  const m = sampleManifest() as unknown as Record<string, unknown>;
  m.compiler = { name: 'blip-graph', version: '9.0.0' };
  (m.text as Record<string, unknown>).max_context = 512;
  refused(
    artifact(m),
    'BLIP5002',
    /^\S+manifest\.json has text\.max_context, a field this blip-graph \(\d+\.\d+\.\d+\) does not know: the model was likely compiled by a newer blip-graph \(9\.0\.0\); upgrade blip-graph, or recompile the model with this version$/,
  );
  const two = sampleManifest() as unknown as Record<string, unknown>;
  two.cache = true;
  (two.outputs as Array<Record<string, unknown>>)[0]!.stream = true;
  refused(artifact(two), 'BLIP5002', /has cache, outputs\[0\]\.stream, fields this blip-graph .* does not know: the model was likely compiled by a newer blip-graph; upgrade/);
  // an unknown field beside another fault is an invalid manifest, listed as before
  (two as Record<string, unknown>).task = 'dance';
  refused(artifact(two), 'BLIP5002', /is invalid: .*\/task: must be equal to one of the allowed values/);
});

test('a manifest naming a missing graph file is refused', () => {
  refused(artifact(sampleManifest(), ['encode.onnx', 'weights.bin', 'tokenizer/tokenizer.json']), 'BLIP5004', /decoder\.onnx.*missing/);
});
