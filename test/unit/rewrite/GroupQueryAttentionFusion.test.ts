// GroupQueryAttentionFusion: a LLaMA decoder step's cached causal self-attention (rotary q/k, the
// causal + padding bias of the mask, grouped or equal key/value heads) becomes one
// com.microsoft.GroupQueryAttention on the CPU target, equal to the decomposed graph on every row
// of left-padded batches, at prefill and over a cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { GroupQueryAttentionFusion } from '../../../src/rewrite/GroupQueryAttentionFusion.js';
import { assertClose, compare } from './harness.js';
import { llamaStep, llamaSteps as steps } from './attentionGraphs.js';
import { compileFixture, tmp } from '../compiler/harness.js';

const GQA = 'com.microsoft.GroupQueryAttention';
const MHA = 'com.microsoft.MultiHeadAttention';
/** Through MultiHeadAttention, which comes after it: GroupQueryAttention takes LLaMA's attention first. */
const THROUGH = 'MultiHeadAttention';

test('grouped heads (6 query, 2 key/value): cached causal self-attention -> GroupQueryAttention, equal on every row of left-padded batches', async () => {
  const c = await compare(llamaStep(6, 2, 8), steps(6, 2, 8), { through: THROUGH });
  assert.equal(c.before[GQA], undefined);
  assert.equal(c.before.Softmax, 1);
  assert.equal(c.after[GQA], 1);
  assert.equal(c.after['com.microsoft.RotaryEmbedding'], 2);
  for (const op of ['Softmax', 'Concat', 'Transpose']) assert.equal(c.after[op], undefined, `${op} left after the fusion`);
  assert.equal(c.after[MHA], undefined);
  assert.deepEqual(Object.keys(c.diffs).sort(), ['present.key', 'present.value', 'y']);
  assertClose(c, 2e-5);
});

test('equal heads (a LLaMA without grouping) also becomes GroupQueryAttention on the CPU target', async () => {
  const c = await compare(llamaStep(4, 4, 8), steps(4, 4, 8), { through: THROUGH });
  assert.equal(c.after[GQA], 1);
  assert.equal(c.after[MHA], undefined);
  assert.equal(c.after.Softmax, undefined);
  assertClose(c, 2e-5);
});

test('cuda and webgpu targets: no GroupQueryAttention (grouped stays decomposed, equal heads is MultiHeadAttention on cuda)', async () => {
  for (const target of ['cuda', 'webgpu'] as const) {
    const grouped = await compare(llamaStep(6, 2, 8), steps(6, 2, 8).slice(0, 1), { target, through: THROUGH });
    assert.equal(grouped.after[GQA], undefined, target);
    assert.equal(grouped.after.Softmax, 1, target);
    assertClose(grouped, 2e-5);
    const equal = await compare(llamaStep(4, 4, 8), steps(4, 4, 8).slice(0, 1), { target, through: THROUGH });
    assert.equal(equal.after[GQA], undefined, target);
    assert.equal(equal.after[MHA], target === 'cuda' ? 1 : undefined, target); // webgpu: attention stays decomposed
  }
});

test('head size not a multiple of 8 (the CPU kernel refuses it) is not fused; nor are float16 graphs', async () => {
  const narrow = await compare(llamaStep(4, 2, 4), steps(4, 2, 4).slice(0, 1), { through: THROUGH });
  assert.equal(narrow.after[GQA], undefined);
  assert.equal(narrow.after.Softmax, 1);
  assertClose(narrow, 2e-5);
  assert.equal(GroupQueryAttentionFusion.applies('float16', { target: 'cpu' }), false);
  assert.equal(GroupQueryAttentionFusion.applies('float32', { target: 'cpu' }), true);
});

test('compiled composition fixture (Q-Former + 2-layer LLaMA, 6 heads over 2 key/value heads): one GroupQueryAttention per layer for cpu only', async () => {
  const dir = tmp('gqa-');
  try {
    const cpu = await compileFixture('graphs/examples/blip2-llama.blip', 'blip2-llama-a', join(dir, 'cpu'), 'float32', 'cpu');
    assert.equal(cpu.rewrites.decoder.GroupQueryAttention, 2);
    assert.equal(cpu.rewrites.decoder.MultiHeadAttention, undefined);
    assert.equal(cpu.rewrites.encode.GroupQueryAttention, undefined, 'the Q-Former and ViT are not causal decoders');
    const cuda = await compileFixture('graphs/examples/blip2-llama.blip', 'blip2-llama-a', join(dir, 'cuda'), 'float32', 'cuda');
    assert.equal(cuda.rewrites.decoder.GroupQueryAttention, undefined);
    const f16 = await compileFixture('graphs/examples/blip2-llama.blip', 'blip2-llama-a', join(dir, 'f16'), 'float16', 'cpu');
    assert.equal(f16.rewrites.decoder.GroupQueryAttention, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
