// bench/torch_generate.py times PyTorch's phases inside each generate call (PhaseClock), split where
// blip-graph's timingsMs split its own: BLIP's encode holds the text decoder's cross-attention K/V
// projections (blip-graph's encode.onnx computes them; transformers runs them in its first decoder
// forward, which the bench used to count as PyTorch's prefill), and prefill / decode are marks inside
// the call rather than differences of separately timed calls. Runs the reference python on tiny
// fixtures; skipped where the reference environment (../shared/oracle) is not set up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { repoRoot } from '../tasks/harness.js';
import { pytorchEnv } from '../../../bench/mallocEnv.js';

const ROOT = repoRoot();
const ORACLE = resolve(ROOT, '..', 'shared', 'oracle', 'py');
const python = join(process.env.ORACLE_ROOT ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'blip-oracle'), 'usr', 'bin', 'python3');
const skip = existsSync(ORACLE) && existsSync(python) ? false : 'no reference environment (../shared/oracle/py)';

function torchGenerate(fixture: string, extra: string[]): any {
  const env = pytorchEnv({ ...process.env, GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=2097152' }, true);
  const args = ['bench/torch_generate.py', '--ckpt', `test/fixtures/${fixture}/checkpoint`, '--image', 'test/fixtures/images/blocks_1000x700.png', '--threads', '1', '--max-new-tokens', '5', '--repeat', '2', '--warmup', '0', ...extra];
  const r = spawnSync(ORACLE, args, { cwd: ROOT, encoding: 'utf8', env, maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  return JSON.parse(r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop()!);
}

/** Each timed call's phases lie inside its generate, in order, and the means and the rate come from them. */
function checkPhases(t: any, batch: number, tokens: number): void {
  assert.equal(t.runs.length, 2);
  for (const r of t.runs) {
    for (const k of ['preprocess_ms', 'image_encode_ms', 'prefill_ms', 'decode_ms']) assert.ok(r[k] > 0, `${k} ${r[k]}`);
    assert.ok(r.image_encode_ms + r.prefill_ms + r.decode_ms <= r.generate_ms + 1e-6, JSON.stringify(r));
    assert.ok(Math.abs(r.preprocess_ms + r.generate_ms - r.end_to_end_ms) < 1e-6, JSON.stringify(r));
  }
  const mean = (k: string) => t.runs.reduce((s: number, r: any) => s + r[k], 0) / t.runs.length;
  for (const k of ['end_to_end_ms', 'image_encode_ms', 'prefill_ms', 'decode_ms']) assert.ok(Math.abs(t[k] - mean(k)) < 1e-6, k);
  assert.ok(Math.abs(t.decode_tokens_per_s - (batch * (tokens - 1) * 1000) / t.decode_ms) < 1e-6);
}

test("BLIP: PyTorch's encode holds the cross-attention K/V projections, run once in the prefill; phases from inside each call", { skip, timeout: 300_000 }, () => {
  const t = torchGenerate('blip-caption-a', ['--prompt', 'a picture of', '--batch', '2', '--num-beams', '3']);
  checkPhases(t, 2, 5);
  const layers = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/blip-caption-a/checkpoint/config.json'), 'utf8')).text_config.num_hidden_layers;
  for (const r of t.runs) {
    assert.equal(r.cross_kv_calls, 2 * layers, 'a key and a value projection per decoder layer');
    assert.equal(r.cross_kv_calls_after_prefill, 0, 'the decode steps reuse the cached cross K/V');
    assert.ok(r.cross_kv_ms > 0 && r.cross_kv_ms < r.image_encode_ms, JSON.stringify(r));
  }
  // "PyTorch eager" is eager-mode execution with transformers' default attention per sub-model, which
  // docs/performance.md states for transformers 5.12.1
  assert.deepEqual(t.attn_implementation, { vision_model: 'eager', text_decoder: 'eager' });
  // the malloc environment reached python through the reference chroot
  assert.deepEqual(t.malloc_env, { GLIBC_TUNABLES: '', THP_MEM_ALLOC_ENABLE: '1' });
  for (const k of ['anon_huge_pages_mb', 'rss_anon_mb', 'rss_file_mb', 'minor_faults_per_call', 'system_s_per_call']) assert.equal(typeof t.memory[k], 'number', k);
});

test('BLIP-2: the encode ends with the language projection; no cross-attention', { skip, timeout: 300_000 }, () => {
  const t = torchGenerate('blip2-opt-a', []);
  checkPhases(t, 1, 5);
  for (const r of t.runs) assert.equal(r.cross_kv_calls, 0);
  assert.deepEqual(t.attn_implementation, { vision_model: 'sdpa', qformer: 'eager', language_model: 'sdpa' });
});

test("PyTorch's weights count at the dtype it loaded them in (its row's RSS / weights)", { skip, timeout: 300_000 }, () => {
  const [f32, f16] = ['float32', 'float16'].map((dtype) => torchGenerate('blip-caption-a', ['--prompt', 'a picture of', '--dtype', dtype]));
  assert.ok(f32.weights_bytes > 0);
  assert.equal(f16.weights_bytes * 2, f32.weights_bytes);
});
