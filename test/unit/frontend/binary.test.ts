// A binary file given as .blip, and text of more tokens than any model has, are one diagnostic
// each, found before lexing (review: 7.4 MB of weights ran ten minutes and reached 783 MB, an
// error every few bytes; 8 MiB of '}' took 22 s and 2.7 GB). Counts are asserted, not times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BLIP2, check } from './harness.js';
import { mulberry32 } from '../seededRandom.js';
import { countTokens, MAX_TOKENS } from '../../../src/syntax/parse.js';
import { BlipLexer } from '../../../grammar/tokens.js';

/** `n` random bytes, decoded as blip check decodes a file. */
function randomText(n: number, seed: number, map = (b: number) => b): string {
  const next = mulberry32(seed);
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = map(Math.floor(next() * 256));
  return new TextDecoder('utf-8').decode(bytes);
}

test('3 MB of random bytes: one BLIP1001 saying it is a binary file', () => {
  assert.deepEqual(
    check(randomText(3 << 20, 7)).map((d) => [d.code, d.message]),
    [['BLIP1001', 'unexpected NUL bytes (U+0000): expected .blip text, found a binary file (weights or an image?)']],
  );
});

test('2 MB of random bytes without a NUL: one BLIP1001 all the same', () => {
  const ds = check(randomText(2 << 20, 8, (b) => b || 1));
  assert.deepEqual(ds.map((d) => [d.code, d.line, d.column]), [['BLIP1001', 1, 1]]);
  assert.match(ds[0]!.message, /^unexpected bytes that are not UTF-8 or control characters \(over a quarter of the first 4 KB\): expected \.blip text, found a binary file/);
});

test('a safetensors file (a length in 8 bytes, a JSON header, floats): one BLIP1001 at its NULs', () => {
  const header = '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}';
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(header.length), true);
  const floats = new Uint8Array(new Float32Array([0.5, 1, -2, 0]).buffer);
  const text = new TextDecoder().decode(Buffer.concat([len, Buffer.from(header), floats]));
  assert.deepEqual(check(text).map((d) => `${d.code}@${d.line}:${d.column}`), ['BLIP1001@1:2']);
});

test('one stray NUL in a model is an unexpected character where it stands, not a binary file', () => {
  const ds = check(BLIP2.replace('frozen @', 'frozen\u0000@'));
  assert.deepEqual(ds.map((d) => d.code), ['BLIP1001']);
  assert.doesNotMatch(ds[0]!.message, /binary/);
});

test("8 MB of '}' and 4 MB of '; ' (millions of tokens or errors): one BLIP1015 each", () => {
  const expect = [{ code: 'BLIP1015', line: 1, column: 1, message: 'file too large: expected at most 500k tokens (names, numbers, strings, punctuation), found more' }];
  assert.deepEqual(check('}'.repeat(8_000_000)), expect);
  assert.deepEqual(check('model m {\n' + '; '.repeat(2_000_000) + '}\n'), expect);
});

test('the token count before lexing is what the lexer makes of a model, comments included', () => {
  const src = '// a model\n' + BLIP2.replace('frozen @', 'frozen /* kept */ @').replace('@ "qformer"', '@ "q\\"former" { layers: -12, scale: 1.5e-3 }');
  const lexed = BlipLexer.tokenize(src);
  assert.equal(countTokens(src, MAX_TOKENS), lexed.tokens.length + (lexed.groups.comments?.length ?? 0));
});

test('200k bytes that are not UTF-8, in strings and out: one BLIP1001 each (text, not a binary file)', () => {
  // (each U+FFFD in a string is checked against the lexer's errors by one walk, not a search of all)
  const src = 'model m {\n' + '  \ufffd x: "\ufffd"\n'.repeat(100_000) + '}\n';
  const ds = check(src);
  assert.equal(ds.filter((d) => d.code === 'BLIP1001' && /not UTF-8/.test(d.message)).length, 200_000);
});
