// A language model fed something other than the Q-Former's queries as its soft prompt
// (`opt(prefix: vision, …)`, docs/composition.md): the ViT gives 1 + (32 / 8)² = 17 positions where
// num_query_tokens says 8. The manifest records the prefix's own length (text.prefix_length) and the
// runtime builds its placeholders and counts its positions from it: with 8 placeholders the decoder
// cut 17 ids off the prompt (BOS and the first 8 tokens lost without a word; "aaaaaaaa …" and
// "bbbbbbbb …" gave the same tokens), refused a prompt-less run (BLIP5031, "the prompt has 9 ids"),
// and, without image_token_index, undercounted the positions into onnxruntime's Gather error.
// References: test/oracle/vit_prefix.py (transformers' own modules composed in the graph's order).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { compile } from '../../../src/index.js';
import { load } from '../../../runtime/model.js';
import { loadEntry, promptFacts } from '../../../runtime/server/catalog.js';
import { fixturePath, repoRoot, tempDir } from './harness.js';

const tmp = tempDir('blip-visual-prefix-');
after(() => tmp.remove());

const IMAGE = fixturePath('images', 'rgb_37x23.png');
const PROMPT = 'Question: what is this picture about? Answer:';
// greedy, as the reference decodes (the shipped graphs' beams and repetition penalty set aside)
const GREEDY_12 = { maxNewTokens: 12, minNewTokens: 12, numBeams: 1, repetitionPenalty: 1 };

const OPT_FROM_VIT = 'import "GRAPHS/blip2-opt.blip"\nmodel opt_from_vit extends blip2_opt {\n  override node llm: opt(prefix: vision, text: prompt) frozen @ "language_model" { config: "text_config" }\n}\n';

/** Compile `text` (GRAPHS: the shipped graphs' folder) against a checkpoint folder. */
async function compileText(name: string, text: string, weights: string): Promise<string> {
  const graph = join(tmp.dir, `${name}.blip`);
  writeFileSync(graph, text.replace('GRAPHS', relative(tmp.dir, join(repoRoot(), 'graphs'))));
  const out = join(tmp.dir, name);
  await compile(graph, { weights, out });
  return out;
}

/** The tokenizer's ids for PROMPT (its BOS included). */
const promptIds = (entry: ReturnType<typeof loadEntry>): number => entry.tokenizer.encodeBatch([PROMPT]).inputIds[0]!.length;

/** Tokens of one greedy run per prompt (undefined: no prompt). */
async function tokens(out: string, prompts: Array<string | undefined>, opts: Record<string, unknown> = GREEDY_12): Promise<number[][]> {
  const model = await load(out, { threads: 1 });
  try {
    const all: number[][] = [];
    for (const prompt of prompts) all.push((await model.generate([IMAGE], { ...opts, ...(prompt === undefined ? {} : { prompt }) }))[0]!.tokenIds);
    return all;
  } finally {
    await model.close();
  }
}

test('OPT fed the ViT: 17 placeholders for the 17 positions, the whole prompt kept; tokens == transformers', async () => {
  const out = await compileText('opt-from-vit', OPT_FROM_VIT, fixturePath('blip2-opt-a', 'checkpoint'));
  const { text } = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
  assert.deepEqual([text.num_query_tokens, text.prefix_length], [8, 17]);
  const got = await tokens(out, [PROMPT, `aaaaaaaa ${PROMPT} a`, `bbbbbbbb ${PROMPT} a`, undefined]);
  assert.deepEqual(got[0], new Array(12).fill(261));
  assert.deepEqual(got[1], [261, 261, 211, 208, 208, 261, 169, 169, 169, 169, 169, 169]);
  assert.notDeepEqual(got[2], got[1]); // the first words reach the model
  assert.deepEqual(got[3], [467, 467, 467, 467, 467, 467, 208, 208, 208, 208, 467, 467]); // [bos] after the prefix
  // the server counts the 17 placeholders among the prompt's positions
  const entry = loadEntry('m', out);
  assert.deepEqual([promptFacts(entry, PROMPT).positions, promptFacts(entry, null).positions], [17 + promptIds(entry), 17 + 1]);
});

test('the same graph on a checkpoint without image_token_index: 17 positions in front of the prompt, counted by the length checks', async () => {
  const weights = join(tmp.dir, 'no-image-token');
  cpSync(fixturePath('blip2-opt-a', 'checkpoint'), weights, { recursive: true });
  const config = JSON.parse(readFileSync(join(weights, 'config.json'), 'utf8'));
  delete config.image_token_index;
  writeFileSync(join(weights, 'config.json'), JSON.stringify(config));
  const out = await compileText('opt-from-vit-legacy', OPT_FROM_VIT, weights);
  assert.deepEqual(await tokens(out, [PROMPT]), [new Array(12).fill(261)]); // transformers' modules compose the same either way
  // the prefix's 17 positions, the prompt's and the new tokens but the last must fit the decoder's 64
  const entry = loadEntry('m', out);
  const prompt = 17 + promptIds(entry);
  assert.equal(promptFacts(entry, PROMPT).positions, prompt);
  const fits = 64 - prompt + 1;
  const model = await load(out, { threads: 1 });
  try {
    // (transformers fails there with an IndexError in the position embedding)
    await assert.rejects(model.generate([IMAGE], { prompt: PROMPT, maxNewTokens: fits + 1 }), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, 'BLIP5032', e.message);
      assert.equal(e.message, `the prompt takes ${prompt} positions and up to ${fits + 1} new tokens were asked for; the decoder has 64 positions: shorten the prompt or lower maxNewTokens`);
      return true;
    });
    assert.equal((await model.generate([IMAGE], { prompt: PROMPT, maxNewTokens: fits, minNewTokens: fits, numBeams: 1 }))[0]!.tokenIds.length, fits);
  } finally {
    await model.close();
  }
});

test('LLaMA fed the ViT through the projection, and InstructBLIP-Vicuna fed the ViT: tokens == transformers', async () => {
  const llama = await compileText('llama-from-vit', 'import "GRAPHS/examples/blip2-llama.blip"\nmodel llama_from_vit extends blip2_llama {\n  override node projection: linear(vision) @ "language_projection"\n}\n', fixturePath('blip2-llama-a', 'checkpoint'));
  assert.deepEqual(await tokens(llama, [PROMPT, undefined]), [
    [60, 472, 169, 202, 153, 301, 153, 153, 267, 53, 424, 603],
    [399, 391, 136, 276, 48, 391, 259, 185, 502, 583, 583, 583],
  ]);
  const vicuna = await compileText(
    'vicuna-from-vit',
    'import "GRAPHS/instructblip-vicuna.blip"\nmodel vicuna_from_vit extends instructblip_vicuna {\n  override node llm: llama(prefix: vision, text: prompt) frozen @ "language_model" { config: "text_config" }\n}\n',
    fixturePath('instructblip-vicuna-a', 'checkpoint'),
  );
  assert.deepEqual(await tokens(vicuna, [PROMPT]), [[469, 579, 145, 398, 134, 329, 225, 170, 65, 398, 454, 579]]);
});

test('an artifact compiled before text.prefix_length loads as before (num_query_tokens placeholders) and refuses a prefix of another length rather than cut the prompt', async () => {
  const out = await compileText('opt-from-vit-old', OPT_FROM_VIT, fixturePath('blip2-opt-a', 'checkpoint'));
  const path = join(out, 'manifest.json');
  const manifest = JSON.parse(readFileSync(path, 'utf8'));
  delete manifest.text.prefix_length;
  writeFileSync(path, JSON.stringify(manifest));
  await assert.rejects(tokens(out, [PROMPT]), (e: { code?: string; message?: string }) => {
    assert.equal(e.code, 'BLIP5044', e.message);
    assert.match(e.message ?? '', /encode\.onnx gives a visual prefix of 17 positions, but the prompt was built for 8 <image> placeholders .*; recompile the model/);
    return true;
  });
});
