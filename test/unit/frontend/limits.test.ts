// Large and pathological inputs: a 1 MB file, a file over the size limit, a 200 KB line, lists
// and blocks nested or repeated tens of thousands of times. Each must give its diagnostic (or
// none) without throwing or exhausting the stack.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BLIP2, check, load, simple } from './harness.js';
import { parse } from '../../../src/syntax/parse.js';
import { MAX_FILE_CHARS } from '../../../src/syntax/fileChecks.js';
import { formatDiagnostics } from '../../../src/diagnostics/format.js';
import { loadProgram } from '../../../src/syntax/load.js';
import { existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('a 1 MB file of comments then a missing brace: one error on the right line', () => {
  const filler = '// ' + 'x'.repeat(96) + '\n';
  const lines = Math.ceil((1 << 20) / filler.length);
  const src = filler.repeat(lines) + BLIP2.trimEnd().slice(0, -1);
  assert.ok(src.length >= 1 << 20);
  assert.deepEqual(check(src), [
    {
      code: 'BLIP1010',
      line: lines + 8,
      column: 29,
      message: "expected a model member ('input', 'node', 'output', 'preprocess', 'generation') or '}', found end of file",
    },
  ]);
});

test('a 1 MB model: a chain of 20k nodes checks clean and keeps its order', () => {
  const n = 20_000;
  const body = ['model chain {', '  input image: image', '  input text: text', '  node n0: vit(image) @ "vision_model"'];
  for (let i = 1; i <= n; i++) body.push(`  node n${i}: linear(n${i - 1}) @ "projection_number_${i}"`);
  body.push(`  node fused: bert(text, cross: n${n}) @ "text_encoder"`, '  node head: classifier(fused) @ "itm_head"', '  output itm: itm(head)', '}', '');
  const src = body.join('\n');
  assert.ok(src.length >= 1 << 20);
  const r = load({ 'main.blip': src });
  assert.deepEqual(r.diagnostics.map(simple), []);
  const nodes = r.program!.models[0].nodes;
  assert.equal(nodes.length, n + 3);
  assert.deepEqual(nodes.slice(0, 3).map((x) => x.name), ['n0', 'n1', 'n2']);
  assert.equal(nodes[nodes.length - 1].name, 'head');
});

test('a 16k-node cycle is reported once, without exhausting the stack', () => {
  const n = 16_000;
  const body = ['model ring {', '  input image: image', '  node n0: vit(image) @ "p"'];
  // n1 reads n2, n2 reads n3, …, the last reads n1.
  for (let i = 1; i <= n; i++) body.push(`  node n${i}: linear(n${i === n ? 1 : i + 1}) @ "p"`);
  body.push('  node head: classifier(n1) @ "h"', '  output itm: itm(head)', '}');
  const codes = check(body.join('\n')).map((d) => d.code);
  assert.equal(codes.filter((c) => c === 'BLIP2027').length, 1);
});

test('a file over the size limit is refused with BLIP1015', () => {
  const src = ' '.repeat(MAX_FILE_CHARS + 1);
  assert.deepEqual(check(src), [{ code: 'BLIP1015', line: 1, column: 1, message: 'file too large: expected at most 8.0 MiB of text, found 8.0 MiB' }]);
});

test('100k nested list brackets: one BLIP1014, nothing else', () => {
  const src = BLIP2.replace('@ "qformer"', `@ "qformer" { x: ${'['.repeat(100_000)}${']'.repeat(100_000)} }`);
  const ds = check(src);
  assert.deepEqual(ds.map((d) => d.code), ['BLIP1014']);
  assert.equal(ds[0].line, 5);
});

test('100k unclosed braces: errors, no exception', () => {
  const r = parse('model m ' + '{'.repeat(100_000), 'x.blip');
  assert.ok(r.diagnostics.length >= 1);
  assert.equal(r.diagnostics[0].code, 'BLIP1010');
});

test('a 200 KB line: the error is found and its frame is cut around it', () => {
  const long = 'model m { generation { prompt: "' + 'a'.repeat(200_000) + '" max_new_tokens: ] } }';
  const r = load({ 'main.blip': long });
  const d = r.diagnostics[0];
  assert.equal(d.code, 'BLIP1011');
  assert.equal(d.loc.column, 200_051);
  const frame = formatDiagnostics([d], r.sources);
  for (const line of frame.split('\n').slice(1)) assert.ok(line.length <= 140, `frame line of ${line.length} chars`);
  assert.match(frame, /\n {2}1 \| …a+" max_new_tokens: \] \} \}\n {4}\| +\^\n/);
});

test('a file far over the size limit is refused by its size before it is read; a device or pipe is read no further than the limit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'limits-'));
  try {
    const huge = join(dir, 'huge.blip');
    writeFileSync(huge, '');
    truncateSync(huge, 600 * 1024 * 1024); // sparse: no disk, and no read
    const r = loadProgram(huge);
    assert.deepEqual(r.diagnostics.map((d) => [d.code, d.message]), [['BLIP1015', 'file too large: expected at most 8.0 MiB of text, found 600.0 MiB']]);
    if (existsSync('/dev/zero')) {
      const z = loadProgram('/dev/zero');
      assert.deepEqual(z.diagnostics.map((d) => d.code), ['BLIP1015']);
      assert.match(z.diagnostics[0]!.message, /^file too large: expected at most 8\.0 MiB of text, found more than 24\.\d MiB$/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bytes that are not UTF-8 inside a comment or a string are BLIP1001 where they are (they were taken as U+FFFD)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'limits-'));
  try {
    const file = join(dir, 'latin1.blip');
    const text = `// caf\xe9\nmodel m {\n  input image: image\n  node v: vit(image) @ "vision_model"\n  node d: bert_decoder(v) @ "text_decoder"\n  output caption: generate(d)\n  generation { prompt: "caf\xe9" }\n}\n`;
    writeFileSync(file, Buffer.from(text, 'latin1'));
    const r = loadProgram(file);
    assert.deepEqual(
      r.diagnostics.map((d) => [d.code, d.loc.line, d.loc.column]),
      [
        ['BLIP1001', 1, 7],
        // (a lexical error stops no check: the unknown kind is reported too)
        ['BLIP2010', 5, 11],
        ['BLIP1001', 7, 28],
      ],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a list nested too deep and never closed: what follows it is still checked, not dropped to the end of the file', () => {
  const src = `model m {\n  input image: image\n  node v: vit(image) @ ${'['.repeat(40)}"x"\n  output o: generate(v)\n}\nmodel n { node q: qformr(image) @ "q" output o: generate(q) }\n`;
  const codes = check(src).map((d) => `${d.code}@${d.line}`);
  assert.ok(codes.includes('BLIP1014@3'), codes.join(' '));
  assert.ok(codes.includes('BLIP2010@6'), codes.join(' '));
});
