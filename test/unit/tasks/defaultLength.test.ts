// A generation block whose max_new_tokens cannot fit the decoder's learned positions (100 new tokens
// after BLIP-2's 8 queries, on blip2-opt-a's 64-position OPT) compiled without a word, and then every
// run that kept the default was refused with "… lower --max-new-tokens", a flag the user never
// gave. transformers keeps a generation config's max_new_tokens as it is (it runs until the position
// table runs out), so the default is kept too, but the compile warns at the block's line and the
// refusal names the default and where it came from.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { compile } from '../../../src/index.js';
import { load } from '../../../runtime/model.js';
import { main } from '../../../src/cli/main.js';
import { fixturePath, repoRoot, tempDir } from './harness.js';

const tmp = tempDir('blip-default-length-');
after(() => tmp.remove());

async function compileText(name: string, text: string, weights = fixturePath('blip2-opt-a', 'checkpoint')): Promise<{ out: string; graph: string; warnings: string[] }> {
  const graph = join(tmp.dir, `${name}.blip`);
  writeFileSync(graph, text.replace('GRAPHS', relative(tmp.dir, join(repoRoot(), 'graphs'))));
  const out = join(tmp.dir, name);
  const r = await compile(graph, { weights, out });
  return { out, graph, warnings: r.warnings };
}

test("a generation block's max_new_tokens beyond the decoder's positions is a compile warning at its line; a run keeping it is refused naming the default", async () => {
  const text = 'import "GRAPHS/blip2-opt.blip"\nmodel m extends blip2_opt {\n  generation { max_new_tokens: 100 }\n}\n';
  const { out, graph, warnings } = await compileText('too-long', text);
  assert.deepEqual(warnings, [
    `${graph}:3:32: the generation block's max_new_tokens 100 after the 8-position visual prefix exceeds the decoder's 64 positions: every run that keeps this default is refused (BLIP5032), with or without a prompt; at most 56 new tokens fit without a prompt, fewer with one`,
  ]);
  const model = await load(out, { threads: 1 });
  try {
    const image = fixturePath('images', 'rgb_37x23.png');
    await assert.rejects(model.generate([image]), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, 'BLIP5032', e.message);
      assert.equal(e.message, "with no prompt, the image prefix and start tokens take 9 positions and the model's default max_new_tokens 100 (from the graph's generation block) asks for up to 100 new tokens; the decoder has 64 positions: set a lower maxNewTokens");
      return true;
    });
    // the warning's count: the 8 placeholders, bos, and the new tokens but the last
    assert.equal((await model.generate([image], { maxNewTokens: 56, minNewTokens: 56 }))[0]!.tokenIds.length, 56);
    await assert.rejects(model.generate([image], { maxNewTokens: 57 }), /up to 57 new tokens were asked for; .* lower maxNewTokens$/);
  } finally {
    await model.close();
  }
});

test('a default that just fits (56 new tokens after the 8 queries) compiles without the warning', async () => {
  const { warnings } = await compileText('fits', 'import "GRAPHS/blip2-opt.blip"\nmodel m extends blip2_opt {\n  generation { max_new_tokens: 56 }\n}\n');
  assert.deepEqual(warnings, []);
});

/** What `blip run ARGS` writes to stderr, and its exit code. */
async function runCli(args: string[]): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((s: unknown, ...rest: unknown[]) =>
    typeof s === 'string' ? (err.push(s), true) : (write as (...a: unknown[]) => boolean).call(process.stderr, s, ...rest)) as typeof process.stderr.write;
  try {
    return { code: await main(['run', ...args]), err: err.join('') };
  } finally {
    process.stderr.write = write;
  }
}

test("a default max_length the start tokens fill is refused naming the default and where it came from, not an option or flag the caller never gave", async () => {
  // blip2-opt-a without a prompt: 8 image placeholders and BOS, which max_length counts
  const { out } = await compileText('short', 'import "GRAPHS/blip2-opt.blip"\nmodel m extends blip2_opt {\n  generation { max_length: 9 }\n}\n');
  const image = fixturePath('images', 'rgb_37x23.png');
  const model = await load(out, { threads: 1 });
  try {
    await assert.rejects(model.generate([image]), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, 'BLIP5030', e.message);
      assert.equal(e.message, "the input (start tokens, any image prefix and the prompt) is 9 tokens but the model's default max_length 9 (from the graph's generation block) counts them: set a larger maxLength or set maxNewTokens");
      return true;
    });
    // the caller's own maxLength is named as theirs
    await assert.rejects(model.generate([image], { maxLength: 9 }), /is 9 tokens but maxLength is 9, which counts them: raise maxLength or set maxNewTokens$/);
    assert.equal((await model.generate([image], { maxLength: 10 }))[0]!.tokenIds.length, 1);
  } finally {
    await model.close();
  }
  const cli = await runCli([out, '--image', image]);
  assert.equal(cli.code, 1);
  assert.equal(cli.err, "error BLIP5030: the input (start tokens, any image prefix and the prompt) is 9 tokens but the model's default max_length 9 (from the graph's generation block) counts them: set a larger --max-length or set --max-new-tokens\n");
});

// max_length counts the start tokens (blip2-opt-a: 8 image placeholders and BOS) and the prompt, so
// the new tokens shrink as the prompt grows: one beyond the positions is beyond them with or without
// a prompt (the start tokens and every new token but the last take one each: 64 positions hold a
// max_length of 65), and one the start tokens fill leaves no new token (BLIP5030) for any run.
test("a default max_length beyond the decoder's positions, or one the start tokens fill, is a compile warning at its line; a run keeping it is refused naming the default", async () => {
  const opt = (n: number) => `import "GRAPHS/blip2-opt.blip"\nmodel m extends blip2_opt {\n  generation { max_length: ${n} }\n}\n`;
  const long = await compileText('long-length', opt(66));
  assert.deepEqual(long.warnings, [
    `${long.graph}:3:28: the generation block's max_length 66 exceeds the decoder's 64 positions: every run that keeps this default is refused (BLIP5032), with or without a prompt; a max_length of at most 65 fits`,
  ]);
  const image = fixturePath('images', 'rgb_37x23.png');
  const model = await load(long.out, { threads: 1 });
  try {
    await assert.rejects(model.generate([image]), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, 'BLIP5032', e.message);
      assert.equal(e.message, "with no prompt, the image prefix and start tokens take 9 positions and the model's default max_length 66 (from the graph's generation block) asks for up to 57 new tokens; the decoder has 64 positions: set a lower maxLength or maxNewTokens");
      return true;
    });
    // the warning's bound, with and without a prompt
    assert.equal((await model.generate([image], { maxLength: 65, minLength: 65 }))[0]!.tokenIds.length, 56);
    assert.equal((await model.generate([image], { prompt: 'a photo of', maxLength: 65, minLength: 65 }))[0]!.tokenIds.length > 0, true);
  } finally {
    await model.close();
  }
  assert.deepEqual((await compileText('fits-length', opt(65))).warnings, []);
  const short = await compileText('short-length', opt(9));
  assert.deepEqual(short.warnings, [
    `${short.graph}:3:28: the generation block's max_length 9 leaves no room for a new token: it counts the 8 image placeholders and BOS every run starts from (9 tokens), so every run that keeps this default is refused (BLIP5030), with or without a prompt; give a max_length above 9, or max_new_tokens`,
  ]);
  assert.deepEqual((await compileText('one-new', opt(10))).warnings, []);
});

test("generation_config.json's max_length is warned of too (without a line), and BLIP's [DEC] is the start token it counts", async () => {
  const dir = join(tmp.dir, 'caption-config');
  cpSync(fixturePath('blip-caption-a', 'checkpoint'), dir, { recursive: true });
  const file = JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8'));
  // a BLIP captioner with no generation block: the file's lengths are the defaults
  const noBlock = 'model caption {\n  input image: image\n  input prompt: text\n  node vision: vit(image) @ "vision_model" { config: "vision_config" }\n  node decoder: bert(prompt, cross: vision) @ "text_decoder" { config: "text_config", causal: true }\n  output caption: generate(decoder)\n}\n';
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ ...file, max_length: 34 }));
  assert.deepEqual((await compileText('config-long', noBlock, dir)).warnings, [
    "generation_config.json's max_length 34 exceeds the decoder's 32 positions: every run that keeps this default is refused (BLIP5032), with or without a prompt; a max_length of at most 33 fits",
  ]);
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ ...file, max_length: 33 }));
  assert.deepEqual((await compileText('config-fits', noBlock, dir)).warnings, []);
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ ...file, max_length: 1 }));
  assert.deepEqual((await compileText('config-short', noBlock, dir)).warnings, [
    "generation_config.json's max_length 1 leaves no room for a new token: it counts the decoder's start token every run starts from (1 token), so every run that keeps this default is refused (BLIP5030), with or without a prompt; give a max_length above 1, or max_new_tokens",
  ]);
  // with max_new_tokens beside it, max_length is not used: nothing to warn of
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ ...file, max_length: 1, max_new_tokens: 5 }));
  assert.deepEqual((await compileText('config-both', noBlock, dir)).warnings, []);
});
