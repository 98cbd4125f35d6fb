// A generation block whose max_new_tokens cannot fit the decoder's learned positions (100 new tokens
// after BLIP-2's 8 queries, on blip2-opt-a's 64-position OPT) compiled without a word, and then every
// run that kept the default was refused with "… lower --max-new-tokens", a flag the user never
// gave. transformers keeps a generation config's max_new_tokens as it is (it runs until the position
// table runs out), so the default is kept too, but the compile warns at the block's line and the
// refusal names the default and where it came from.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { compile } from '../../../src/index.js';
import { load } from '../../../runtime/model.js';
import { fixturePath, repoRoot, tempDir } from './harness.js';

const tmp = tempDir('blip-default-length-');
after(() => tmp.remove());

async function compileText(name: string, text: string): Promise<{ out: string; graph: string; warnings: string[] }> {
  const graph = join(tmp.dir, `${name}.blip`);
  writeFileSync(graph, text.replace('GRAPHS', relative(tmp.dir, join(repoRoot(), 'graphs'))));
  const out = join(tmp.dir, name);
  const r = await compile(graph, { weights: fixturePath('blip2-opt-a', 'checkpoint'), out });
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
