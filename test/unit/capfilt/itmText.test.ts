// What the CapFilt filter reads of a text: BLIP's first 35 tokens ([CLS] and [SEP] included), found
// without tokenizing a huge web text whole; and a caption cut from its decoded sequence as BLIP does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { captionText, itmPrefix, ITM_MAX_TOKENS, CAPTION_PROMPT } from '../../../src/capfilt/runtimeModels.js';
import { loadTokenizer } from '../../../runtime/tokenizers/hf.js';

const tok = loadTokenizer('test/fixtures/blip-itm-a/checkpoint');
const first = (t: string) => tok.encode(t, { maxLength: ITM_MAX_TOKENS });

test("a text's first 35 tokens are the whole encoding cut, [SEP] kept, as truncation=True, max_length=35", () => {
  const full = tok.encode('猫'.repeat(60));
  assert.deepEqual(first('猫'.repeat(60)), [...full.slice(0, ITM_MAX_TOKENS - 1), full[full.length - 1]]);
  assert.deepEqual(first('a photo of a dog'), tok.encode('a photo of a dog'));
});

test('a huge text is tokenized only as far as its first 35 tokens reach, cut where BERT splits anyway', () => {
  const texts = ['a blue ' + 'very '.repeat(20_000) + 'long caption', '猫'.repeat(30_000), 'x'.repeat(10_000) + ' a dog ' + 'b'.repeat(9000), 'é,'.repeat(9000), '🐱'.repeat(9000), 'dog\u00a0'.repeat(3000), 'a photo of a dog'];
  for (const text of texts) {
    const head = itmPrefix(tok, text);
    assert.ok(text.startsWith(head), text.slice(0, 20));
    // a text of fewer tokens is read whole; the others, from the first 4096 characters on
    if (tok.encode(head, { addSpecialTokens: false }).length >= ITM_MAX_TOKENS) assert.ok(head.length <= 4096, `${text.slice(0, 20)}: ${head.length} characters`);
    else assert.equal(head, text);
    assert.deepEqual(first(head), first(text), text.slice(0, 20));
  }
  assert.equal(itmPrefix(tok, '猫'.repeat(30_000)).length, 4096);
});

test("a caption is the whole sequence decoded with the prompt's characters cut off (BLIP's caption[len(prompt):])", () => {
  const ctok = loadTokenizer('test/fixtures/blip-caption-a/checkpoint');
  const prompt = ctok.encode(CAPTION_PROMPT, { addSpecialTokens: false });
  const dog = ctok.encode('a dog', { addSpecialTokens: false });
  assert.equal(captionText(ctok, prompt, [...dog, ctok.sepTokenId ?? 102]), 'a dog');
  // a first token that continues "of" joins it, and the cut then eats into the caption
  const piece = ctok.encode('ofellur', { addSpecialTokens: false }).slice(1);
  assert.ok(ctok.decode(piece).startsWith('##'), ctok.decode(piece));
  // "a picture ofellur", less the 13 characters of "a picture of ": BLIP's caption is "llur"
  assert.equal(captionText(ctok, prompt, piece), 'llur');
});
