// A tokenizer.json whose post-processor template puts a special token after the sequence
// ([<s>, A, </s>], [A, </s>]): the token goes at the end, as transformers 5.12.1 gives it. The variants
// are fixture tokenizers with the template replaced, rebuilt here as test/oracle/template_suffix.py
// built them for transformers (test/fixtures/tokenizers/template-suffix.json).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer } from '../../../runtime/tokenizers/index.js';
import { fixturePath, readFixtureJson } from './fixtures.js';

type Json = Record<string, any>;
interface Variant {
  name: string;
  base: string;
  class: string;
  single: Json[];
  ids: number[][];
}
const fx = readFixtureJson<{ texts: string[]; variants: Variant[] }>('tokenizers', 'template-suffix.json');
const root = mkdtempSync(join(tmpdir(), 'blip-template-suffix-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** The base fixture tokenizer with its template's single form replaced (as the oracle script does). */
function build(v: Variant): string {
  const dir = join(root, v.name);
  cpSync(fixturePath('tokenizers', v.base), dir, { recursive: true });
  const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as Json;
  assert.equal(tj.post_processor.type, 'TemplateProcessing');
  tj.post_processor.single = v.single;
  const names = [...new Set(v.single.filter((x) => 'SpecialToken' in x).map((x) => x.SpecialToken.id as string))].sort();
  const idOf = (n: string) => (tj.added_tokens as Json[]).find((t) => t.content === n)!.id as number;
  tj.post_processor.special_tokens = Object.fromEntries(names.map((n) => [n, { id: n, ids: [idOf(n)], tokens: [n] }]));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tj));
  return dir;
}

test('the fixture covers a template ending in a special token, with one in front and without', () => {
  const shape = (v: Variant) => v.single.map((x) => ('Sequence' in x ? 'A' : x.SpecialToken.id)).join(' ');
  assert.deepEqual(fx.variants.map(shape), ['<s> A </s>', 'A </s>', '</s> A </s>']);
});

for (const v of fx.variants) {
  test(`${v.name} (${v.class}): the special tokens after the sequence come after it, as transformers' ids`, () => {
    const tok = loadTokenizer(build(v));
    assert.equal(tok.tokenizerClass, v.class);
    fx.texts.forEach((text, i) => assert.deepEqual(tok.encode(text), v.ids[i], `${v.name} ${JSON.stringify(text)}`));
  });
}
