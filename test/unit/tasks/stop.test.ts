// Stop strings (GenerateOptions.stop) on four tokenizer families: a row ends at the token whose text
// completes a stop, its text is what came before it, and nothing else changes — the other rows,
// the tokens before the stop, sampled draws and the streamed pieces.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { load, type BlipModel, type GenerateOptions, type GenerateResult } from '../../../src/index.js';
import { compileFixture, fixturePath, tempDir } from './harness.js';
import { pyStrip } from '../../../runtime/generation/pythonSpace.js';

const FIXTURES: Array<[string, string | undefined]> = [
  ['blip-caption-a', undefined], // BERT WordPiece
  ['blip2-opt-a', 'a photo of'], // byte-level BPE
  ['instructblip-vicuna-a', 'a photo of'], // BPE with byte fallback
  ['blip2-t5-a', 'a photo of'], // Unigram
];
const images = [fixturePath('images', 'rgb_37x23.png'), fixturePath('images', 'photo_64x48.jpg'), fixturePath('images', 'gray_45x31.png')];

const tmp = tempDir('blip-stop-');
const models = new Map<string, BlipModel>();
before(async () => {
  for (const [f] of FIXTURES) models.set(f, await load(await compileFixture(f, tmp.dir), { threads: 1 }));
});
after(async () => {
  for (const m of models.values()) await m.close();
  tmp.remove();
});

/** Two characters from the middle of a text (no replacement character, not only white space). */
function middleOf(text: string): string | undefined {
  const chars = [...text];
  for (let i = Math.floor(chars.length / 2); i < chars.length - 1; i++) {
    const s = chars[i] + chars[i + 1];
    if (!s.includes('\uFFFD') && s.trim() !== '') return s;
  }
  return undefined;
}

/** What a row with stops must give, from its run without them: the text before the stop completed first. */
function expectCut(full: GenerateResult, got: GenerateResult, stops: string[], what: string): void {
  // the stop completed first (the longer of two ending together)
  let best: { i: number; s: string } | undefined;
  for (const s of stops) {
    const i = full.text.indexOf(s);
    if (i >= 0 && (!best || i + s.length < best.i + best.s.length || (i + s.length === best.i + best.s.length && s.length > best.s.length))) best = { i, s };
  }
  if (!best) {
    assert.equal(got.text, full.text, what);
    assert.deepEqual(got.tokenIds, full.tokenIds, what);
    assert.equal(got.stop, undefined, what);
    return;
  }
  assert.equal(got.text, pyStrip(full.text.slice(0, best.i)), what);
  assert.equal(got.stop, best.s, what);
  assert.ok(got.tokenIds.length > 0 && got.tokenIds.length <= full.tokenIds.length, what);
  assert.deepEqual(got.tokenIds, full.tokenIds.slice(0, got.tokenIds.length), what);
}

for (const [fixture, prompt] of FIXTURES) {
  test(`${fixture}: greedy, sampled and beam rows end at their stop string; rows without one are unchanged`, async () => {
    const m = models.get(fixture)!;
    for (const o of [{}, { doSample: true, topP: 0.9, seed: 5 }, { numBeams: 3 }] as GenerateOptions[]) {
      const what = `${fixture} ${JSON.stringify(o)}`;
      const base = { ...o, maxNewTokens: 16, prompt };
      const full = await m.generate(images, base);
      // a stop from the middle of rows 0 and 1; row 2 may or may not contain one of them
      const stops = [middleOf(full[0].text), middleOf(full[1].text)].filter((s): s is string => s !== undefined);
      assert.ok(stops.length > 0, `${what}: no stop could be taken from ${JSON.stringify(full.map((r) => r.text))}`);
      const got = await m.generate(images, { ...base, stop: stops });
      got.forEach((r, i) => expectCut(full[i], r, stops, `${what} row ${i}`));
      // streamed: the pieces and ids of each row are its text and tokens
      const pieces: string[] = ['', '', ''];
      const ids: number[][] = [[], [], []];
      const streamed = await m.generate(images, {
        ...base,
        stop: stops,
        onToken: (row, text, id) => {
          pieces[row] += text;
          ids[row].push(id);
        },
      });
      streamed.forEach((r, i) => {
        assert.equal(r.text, got[i].text, what);
        assert.equal(pieces[i], r.text, `${what} row ${i} streamed`);
        assert.deepEqual(ids[i], r.tokenIds, `${what} row ${i} streamed ids`);
      });
    }
  });
}

test('a stop string that never occurs changes nothing; one at the first token gives an empty text', async () => {
  const m = models.get('blip-caption-a')!;
  const full = await m.generate(images, { maxNewTokens: 12 });
  const none = await m.generate(images, { maxNewTokens: 12, stop: 'zzzz-not-generated' });
  assert.deepEqual(none.map((r) => [r.text, r.tokenIds, r.stop]), full.map((r) => [r.text, r.tokenIds, undefined]));
  const first = [...full[0].text][0];
  const r = await m.generate([images[0]], { maxNewTokens: 12, stop: [first] });
  assert.equal(r[0].text, '');
  assert.equal(r[0].stop, first);
  assert.ok(r[0].tokenIds.length >= 1 && r[0].tokenIds.length < full[0].tokenIds.length);
});

test('stop values are checked: a string or up to four non-empty strings (BLIP5030)', async () => {
  const m = models.get('blip-caption-a')!;
  const code = (re: RegExp) => (e: unknown) => (e as { code?: string }).code === 'BLIP5030' && re.test((e as Error).message);
  await assert.rejects(m.generate([images[0]], { stop: '' }), code(/stop\[0\] is empty/));
  await assert.rejects(m.generate([images[0]], { stop: ['a', 'b', 'c', 'd', 'e'] }), code(/at most 4 different strings, found 5/));
  await assert.rejects(m.generate([images[0]], { stop: [1] as unknown as string[] }), code(/stop\[0\] must be a string/));
  await assert.rejects(m.generate([images[0]], { stop: 3 as unknown as string }), code(/a string or a list of strings/));
});
