// runtime/generation/stopStrings.ts: the streamed filter releases exactly the text before the stop
// string completed first, however the text is split, and cutAtStop ends at the first token whose own text
// shows a stop (a character completed by a later byte token counts only once it is whole).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cutAtStop, findStop, StopFilter, stopList, stopText } from '../../../runtime/generation/stopStrings.js';
import { createRandom } from '../../../runtime/generation/random.js';

test('StopFilter: the pieces it releases are the text before the stop completed first, for any split (seeded)', () => {
  const rnd = createRandom(12345);
  const pick = (s: string) => s[Math.floor(rnd() * s.length)];
  const word = (alphabet: string, min: number, max: number) => Array.from({ length: min + Math.floor(rnd() * (max - min + 1)) }, () => pick(alphabet)).join('');
  let stopped = 0;
  for (let n = 0; n < 3000; n++) {
    const text = word('ab \n', 0, 30);
    const stops = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => word('ab \n', 1, 4));
    const f = new StopFilter(stops);
    let out = '';
    for (let i = 0; i < text.length; ) {
      const k = Math.floor(rnd() * 5); // pieces of 0-4 characters
      out += f.push(text.slice(i, i + k));
      i += k;
    }
    out += f.end();
    const hit = findStop(text, stops);
    if (hit) stopped++;
    assert.equal(out, hit ? text.slice(0, hit.index) : text, `${JSON.stringify(text)} ${JSON.stringify(stops)}`);
  }
  assert.ok(stopped > 1000 && stopped < 2900, `${stopped} of 3000 texts held a stop`);
});

test('findStop: the stop completed first wins, the longer of two ending together', () => {
  assert.deepEqual(findStop('a cat. A dog', ['A', '.']), { index: 5, stop: '.' });
  assert.deepEqual(findStop('a cat. A dog', ['. ', '.']), { index: 5, stop: '.' });
  assert.deepEqual(findStop('a cat. A dog', ['cat. A', '. A']), { index: 2, stop: 'cat. A' });
  assert.deepEqual(findStop('  ab', ['a', ' ab']), { index: 2, stop: 'a' });
  assert.equal(findStop('a cat', ['dog']), undefined);
});

test('cutAtStop: through the token whose text completes the stop; a character made whole later counts then', () => {
  // a toy decoder: ids < 100 are characters, 200/201 the two bytes of "é" (an incomplete one shows U+FFFD)
  const tok = {
    decode(ids: number[]) {
      let s = '';
      for (let i = 0; i < ids.length; i++) {
        if (ids[i] === 200) s += ids[i + 1] === 201 ? 'é' : '\uFFFD';
        else if (ids[i] !== 201) s += String.fromCharCode(ids[i]);
      }
      return s;
    },
  };
  const ids = [...'caf'].map((c) => c.charCodeAt(0)).concat([200, 201], [...' ok'].map((c) => c.charCodeAt(0)));
  assert.deepEqual(cutAtStop(tok, ids, ['é']), { tokenIds: ids.slice(0, 5), text: 'caf', stop: 'é' });
  assert.deepEqual(cutAtStop(tok, ids, [' o', 'f']), { tokenIds: ids.slice(0, 3), text: 'ca', stop: 'f' });
  assert.equal(cutAtStop(tok, ids, ['x']), undefined);
  assert.equal(cutAtStop(tok, ids, []), undefined);
});

test('stopList: a string or up to four non-empty strings of at most 256 characters; duplicates once', () => {
  assert.deepEqual(stopList(undefined), []);
  assert.deepEqual(stopList(null), []);
  assert.deepEqual(stopList('\n'), ['\n']);
  assert.deepEqual(stopList(['.', '.', '!']), ['.', '!']);
  assert.throws(() => stopList(['']), /stop\[0\] is empty/);
  assert.throws(() => stopList(['a', 'b', 'c', 'd', 'e']), /at most 4 different strings, found 5/);
  assert.deepEqual(stopList(['a', 'b', 'a', 'c', 'd']), ['a', 'b', 'c', 'd']); // counted once each, as blip run counts --stop
  // a sparse array's hole is no string; 256 characters counted as characters, not UTF-16 units
  assert.throws(() => stopList([, 'e'] as unknown as string[]), /stop\[0\] must be a string/);
  assert.deepEqual(stopList(['🙂'.repeat(256)]), ['🙂'.repeat(256)]);
  assert.throws(() => stopList(['🙂'.repeat(257)]), /257 characters/);
  assert.throws(() => stopList({}), /a string or a list of strings/);
  assert.throws(() => stopList(['.', 'x'.repeat(257)]), /stop\[1\] is 257 characters; a stop string has at most 256/);
  assert.deepEqual(stopList(['x'.repeat(256)]), ['x'.repeat(256)]);
});

test('byte fallback: stops are matched, and streams released, only in text later bytes cannot change', async () => {
  const { loadTokenizer } = await import('../../../runtime/tokenizers/hf.js');
  const { TextStreamer } = await import('../../../runtime/generation/streamer.js');
  const { fixturePath } = await import('./fixtures.js');
  const tok = loadTokenizer(fixturePath('tokenizers', 'llama'));
  const ids = (tokens: string[]) => tokens.map((t) => tok.tokenToId(t)!);
  // "G" is shown while its byte run may go on, then the next byte makes the run invalid: "a" + 2 x U+FFFD
  const run = ids(['▁a', '<0x47>', '<0xE5>', '▁b']);
  assert.equal(tok.decode(run.slice(0, 2)), 'aG');
  assert.equal(tok.decodeStable(run.slice(0, 2)), 'a');
  assert.equal(tok.decode(run), 'a\uFFFD\uFFFD b');
  assert.equal(cutAtStop(tok, run, ['G']), undefined);
  assert.deepEqual(cutAtStop(tok, run, [' b']), { tokenIds: run, text: 'a\uFFFD\uFFFD', stop: ' b' });
  // a sequence that ends inside a run: its text is final, and a stop there cuts it
  assert.deepEqual(cutAtStop(tok, run.slice(0, 2), ['G']), { tokenIds: run.slice(0, 2), text: 'a', stop: 'G' });
  // a streamer holding incomplete text: its pieces add up to the decode (transformers' can release a space or newline a later byte rewrites)
  // (a skipped special token inside a run does not end it)
  for (const tokens of [['▁a', '<0x20>', '<0xE5>', '▁b'], ['▁a', '<0x0A>', '<0xE5>', '▁b'], ['▁a', '<0xE5>', '<0x93>', '<0x88>', '▁b'], ['▁a', '<0x20>', '</s>', '<0xE5>', '▁b']]) {
    const seq = ids(tokens);
    let out = '';
    const st = new TextStreamer(tok, (t) => (out += t), { resetAtNewline: false, holdIncomplete: true, skipSpecialTokens: true });
    for (const id of seq) st.put([id]);
    st.end();
    assert.equal(out, tok.decode(seq, { skipSpecialTokens: true }), tokens.join(' '));
  }
  // byte-level BPE: a character whose second byte is still to come is held back, not matched as U+FFFD
  const opt = loadTokenizer(fixturePath('tokenizers', 'opt'));
  const half = [opt.tokenToId('a')!, opt.tokenToId('Ã')!];
  assert.equal(opt.decode(half), 'a\uFFFD');
  assert.equal(opt.decodeStable(half), 'a');
  assert.equal(findStop(stopText(opt, half), ['\uFFFD']), undefined); // not while generating
  assert.deepEqual(cutAtStop(opt, half, ['\uFFFD']), { tokenIds: half, text: 'a', stop: '\uFFFD' }); // a finished text is final
  assert.equal(opt.decodeStable([...half, opt.tokenToId('©')!]), 'aé');
});

test('a clean-up tokenizer (clean_up_tokenization_spaces): the last word is held back, since the next token can join it', async () => {
  const { loadTokenizer } = await import('../../../runtime/tokenizers/hf.js');
  const { TextStreamer } = await import('../../../runtime/generation/streamer.js');
  const { fixturePath } = await import('./fixtures.js');
  const tok = loadTokenizer(fixturePath('tokenizers', 'bert'));
  tok.loaded.cleanUp = true; // as a BLIP tokenizer_config.json saved by transformers 4 says
  const ids = tok.encode("i don't know it", { addSpecialTokens: false });
  const whole = tok.decode(ids);
  assert.equal(whole, "i don't know it");
  // a prefix decodes to "i don '" before the clean-up joins it: no stop there, no piece of it released
  assert.ok(ids.some((_, k) => tok.decode(ids.slice(0, k)).endsWith("don '")));
  assert.equal(cutAtStop(tok, ids, ["n '"]), undefined);
  let out = '';
  const st = new TextStreamer(tok, (t) => (out += t), { resetAtNewline: false, holdIncomplete: true });
  for (const id of ids) st.put([id]);
  st.end();
  assert.equal(out, whole);
});
