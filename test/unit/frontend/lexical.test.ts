// Lexical rules the review found loose (finding 18): integers as written, strings as in JSON, the
// byte-order mark, numbers that run into letters of any script.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BLIP2, check, edit, load } from './harness.js';

const withGeneration = (attrs: string) => edit('output text: generate(llm)', `output text: generate(llm)\n  generation { ${attrs} }`);
const codes = (src: string) => check(src).map((d) => `${d.code}@${d.line}:${d.column}`);

test('an integer attribute takes an integer as written: 1e2 and 10.0 are BLIP3002, 100 is fine', () => {
  assert.deepEqual(codes(withGeneration('max_new_tokens: 100')), []);
  for (const v of ['1e2', '10.0']) {
    const ds = check(withGeneration(`max_new_tokens: ${v}`));
    assert.deepEqual(ds.map((d) => d.code), ['BLIP3002'], v);
    assert.match(ds[0]!.message, new RegExp(`expects an integer, found ${v.replace('.', '\\.')} \\(write it without '\\.' or an exponent: ${Number(v)}\\)`));
  }
});

test('a raw control character in a string is BLIP1001 (escape it, as in JSON); escapes of it are fine', () => {
  const ds = check(withGeneration('prompt: "a\u0000b"'));
  assert.deepEqual(ds.map((d) => d.code), ['BLIP1001']);
  assert.match(ds[0]!.message, /control character U\+0000 in a string: expected it escaped \(\\u0000\)/);
  assert.deepEqual(codes(withGeneration('prompt: "a\\u0000b\\tc"')), []);
});

test('a lone surrogate escape is BLIP1004; a surrogate pair is one character', () => {
  assert.deepEqual(check(withGeneration('prompt: "\\ud800"')).map((d) => d.code), ['BLIP1004']);
  assert.deepEqual(check(withGeneration('prompt: "x\\udc00"')).map((d) => d.code), ['BLIP1004']);
  assert.deepEqual(codes(withGeneration('prompt: "\\ud83d\\ude00"')), []);
  // the ends of the surrogate range, and a high surrogate followed by something other than a low one
  for (const lone of ['\\uDFFF', '\\uDBFF', '\\uD800x', '\\uD800\\u0041']) {
    const ds = check(withGeneration(`prompt: "${lone}"`));
    assert.deepEqual(ds.map((d) => `${d.code}@${d.line}:${d.column}`), ['BLIP1004@9:25'], lone);
    assert.match(ds[0]!.message, /^invalid escape '\\u(DFFF|DBFF|D800)' in a string: expected a character, not half of a surrogate pair/, lone);
  }
  // a pair the wrong way round is two halves
  assert.deepEqual(codes(withGeneration('prompt: "\\uDFFF\\uD800"')), ['BLIP1004@9:25', 'BLIP1004@9:31']);
});

test('the escapes language.md lists decode as in JSON, \\/ to /', () => {
  const src = withGeneration('prompt: "either\\/or \\"q\\" \\\\ \\n\\r\\t \\u00e9 \\uD83D\\uDE00"');
  const { program, diagnostics } = load({ 'main.blip': src });
  assert.deepEqual(diagnostics, []);
  assert.equal(program!.models[0]!.generation!.prompt, 'either/or "q" \\ \n\r\t \u00e9 \u{1F600}');
});

test('a byte-order mark is skipped as the first character only; elsewhere it is BLIP1001', () => {
  assert.deepEqual(codes('\ufeff' + BLIP2), []);
  const ds = check(edit('  input prompt', '  \ufeffinput prompt'));
  assert.deepEqual(ds.map((d) => `${d.code}@${d.line}:${d.column}`), ['BLIP1001@3:3']);
  assert.match(ds[0]!.message, /byte-order mark U\+FEFF/);
});

test('a number running into a letter of any script is one malformed number', () => {
  const ds = check(withGeneration('max_new_tokens: 12é'));
  assert.deepEqual(ds.map((d) => d.code), ['BLIP1006']);
  assert.match(ds[0]!.message, /malformed number '12é'/);
});
