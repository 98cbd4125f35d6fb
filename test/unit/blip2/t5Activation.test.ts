// T5's feed-forward as T5Config builds it: feed_forward_proj derives the activation and the gating
// ("gated-gelu" -> gelu_new, gated), then dense_act_fn / is_gated_act written in config.json replace
// them. Reference: test/oracle/t5_activation.py (transformers 5.12.1, blip2-t5-a with one key changed).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, load } from '../../../src/index.js';
import { CompileError } from '../../../src/lower/CompileError.js';
import { T5 } from '../../../src/nodes/t5.js';
import { FIXTURES, tmp } from '../compiler/harness.js';

const root = tmp('t5-activation-');
after(() => rmSync(root, { recursive: true, force: true }));
let made = 0;

test("t5 fromConfig: feed_forward_proj derives act and gated, the file's dense_act_fn and is_gated_act replace them", () => {
  const read = (section: Record<string, unknown>) => {
    const a = T5.fromConfig!(section, {});
    return [a.act, a.gated];
  };
  assert.deepEqual(read({ feed_forward_proj: 'gated-gelu' }), ['gelu_new', true]);
  assert.deepEqual(read({ feed_forward_proj: 'relu' }), ['relu', false]);
  assert.deepEqual(read({ feed_forward_proj: 'gated-silu', dense_act_fn: 'gelu_new', is_gated_act: true }), ['gelu_new', true]);
  assert.deepEqual(read({ feed_forward_proj: 'gated-gelu', dense_act_fn: 'relu' }), ['relu', true]);
  assert.deepEqual(read({ feed_forward_proj: 'relu', is_gated_act: true }), ['relu', true]);
  assert.deepEqual(read({ feed_forward_proj: 'gated-gelu', is_gated_act: null }), ['gelu_new', false], 'None is falsy: the plain feed-forward');
});

/** blip2-t5-a with `change` applied to config.json's text_config, compiled. */
async function compileWith(change: Record<string, unknown>): Promise<string> {
  const weights = join(root, `checkpoint-${made++}`);
  cpSync(join(FIXTURES, 'blip2-t5-a', 'checkpoint'), weights, { recursive: true });
  const config = JSON.parse(readFileSync(join(weights, 'config.json'), 'utf8'));
  assert.deepEqual([config.text_config.feed_forward_proj, config.text_config.dense_act_fn, config.text_config.is_gated_act], ['gated-gelu', 'gelu_new', true], "the fixture's own keys");
  Object.assign(config.text_config, change);
  writeFileSync(join(weights, 'config.json'), JSON.stringify(config));
  return (await compile('graphs/blip2-t5.blip', { weights, out: `${weights}-out` })).out;
}

for (const [name, change, logprobs] of [
  ['dense_act_fn relu', { dense_act_fn: 'relu' }, [-3.60106, -2.588433, -2.532017, -2.531429]],
  ['feed_forward_proj gated-silu (dense_act_fn gelu_new stays)', { feed_forward_proj: 'gated-silu' }, [-3.860025, -2.519699, -2.441378, -2.430234]],
] as const) {
  test(`t5: ${name}: tokens and log-probabilities == transformers`, async () => {
    const model = await load(await compileWith(change));
    try {
      const [r] = await model.generate([join(FIXTURES, 'images', 'rgb_37x23.png')], { prompt: 'Question: what is this? Answer:', maxNewTokens: 4, minNewTokens: 4, numBeams: 1, repetitionPenalty: 1, logprobs: true });
      assert.deepEqual(r!.tokenIds, [146, 146, 146, 146]);
      r!.logprobs!.forEach((e, i) => assert.ok(Math.abs(e.logprob - logprobs[i]!) < 1e-4, `token ${i}: logprob ${e.logprob}, transformers ${logprobs[i]}`));
    } finally {
      await model.close();
    }
  });
}

test('t5: dense_act_fn null is refused by name (transformers builds no activation from None)', async () => {
  await assert.rejects(compileWith({ dense_act_fn: null }), (e: unknown) => {
    assert.ok(e instanceof CompileError, String(e));
    assert.deepEqual(e.problems.map((p) => [p.code, p.message]), [['BLIP4017', 'config.json "text_config" gives null for attribute "act" of node "llm" (t5), which expects a string']]);
    return true;
  });
});
