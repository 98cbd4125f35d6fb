// The grammar's three descriptions agree: the EBNF in grammar/grammar.md, the production comments
// above each rule in grammar/parser.ts, and the generated CST types and syntax diagrams.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { cstDts, diagramsHtml } from '../../../grammar/generate.js';

const norm = (s: string): string => s.replace(/\s+/g, ' ').trim();

test('every production in grammar.md is the comment above its rule in parser.ts, and vice versa', () => {
  const md = readFileSync('grammar/grammar.md', 'utf8');
  const ebnf = /```ebnf\n([^]*?)```/.exec(md)![1];
  const fromMd = ebnf.split(';').map(norm).filter(Boolean);
  const src = readFileSync('grammar/parser.ts', 'utf8').split('\n');
  const fromParser: string[] = [];
  src.forEach((line, i) => {
    if (!/= this\.RULE\(/.test(line)) return;
    const comment: string[] = [];
    for (let j = i - 1; j >= 0 && /^\s*\/\/ /.test(src[j]); j--) comment.unshift(src[j].replace(/^\s*\/\/ /, ''));
    fromParser.push(norm(comment.join(' ').split(';')[0]));
  });
  assert.deepEqual([...fromParser].sort(), [...fromMd].sort());
});

test('grammar/cst.generated.d.ts and grammar/diagrams.html are up to date (node --import tsx grammar/generate.ts)', () => {
  assert.equal(readFileSync('grammar/cst.generated.d.ts', 'utf8'), cstDts());
  assert.equal(readFileSync('grammar/diagrams.html', 'utf8'), diagramsHtml());
});

test('grammar/diagrams.html is self-contained: it loads no script or style from the network', () => {
  const html = readFileSync('grammar/diagrams.html', 'utf8');
  assert.doesNotMatch(html, /<(script|link)[^>]*(src|href)=/i);
  assert.match(html, /serializedGrammar/);
});

test('docs/language.md carries the same EBNF', () => {
  const lang = readFileSync('docs/language.md', 'utf8');
  const md = readFileSync('grammar/grammar.md', 'utf8');
  assert.equal(norm(/```ebnf\n([^]*?)```/.exec(lang)![1]), norm(/```ebnf\n([^]*?)```/.exec(md)![1]));
});

/** An attribute schema's type column in docs/language.md's table (src/nodes/schema.ts's int, num, eps, bool, oneOf). */
interface AttrSchema {
  description: string;
  type?: string;
  enum?: string[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
}
function typeColumn(s: AttrSchema): string {
  if (s.enum) return s.enum.join(' \\| ');
  if (s.type === 'integer') return `int ${s.minimum}..${s.maximum}`;
  if (s.type === 'boolean') return 'bool';
  if (s.type === 'number') return s.exclusiveMinimum !== undefined ? `number > ${s.exclusiveMinimum}, <= ${s.maximum}` : `number >= ${s.minimum}, <= ${s.maximum}`;
  return JSON.stringify(s);
}

test('docs/language.md lists every node kind with its ports and attributes, each attribute with its schema range and description', async () => {
  const { nodeKinds } = await import('../../../src/nodes/index.js');
  const lang = readFileSync('docs/language.md', 'utf8');
  for (const kind of Object.values(nodeKinds)) {
    const section = lang.split(`### \`${kind.kind}\``)[1]?.split('\n### ')[0];
    assert.ok(section, `no section for ${kind.kind}`);
    for (const [attr, schema] of Object.entries(kind.attrSchema.properties as Record<string, AttrSchema>)) {
      const row = section.split('\n').find((l) => l.startsWith(`| \`${attr}\` |`));
      assert.equal(row, `| \`${attr}\` | ${typeColumn(schema)} | ${schema.description} |`, `${kind.kind}.${attr}`);
    }
    for (const port of kind.ports) assert.ok(section.includes(port.name ? `| \`${port.name}:\` |` : '| (positional) |'), `${kind.kind} port ${port.name}`);
  }
});
