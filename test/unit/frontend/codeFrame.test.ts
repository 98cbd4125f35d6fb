// The caret line under a code frame is padded by terminal display width (review finding 20):
// emoji and wide CJK characters take two cells; the reported column still counts code points.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SourceFile } from '../../../src/diagnostics/SourceFile.js';
import { codeFrame } from '../../../src/diagnostics/codeFrame.js';

const caretLine = (text: string, at: string, len = at.length): string => {
  const src = new SourceFile('a.blip', text);
  const start = text.indexOf(at);
  return codeFrame(src, start, start + len).split('\n').at(-1)!;
};

test('after an emoji the caret moves two cells, while the column counts one', () => {
  const text = 'model m { input 😀 }\n';
  assert.equal(caretLine(text, '}'), '    |                    ^');
  assert.equal(new SourceFile('a.blip', text).position(text.indexOf('}')).column, 19);
});

test('wide CJK characters take two cells each, under the caret too; a combining mark takes none', () => {
  assert.equal(caretLine('model 名前 { }\n', '名前'), '    |       ^~~~');
  assert.equal(caretLine('model 名前 { }\n', '{ }'), '    |            ^~~');
  assert.equal(caretLine('model e\u0301x { }\n', '{'), '    |          ^');
});
