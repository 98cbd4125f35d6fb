// bench/gpu/: the pieces of the GPU check's script that run in Node — the bench view of a checkpoint
// and the summary that reads what the phases left (a phase that failed or never ran must still give
// a summary). The whole script is dry-run with GPU_DRY_RUN=1 (bench/gpu/README.md).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareTokens, gpuSamples, readPhases, summarize } from '../../../bench/gpu/summary.js';
import { makeView } from '../../../bench/gpu/view.js';
import { repoRoot } from '../tasks/harness.js';

const tmp = mkdtempSync(join(tmpdir(), 'blip-bench-gpu-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('compareTokens: new tokens against transformers (whose sequences hold the prompt), leading agreement', () => {
  assert.deepEqual(compareTokens([[5, 6, 7]], [[1, 2, 5, 6, 7]], 3), { same: true, agree: [3] });
  assert.deepEqual(compareTokens([[5, 6, 7]], [[1, 2, 5, 9, 7]], 3), { same: false, agree: [1] });
  // a row shorter than asked (or empty) is not the same, though what it holds agrees
  assert.deepEqual(compareTokens([[5, 6]], [[1, 2, 5, 6, 7]], 3), { same: false, agree: [2] });
  assert.deepEqual(compareTokens([[]], [[1, 2, 5, 6, 7]], 3), { same: false, agree: [0] });
  assert.equal(compareTokens(undefined, [[1]], 1), undefined);
  assert.equal(compareTokens([[1], [2]], [[1]], 1), undefined);
});

test('gpuSamples: maxima of nvidia-smi csv rows, junk lines ignored', () => {
  const f = join(tmp, 'gpu.csv');
  writeFileSync(f, '2026/11/27 10:00:00.000, 1200, 3\n2026/11/27 10:00:00.250, 9876, 97\n[N/A]\n2026/11/27 10:00:00.500, 4000, 50\n');
  assert.deepEqual(gpuSamples(f), { samples: 3, maxMemoryMiB: 9876, maxUtilization: 97 });
  assert.equal(gpuSamples(join(tmp, 'none.csv')), undefined);
});

test('summarize: a run whose later phases failed still gives a summary, with the numbers that exist', () => {
  const w = join(tmp, 'work');
  mkdirSync(join(w, 'logs'), { recursive: true });
  writeFileSync(join(w, 'settings.json'), JSON.stringify({ layout: 'blip2-opt-2.7b', tokens: '3', ours_device: 'webgpu', torch_device: 'cuda', torch_dtype: 'float16', target: 'webgpu' }));
  writeFileSync(join(w, 'phases.tsv'), 'make\tok\t40\t240\t\ncompile\ttimeout\t330\t330\tstill writing\nours\tfailed (1)\t3\t300\tBLIP5042 device webgpu: no usable WebGPU adapter\n');
  writeFileSync(join(w, 'torch.json'), 'noise\n' + JSON.stringify({ peer: 'transformers 5.17.0 / torch 2.11.0', end_to_end_ms: 300, image_encode_ms: 20, prefill_ms: 10, decode_tokens_per_s: 70, peak_rss_mb: 3000, peak_gpu_mb: 7800, sequences: [[2, 9, 8, 7]] }) + '\n');
  writeFileSync(join(w, 'logs', 'make.log'), 'blip2-opt-2.7b: 1247 tensors, 3.745 B parameters, 7.49 GB float16 in .bench/gpu/ckpt (31 s, drawn on cuda)\n');
  const { json, md } = summarize(w);
  assert.equal(readPhases(join(w, 'phases.tsv')).length, 3);
  assert.equal(json.ours, undefined);
  assert.equal(json.tokens, undefined);
  assert.match(md, /\| ours \| failed \(1\) \| 3 \| 300 \| BLIP5042 device webgpu/);
  assert.match(md, /\| compile \| timeout \| 330 \| 330 \| still writing \|/);
  assert.match(md, /\| blip-graph \(webgpu\) \| \(no result\)/);
  assert.match(md, /transformers 5\.17\.0 \/ torch 2\.11\.0 cuda float16, while the compile ran \| 300 \| 20 \| 10 \| 70\.0 \|/);
  assert.match(md, /checkpoint: blip2-opt-2\.7b: 1247 tensors, 3\.745 B parameters/);

  writeFileSync(join(w, 'ours.json'), JSON.stringify({ end_to_end_ms: 150, image_encode_ms: 15, prefill_ms: 5, decode_tokens_per_s: 140, providers: { encode: 'webgpu', decoder: 'webgpu' }, sequences: [[9, 8, 6]] }) + '\n');
  writeFileSync(join(w, 'gpu_ours.csv'), 'x, 8100, 90\n');
  const again = summarize(w);
  assert.deepEqual(again.json.tokens, { same: false, agree: [2] });
  assert.match(again.md, /blip-graph \(webgpu: encode webgpu, decoder webgpu\) \| 150 \| 15 \| 5 \| 140\.0 \| – \| – \| – \| 8100 \|/);
  assert.match(again.md, /same tokens: NO \(leading tokens that agree: 2 of 3\)/);
  assert.match(again.md, /end-to-end blip-graph \/ PyTorch: 0\.50×/);

  // The other blip-graph rows and the kernel probe, when their phases left results.
  writeFileSync(join(w, 'ours_kv_host.json'), JSON.stringify({ end_to_end_ms: 600, decode_tokens_per_s: 20 }) + '\n');
  writeFileSync(join(w, 'ours_int4.json'), JSON.stringify({ end_to_end_ms: 90, decode_tokens_per_s: 250 }) + '\n');
  writeFileSync(
    join(w, 'kernels.json'),
    JSON.stringify({
      device: 'webgpu',
      dispatch_Add: { nodes: 200, width: 2560, per_node_us: 15.1 },
      dispatch_MatMul: { nodes: 200, width: 2560, per_node_us: 82.9, weight_read_gb_s: 158.1 },
      attention: [{ elem: 'float32', heads: 4, headSize: 32, q: 33, kv: 33, past: false, max_abs_out: 8e-7, device_ms: 2.5 }, { elem: 'float16', heads: 32, headSize: 80, q: 1, kv: 40, past: true, error: 'not implemented' }],
    }) + '\n',
  );
  const third = summarize(w).md;
  assert.match(third, /blip-graph \(webgpu, KV cache through the host\) \| 600 \|.*\| 20\.0 \|/);
  assert.match(third, /blip-graph \(webgpu, --quantize int4\) \| 90 \|.*\| 250\.0 \|/);
  assert.match(third, /200 float16 MatMuls \(1, 2560\) x \(2560, 2560\): 82\.9 us a node, weights read at 158 GB\/s/);
  assert.match(third, /\| float32 \| 4x32 \| 33 \| 33 \| 8\.0e-7 \|  \| 2\.500 \|/);
  assert.match(third, /\| float16, past \| 32x80 \| 1 \| 40 \| error: not implemented \|/);
});

test('makeView: weights linked, image token and processor sizes set, fixture tokenizer copied', () => {
  const ckpt = join(tmp, 'ckpt');
  mkdirSync(ckpt, { recursive: true });
  writeFileSync(join(ckpt, 'config.json'), '{\n  "image_token_index": 50265,\n  "num_query_tokens": 32\n}\n');
  writeFileSync(join(ckpt, 'model-00001-of-00001.safetensors'), '');
  writeFileSync(join(ckpt, 'model.safetensors.index.json'), '{}');
  const view = join(tmp, 'view');
  makeView({ ckpt, view, tokenizerFrom: join(repoRoot(), 'test/fixtures/blip2-opt-a/checkpoint'), imageTokenIndex: 476, imageSize: 224, queries: 32 });
  assert.match(readFileSync(join(view, 'config.json'), 'utf8'), /"image_token_index": 476,/);
  assert.equal(readlinkSync(join(view, 'model-00001-of-00001.safetensors')), join('..', 'ckpt', 'model-00001-of-00001.safetensors'));
  const p = JSON.parse(readFileSync(join(view, 'processor_config.json'), 'utf8'));
  assert.deepEqual([p.image_processor.size, p.num_query_tokens], [{ height: 224, width: 224 }, 32]);
  assert.ok(readFileSync(join(view, 'tokenizer.json'), 'utf8').includes('<image>'));
});
