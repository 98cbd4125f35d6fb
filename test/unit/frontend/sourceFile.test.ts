// Offsets to lines and columns: columns count code points (a caret after an emoji lines up), lines
// end at LF, CRLF or a lone CR; a line without astral characters maps offsets directly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SourceFile } from '../../../src/diagnostics/SourceFile.js';

test('SourceFile.position: lines and code-point columns, whatever the line endings', () => {
  const text = 'ab\r\ncd\ref\n\u{1F600}x\u{1F600}y\nz';
  const f = new SourceFile('t.blip', text);
  const at = (s: string, nth = 0) => {
    let i = -1;
    for (let k = 0; k <= nth; k++) i = text.indexOf(s, i + 1);
    return f.position(i);
  };
  assert.deepEqual(at('b'), { line: 1, column: 2 });
  assert.deepEqual(at('d'), { line: 2, column: 2 });
  assert.deepEqual(at('f'), { line: 3, column: 2 });
  assert.deepEqual(at('x'), { line: 4, column: 2 });
  assert.deepEqual(at('y'), { line: 4, column: 4 });
  assert.deepEqual(at('z'), { line: 5, column: 1 });
  assert.deepEqual(f.position(text.length + 10), { line: 5, column: 2 });
  // every offset of a long ASCII line, as a file with one problem per attribute asks
  const long = new SourceFile('l.blip', 'x'.repeat(200_000));
  for (let o = 0; o < 200_000; o += 997) assert.equal(long.position(o).column, o + 1);
});
