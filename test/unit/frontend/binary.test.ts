// A binary file given as .blip, and text of more tokens than any model has, are one diagnostic
// each, found before lexing (review: 7.4 MB of weights ran ten minutes and reached 783 MB, an
// error every few bytes; 8 MiB of '}' took 22 s and 2.7 GB). Counts are asserted, not times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BLIP2, check } from './harness.js';
import { mulberry32 } from '../seededRandom.js';
import { countTokens, MAX_TOKENS } from '../../../src/syntax/fileChecks.js';
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

// A .blip file in another encoding is text to convert, not a binary file: one BLIP1001 that names
// the encoding (review: a file Windows PowerShell 5's '>' wrote was called "weights or an image?").
const decoded = (bytes: Uint8Array): string => new TextDecoder('utf-8').decode(bytes);
const utf16be = (s: string): Buffer => Buffer.from(s, 'utf16le').swap16();
const CJK_COMMENT = '// 这是一个用于图像描述的模型图。它读取图像并输出描述文字。\n';

test('a UTF-16LE file with a byte-order mark (PowerShell 5): one BLIP1001 saying it is UTF-16, at 1:1', () => {
  for (const src of [BLIP2, CJK_COMMENT.repeat(20) + BLIP2]) {
    const text = decoded(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(src, 'utf16le')]));
    assert.deepEqual(check(text), [
      {
        code: 'BLIP1001',
        line: 1,
        column: 1,
        message: "unexpected NUL bytes between the characters, after a UTF-16 byte-order mark: expected UTF-8 text, found UTF-16LE text (as Windows PowerShell 5's '>' writes): save the file as UTF-8",
      },
    ]);
  }
});

test('a UTF-16BE file, with a byte-order mark or without, and UTF-16LE without one: one BLIP1001 each, naming the byte order', () => {
  const cases: [Buffer, string][] = [
    [Buffer.concat([Buffer.from([0xfe, 0xff]), utf16be(BLIP2)]), 'unexpected NUL bytes between the characters, after a UTF-16 byte-order mark: expected UTF-8 text, found UTF-16BE text: save the file as UTF-8'],
    [utf16be(BLIP2), 'unexpected NUL bytes between the characters: expected UTF-8 text, found UTF-16BE text: save the file as UTF-8'],
    [Buffer.from(BLIP2, 'utf16le'), 'unexpected NUL bytes between the characters: expected UTF-8 text, found UTF-16LE text: save the file as UTF-8'],
  ];
  for (const [bytes, message] of cases) assert.deepEqual(check(decoded(bytes)).map((d) => [d.code, d.line, d.column, d.message]), [['BLIP1001', 1, 1, message]]);
});

test('a GBK file with a header of Chinese comments: one BLIP1001 saying it is not UTF-8 text, at the first such byte', () => {
  // '这是一个用于图像描述的模型图。' in GBK (iconv -t gbk): two bytes a character, most of them not UTF-8
  const gbk = Buffer.from('d5e2cac7d2bbb8f6d3c3d3dacdbccff1c3e8caf6b5c4c4a3d0cdcdbca1a3', 'hex');
  const header = Buffer.concat(Array.from({ length: 10 }, () => Buffer.concat([Buffer.from('// '), gbk, Buffer.from('\n')])));
  assert.deepEqual(check(decoded(Buffer.concat([header, Buffer.from(BLIP2)]))), [
    {
      code: 'BLIP1001',
      line: 1,
      column: 4,
      message: 'unexpected bytes that are not UTF-8 (over a quarter of the first 4 KB): expected UTF-8 text, found text in a legacy encoding (GBK, Shift-JIS, Latin-1?): save the file as UTF-8',
    },
  ]);
});

test('UTF-8 comments dense with Chinese and emoji are read as the text they are', () => {
  assert.deepEqual(check(CJK_COMMENT.repeat(60) + BLIP2), []);
  assert.deepEqual(check('// 🚀🔥✨🎉😀 emoji notes 🚀🔥✨🎉😀\n'.repeat(60) + BLIP2.replace('"qformer"', '"qformer" // 🚀🔥✨')), []);
});

test('a safetensors file of 16-bit integers (a NUL after each byte, as UTF-16 has): a binary file, not UTF-16', () => {
  const header = '{"ids":{"dtype":"I16","shape":[95],"data_offsets":[0,190]}}';
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(header.length), true);
  const ids = new Uint8Array(new Int16Array(Array.from({ length: 95 }, (_, i) => 32 + i)).buffer); // ' ', '!', … as UTF-16LE would be
  const ds = check(decoded(Buffer.concat([len, Buffer.from(header), ids])));
  assert.deepEqual(ds.map((d) => `${d.code}@${d.line}:${d.column}`), ['BLIP1001@1:2']);
  assert.match(ds[0]!.message, /found a binary file/);
});
