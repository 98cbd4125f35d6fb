// How diagnostics print: `path:line:col - severity CODE: message`, a code frame with a caret
// under the span, related locations, the summary line, the cap on how many print, and --json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CODES } from '../../../src/diagnostics/codes.js';
import { diagnosticsToJson, formatDiagnostics } from '../../../src/diagnostics/format.js';
import { tidyMessage } from '../../../src/diagnostics/Diagnostic.js';
import { nodeKinds } from '../../../src/nodes/index.js';
import { BLIP2, edit, load } from './harness.js';

/** BLIP2010 lists the registered kinds, in the registry's order (a kind added is listed). */
const KINDS = Object.keys(nodeKinds).join(', ');

test('an error prints with its location, code, message and a caret frame', () => {
  const r = load({ 'main.blip': edit('qformer(vision)', 'qformr(vision)') });
  assert.equal(
    formatDiagnostics(r.diagnostics, r.sources),
    `main.blip:5:17 - error BLIP2010: unknown node kind 'qformr': expected one of ${KINDS}; did you mean 'qformer'?

  4 |   node vision: vit(image) frozen @ "vision_model"
  5 |   node qformer: qformr(vision) @ "qformer"
    |                 ^~~~~~
`,
  );
});

test('related locations print under the error, each with its own frame', () => {
  const r = load({ 'main.blip': edit('  output', '  node llm: opt(prefix: projection) @ "language_model"\n  output') });
  assert.equal(
    formatDiagnostics(r.diagnostics, r.sources),
    `main.blip:8:8 - error BLIP2005: duplicate name 'llm': expected each input and node name once in model 'm', found it declared again

  7 |   node llm: opt(prefix: projection, text: prompt) frozen @ "language_model"
  8 |   node llm: opt(prefix: projection) @ "language_model"
    |        ^~~

  main.blip:7:8: 'llm' is first declared here
    6 |   node projection: linear(qformer) @ "language_projection"
    7 |   node llm: opt(prefix: projection, text: prompt) frozen @ "language_model"
      |        ^~~
`,
  );
});

test('several diagnostics: sorted by position, then a count; warnings say so', () => {
  const src = edit('qformer(vision)', 'qformr(vision)', edit('input prompt: text', 'input prompt: txt'));
  const r = load({ 'main.blip': src });
  const text = formatDiagnostics(r.diagnostics, r.sources);
  assert.match(text, /^main\.blip:3:17 - error BLIP2011: [^]*\nmain\.blip:5:17 - error BLIP2010: /);
  assert.match(text, /\n\n2 errors\n$/);
  const warn = load({ 'main.blip': edit('  output', '  node extra: linear(qformer) @ "extra"\n  output') });
  assert.match(formatDiagnostics(warn.diagnostics, warn.sources), /^main\.blip:8:8 - warning BLIP2030: unused node 'extra'/);
});

test('at most N diagnostics print, then how many more', () => {
  const src = 'model m {\n' + Array.from({ length: 30 }, (_, i) => `  input x${i}: nothing\n`).join('') + '}\n';
  const r = load({ 'main.blip': src });
  const text = formatDiagnostics(r.diagnostics, r.sources, { max: 3 });
  assert.equal(text.match(/ - error BLIP/g)!.length, 3);
  assert.match(text, /… and 28 more \(31 errors in all\)\n$/);
});

test('a multi-line span shows its first and last lines; tabs keep the caret aligned', () => {
  const r = load({ 'main.blip': 'model m {\n\tinput x: image\n\tnode v: vit(x) @ "v" {\n\t\twidth: [\n1,\n2,\n3,\n4,\n5]\n\t}\n\toutput o: generate(v)\n}\n' });
  const text = formatDiagnostics(r.diagnostics.filter((d) => d.code === 'BLIP3002'), r.sources);
  assert.equal(
    text,
    `main.blip:4:10 - error BLIP3002: attribute 'width' of vit 'v' expects an integer, found a list of 5 items

  3 |  node v: vit(x) @ "v" {
  4 |   width: [
    |          ^
  5 | 1,
    | ~~
  . |
  8 | 4,
    | ~~
  9 | 5]
    | ~~
`,
  );
});

test('--json: positions 1-based, end exclusive, related kept', () => {
  const r = load({ 'main.blip': edit('  output', '  node llm: opt(prefix: projection) @ "language_model"\n  output') });
  assert.deepEqual(diagnosticsToJson(r.diagnostics, r.sources), [
    {
      code: 'BLIP2005',
      severity: 'error',
      message: "duplicate name 'llm': expected each input and node name once in model 'm', found it declared again",
      file: 'main.blip',
      line: 8,
      column: 8,
      endLine: 8,
      endColumn: 11,
      related: [{ message: "'llm' is first declared here", file: 'main.blip', line: 7, column: 8 }],
    },
  ]);
});

test('a clean file prints nothing', () => {
  const r = load({ 'main.blip': BLIP2 });
  assert.equal(formatDiagnostics(r.diagnostics, r.sources), '');
});

test('docs/diagnostics.md has an entry for every code, and no entry for a code that does not exist', () => {
  const doc = readFileSync('docs/diagnostics.md', 'utf8');
  const documented = new Set([...doc.matchAll(/^### (BLIP\d{4})/gm)].map((m) => m[1]));
  const frontEnd = Object.keys(CODES);
  assert.deepEqual(frontEnd.filter((c) => !documented.has(c)), []);
  assert.deepEqual([...documented].filter((c) => c < 'BLIP4' && !frontEnd.includes(c)), []);
  // the compiler's and the runtime's codes are string literals where they are raised
  const raised = new Set<string>();
  for (const dir of ['src', 'runtime']) {
    for (const f of readdirSync(dir, { recursive: true }) as string[]) {
      if (f.endsWith('.ts')) for (const m of readFileSync(join(dir, f), 'utf8').matchAll(/['"`](BLIP\d{4})\b/g)) raised.add(m[1]!);
    }
  }
  assert.ok(raised.has('BLIP5901') && raised.has('BLIP4011'), [...raised].join(' '));
  assert.deepEqual([...raised].filter((c) => !documented.has(c)).sort(), []);
  assert.deepEqual([...documented].filter((c) => c >= 'BLIP4' && !raised.has(c)).sort(), []);
});

test("docs/language.md's error-code table has a row for every front-end code, titled as in codes.ts, and none other", () => {
  const lang = readFileSync('docs/language.md', 'utf8');
  const rows = new Map([...lang.matchAll(/^\| \[(BLIP\d{4})\]\(diagnostics\.md#blip\d{4}\) \| ([^|]+) \|/gm)].map((m) => [m[1]!, m[2]!.trim()]));
  const frontEnd = Object.entries(CODES).filter(([c]) => c < 'BLIP4');
  assert.deepEqual(
    frontEnd.filter(([c, info]) => rows.get(c) !== info.title + (info.severity === 'warning' ? ' (warning)' : '')).map(([c]) => c),
    [],
  );
  assert.deepEqual([...rows.keys()].filter((c) => !(c in CODES)), []);
});

test('messages: a quoted name of over 80 characters is cut to 40, control characters are escaped, the rest is as written', () => {
  const long = 'v'.repeat(5000);
  assert.equal(tidyMessage(`unknown node kind '${long}': expected one of vit, bert`), `unknown node kind '${'v'.repeat(40)}…': expected one of vit, bert`);
  assert.equal(tidyMessage('unknown input "q\x01former"'), 'unknown input "q\\x01former"');
  const plain = `unknown node kind 'qformr': expected one of ${KINDS}; did you mean 'qformer'?`;
  assert.equal(tidyMessage(plain), plain);
  const path = `/home/me/.cache/huggingface/hub/models--Salesforce--blip2-opt-2.7b/snapshots/${'0'.repeat(40)}/model.blip`;
  assert.equal(tidyMessage(`cannot read file '${path}': expected a readable .blip file`), `cannot read file '${path}': expected a readable .blip file`);
  const r = load({ 'main.blip': edit('qformer(vision)', `${long}(vision)`) });
  assert.ok(r.diagnostics.every((d) => d.message.length < 300), r.diagnostics.map((d) => d.message.length).join(' '));
});

test('suggestions among thousands of names: the first closest, cased as declared, from arrays and other iterables', async () => {
  const { closest } = await import('../../../src/diagnostics/suggest.js');
  const names = Array.from({ length: 3000 }, (_, i) => `a${i}`);
  assert.equal(closest('zz0', names), undefined);
  assert.equal(closest('a2999x', names), 'a2999');
  assert.equal(closest('A1234', names), 'a1234');
  assert.equal(closest('widht', new Set(['depth', 'Width', 'height'])), 'Width');
  assert.equal(closest('decodr', ['decoder', 'decoded']), 'decoder');
  names.push('zz0_');
  assert.equal(closest('zz0', names), 'zz0_');
});
