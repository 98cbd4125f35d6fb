// runtime/generation/pythonSpace.ts: the white space of Python's str.strip(), which generated texts
// get (transformers' examples strip batch_decode's output). Python's str.isspace() holds for
// exactly these 29 code points (none beyond U+FFFF); JavaScript's trim() differs on U+001C–U+001F
// and U+0085 (kept) and U+FEFF (stripped).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isPythonSpace, pyLstrip, pyRstrip, pyStrip } from '../../../runtime/generation/pythonSpace.js';

const PYTHON_SPACE = [0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000];

test('isPythonSpace is str.isspace() over every code point', () => {
  const want = new Set(PYTHON_SPACE);
  for (let cp = 0; cp <= 0x10ffff; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    assert.equal(isPythonSpace(String.fromCodePoint(cp)), want.has(cp), `U+${cp.toString(16)}`);
  }
});

test('pyStrip / pyLstrip / pyRstrip strip what Python strips, where trim() differs', () => {
  assert.equal(pyStrip('\x1f a photo \x85'), 'a photo');
  assert.equal(pyStrip('\ufeffa photo\ufeff'), '\ufeffa photo\ufeff');
  assert.equal(pyLstrip(' \n a b \n '), 'a b \n ');
  assert.equal(pyRstrip(' \n a b \n '), ' \n a b');
  assert.equal(pyStrip('   '), '');
  assert.equal(pyStrip(''), '');
});
