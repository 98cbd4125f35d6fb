// JSON files a user hands in (config.json, the safetensors index, tokenizer and processor files, a
// compiled model's manifest) that JSON.parse refuses are reported at a line and column with what
// was found there, on one line; files that cannot be read say why, naming the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonSyntaxProblem, readJsonFile } from '../../../src/jsonSyntax.js';

test('jsonSyntaxProblem: the first offending character, its line and column, and what it is', () => {
  const cases: Array<[string, string | undefined]> = [
    ['{"a": 1, "b": [true, false, null, -1.5e3, "x\\n\\u00e9"]}', undefined],
    ['{\n  "decoder": True,\n}', 'line 2, column 14: expected a value, found True (Python, not JSON: true)'],
    ['{"x": None}', 'line 1, column 7: expected a value, found None (Python, not JSON: null)'],
    ['{"eps": NaN}', 'line 1, column 9: expected a value, found NaN, which JSON has no way to write'],
    ['\ufeff{}', 'line 1, column 1: expected a value, found a byte-order mark (save the file as UTF-8 without one)'],
    ['{\n  "a": 1,\n}', "line 3, column 1: a comma before '}' (JSON has no trailing commas)"],
    ['[1, 2,]', "line 1, column 7: a comma before ']' (JSON has no trailing commas)"],
    ["{'a': 1}", 'line 1, column 2: expected a double-quoted property name, found a single quote (JSON strings take double quotes)'],
    ['{"a" 1}', "line 1, column 6: expected ':', found '1'"],
    ['{"a": 1 "b": 2}', "line 1, column 9: expected ',' or '}', found '\"'"],
    ['{"a": "é\\q"}', "line 1, column 10: '\\q' is not a JSON escape"],
    ['{"a": "x', 'line 1, column 9: the string is not closed before the text ends'],
    ['{"a": 1', "line 1, column 8: expected ',' or '}', found the text ends"],
    ['', 'line 1, column 1: expected a value, found the text ends'],
    ['{} {}', "line 1, column 4: expected the end of the text after the value, found '{'"],
    ['{"a": 01}', "line 1, column 8: expected ',' or '}', found '1'"],
    ['\x1b{}', 'line 1, column 1: expected a value, found control character U+001B'],
    [`{"a": ${'1'.repeat(500)} x}`, `line 1, column ${8 + 500}: expected ',' or '}', found 'x'`],
  ];
  for (const [text, want] of cases) {
    assert.equal(jsonSyntaxProblem(text), want, text);
    if (want === undefined) assert.doesNotThrow(() => JSON.parse(text));
    else assert.throws(() => JSON.parse(text));
  }
});

test('readJsonFile: a folder or an unreadable file says so; bad JSON gives the place, one line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'json-'));
  try {
    mkdirSync(join(dir, 'config.json'));
    assert.equal(readJsonFile(join(dir, 'config.json')).problem, 'cannot be read: is a folder (EISDIR)');
    assert.equal(readJsonFile(join(dir, 'missing.json')).problem, 'cannot be read: no such file or folder (ENOENT)');
    writeFileSync(join(dir, 'bad.json'), '{\n  "architectures": ["BlipForConditionalGeneration"],\n  "tie": True\n}\n');
    assert.equal(readJsonFile(join(dir, 'bad.json')).problem, 'is not valid JSON (line 3, column 10: expected a value, found True (Python, not JSON: true))');
    writeFileSync(join(dir, 'ok.json'), '{"a": [1]}');
    assert.deepEqual(readJsonFile(join(dir, 'ok.json')).value, { a: [1] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
