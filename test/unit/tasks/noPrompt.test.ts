// A graph that connects no text input (an LLM given only the visual prefix, a caption decoder
// without a text port) generates from the image alone: its manifest says it takes no prompt, and
// a prompt is refused — by generate(), `blip run --prompt` and the server — rather than fed to the
// decoder anyway, where it changed the tokens of a model that was never given it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { compile } from '../../../src/index.js';
import { load } from '../../../runtime/model.js';
import { runCliBatch } from '../cliHarness.js';
import { readManifest } from '../../../src/artifact/manifest.js';
import { loadTokenizer } from '../../../runtime/tokenizers/hf.js';
import { buildInputs, type GenerateContext } from '../../../runtime/tasks/generate.js';
import { expected, fixturePath, imagesOf, repoRoot, tempDir } from './harness.js';

const tmp = tempDir('blip-no-prompt-');
after(() => tmp.remove());

/** Compile `text` (a .blip file written into the temporary folder) against a fixture. */
async function compileText(name: string, text: string, fixture: string): Promise<{ out: string; warnings: string[] }> {
  const graph = join(tmp.dir, `${name}.blip`);
  writeFileSync(graph, text.replace('GRAPHS', relative(tmp.dir, join(repoRoot(), 'graphs'))));
  const out = join(tmp.dir, name);
  const r = await compile(graph, { weights: fixturePath(fixture, 'checkpoint'), out });
  return { out, warnings: r.warnings };
}

const refused = (e: { code?: string; message?: string }) => e.code === 'BLIP5030' && /takes no prompt: its graph reads no text input/.test(e.message ?? '');

test('BLIP-2 with no text: port records takes_prompt false; a prompt is refused, without one it generates as before', async () => {
  const { out } = await compileText('drop-prompt', 'import "GRAPHS/blip2-opt.blip"\nmodel x extends blip2_opt {\n  override node llm: opt(prefix: projection) frozen @ "language_model" { config: "text_config" }\n}\n', 'blip2-opt-a');
  const model = await load(out, { threads: 1 });
  try {
    assert.equal(model.manifest.text.takes_prompt, false);
    assert.equal(model.promptStyle?.none, true);
    const images = imagesOf(expected('blip2-opt-a')).slice(0, 1);
    await assert.rejects(model.generate(images, { prompt: 'Question: what is it? Answer:', maxNewTokens: 3 }), refused);
    assert.equal((await model.generate(images, { maxNewTokens: 3 }))[0]!.tokenIds.length > 0, true);
  } finally {
    await model.close();
  }
  const [run, plain] = runCliBatch([
    ['run', out, '--image', imagesOf(expected('blip2-opt-a'))[0]!, '--prompt', 'a photo of', '--max-new-tokens', '2'],
    ['run', out, '--image', imagesOf(expected('blip2-opt-a'))[0]!, '--max-new-tokens', '2'],
  ]);
  assert.equal(run!.code, 2, run!.err);
  assert.match(run!.err, /--prompt is not taken: model "x" takes no prompt/);
  assert.equal(plain!.code, 0, plain!.err);
});

test('a BLIP caption decoder without a text input takes no prompt; one that reads it does (manifest field absent)', async () => {
  const noText = `model cap {
  input image: image
  node vision: vit(image) @ "vision_model" { config: "vision_config" }
  node decoder: bert(cross: vision) @ "text_decoder" { config: "text_config", causal: true }
  output caption: generate(decoder)
  generation { prompt: "a picture of" }
}
`;
  const { out, warnings } = await compileText('cap-no-text', noText, 'blip-caption-a');
  assert.ok(warnings.some((w) => /generation block's prompt "a picture of" is left out/.test(w)), warnings.join('\n'));
  const model = await load(out, { threads: 1 });
  try {
    assert.equal(model.manifest.text.takes_prompt, false);
    assert.equal(model.manifest.generation?.prompt, undefined);
    const images = imagesOf(expected('blip-caption-a')).slice(0, 1);
    await assert.rejects(model.generate(images, { prompt: 'a picture of', maxNewTokens: 3 }), refused);
    assert.equal((await model.generate(images, { maxNewTokens: 3 })).length, 1);
  } finally {
    await model.close();
  }
  const { out: shipped } = await compileText('cap', 'import "GRAPHS/blip-caption.blip"\nmodel y extends blip_caption {}\n', 'blip-caption-a');
  const m2 = await load(shipped, { threads: 1 });
  try {
    assert.equal(m2.manifest.text.takes_prompt, undefined);
    assert.equal(m2.promptStyle?.none, undefined);
  } finally {
    await m2.close();
  }
});

test('InstructBLIP whose LLM has no text port: the instruction goes to the Q-Former only, the LLM starts from its bos (manifest llm_prompt false)', async () => {
  const { out } = await compileText(
    'instruct-qformer-only',
    'import "GRAPHS/instructblip-vicuna.blip"\nmodel z extends instructblip_vicuna {\n  override node llm: llama(prefix: projection) frozen @ "language_model" { config: "text_config" }\n}\n',
    'instructblip-vicuna-a',
  );
  const manifest = readManifest(out);
  assert.equal(manifest.text.llm_prompt, false);
  assert.equal(manifest.text.takes_prompt, undefined);
  const ctx = { manifest, tokenizer: loadTokenizer(join(out, 'tokenizer')), qformerTokenizer: loadTokenizer(join(out, 'qformer_tokenizer')) } as unknown as GenerateContext;
  const built = buildInputs(ctx, ['What is in the picture?'], 1);
  assert.ok((built.encodeFeeds.qformer_input_ids!.dims[1] as number) > 2, 'the Q-Former reads the instruction');
  const llmIds = built.prefillText?.inputIds[0] ?? built.prompt.inputIds[0]!.filter((id) => id !== manifest.text.image_token_id);
  assert.deepEqual(llmIds, [manifest.text.bos_token_id]);
  const model = await load(out, { threads: 1 });
  try {
    const images = imagesOf(expected('instructblip-vicuna-a')).slice(0, 1);
    assert.equal((await model.generate(images, { prompt: 'What is in the picture?', maxNewTokens: 3, numBeams: 1 })).length, 1);
  } finally {
    await model.close();
  }
});
