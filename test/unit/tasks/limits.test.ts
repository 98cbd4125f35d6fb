// Text longer than a model's learned positions is refused up front (BLIP5032), naming the limit,
// instead of failing inside onnxruntime with a shape error.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { load } from '../../../src/index.js';
import { compileFixture, fixturePath, tempDir } from './harness.js';

const tmp = tempDir('blip-tasks-limits-');
after(() => tmp.remove());

const image = fixturePath('images', 'rgb_37x23.png');

test('the manifest records the learned-position limits of the text paths', async () => {
  const caption = await load(await compileFixture('blip-caption-a', tmp.dir));
  const itm = await load(await compileFixture('blip2-itm-a', tmp.dir));
  const vicuna = await load(await compileFixture('instructblip-vicuna-a', tmp.dir));
  try {
    assert.ok(caption.manifest.text.max_positions?.decoder! > 0);
    assert.ok(itm.manifest.text.max_positions?.qformer_text! > 0);
    // LLaMA's rotary positions have no table to run off; only the Q-Former's instruction is bounded.
    assert.equal(vicuna.manifest.text.max_positions?.decoder, undefined);
    assert.ok(vicuna.manifest.text.max_positions?.qformer_text! > 0);
  } finally {
    await Promise.all([caption.close(), itm.close(), vicuna.close()]);
  }
});

test('a prompt plus max_new_tokens beyond the decoder positions is BLIP5032; up to the last position runs (the last new token is never fed back)', async () => {
  const m = await load(await compileFixture('blip-caption-a', tmp.dir));
  try {
    const limit = m.manifest.text.max_positions!.decoder!;
    // no prompt: [DEC] takes position 0, new tokens 1 … limit - 1 are fed back, the limit-th is not
    await assert.rejects(m.generate([image], { maxNewTokens: limit + 1, minNewTokens: limit + 1 }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'BLIP5032');
      assert.match(e.message, new RegExp(`decoder has ${limit} positions`));
      return true;
    });
    const [full] = await m.generate([image], { maxNewTokens: limit, minNewTokens: limit });
    assert.equal(full!.tokenIds.length, limit);
    const ok = await m.generate([image], { maxNewTokens: 2 });
    assert.equal(ok.length, 1);
  } finally {
    await m.close();
  }
});

test('an ITM text longer than the Q-Former positions is BLIP5032, naming the first too long and its own length', async () => {
  const m = await load(await compileFixture('blip2-itm-a', tmp.dir));
  try {
    const limit = m.manifest.text.max_positions!.qformer_text!;
    const long = Array.from({ length: limit * 2 }, () => 'cat').join(' ');
    const longer = `${long} ${long}`;
    const tokensIn = async (texts: string[]): Promise<number> => {
      const e = (await m.itm([image], texts).then(() => assert.fail('no error'), (x: unknown) => x)) as Error & { code?: string };
      assert.equal(e.code, 'BLIP5032');
      const got = new RegExp(`^text "cat cat .*\\.\\.\\." is (\\d+) tokens; this model reads at most ${limit}: shorten it$`).exec(e.message);
      assert.ok(got, e.message);
      return Number(got[1]);
    };
    const alone = await tokensIn([long]);
    assert.ok(alone > limit);
    // beside a longer text: still the first one's own length, not the batch's padded width
    assert.equal(await tokensIn([long, longer]), alone);
    const [r] = await m.itm([image], ['a cat']);
    assert.ok(r.itm >= 0 && r.itm <= 1);
  } finally {
    await m.close();
  }
});

test('a text with a token its encoder has no embedding for is BLIP5033, naming the text and the token; the manifest records the vocabularies', async () => {
  const itm = await load(await compileFixture('blip2-itm-a', tmp.dir));
  const blipItm = await load(await compileFixture('blip-itm-a', tmp.dir));
  const vicuna = await load(await compileFixture('instructblip-vicuna-a', tmp.dir));
  try {
    const V = itm.manifest.text.vocab_sizes?.qformer_text;
    assert.ok(V! > 0);
    assert.ok(blipItm.manifest.text.vocab_sizes?.text! > 0);
    assert.ok(vicuna.manifest.text.vocab_sizes?.qformer_text! > 0);
    // BLIP-2's processor puts "<image>" in the Q-Former's tokenizer at the vocabulary's size
    await assert.rejects(itm.itm([image], ['a cat', 'a cat <image>']), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'BLIP5033');
      assert.match(e.message, new RegExp(`^text "a cat <image>" has the token "<image>" \\(id ${V}\\), which the Q-Former has no embedding for: its vocabulary has ${V} tokens`));
      return true;
    });
    const [r] = await itm.itm([image], ['a cat image']);
    assert.ok(r.itm >= 0 && r.itm <= 1);
  } finally {
    await Promise.all([itm.close(), blipItm.close(), vicuna.close()]);
  }
});
