// Property test: the front end never throws, whatever the input. 2000 seeded inputs: random bytes,
// random token soup, and mutations of the shipped graph files. For each: parse and load return;
// every diagnostic has a registered code, a position inside its file and a one-line message that
// says what was expected; and any input that parses cleanly formats to a fixed point that keeps
// its tokens and comments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { CODES } from '../../../src/diagnostics/codes.js';
import { formatDiagnostics } from '../../../src/diagnostics/format.js';
import { BlipLexer } from '../../../grammar/tokens.js';
import { formatSource } from '../../../src/syntax/print.js';
import { parse } from '../../../src/syntax/parse.js';
import { load, BLIP2 } from './harness.js';
import { mulberry32 } from '../seededRandom.js';

// Paths are relative to the repository root (tests run there, from dist/ or from source).
const graphFiles: Record<string, string> = {};
for (const f of readdirSync('graphs')) if (f.endsWith('.blip')) graphFiles[f] = readFileSync(`graphs/${f}`, 'utf8');
for (const f of readdirSync('graphs/pinned')) graphFiles['pinned/' + f] = readFileSync(`graphs/pinned/${f}`, 'utf8');
const corpus = [BLIP2, ...Object.values(graphFiles)];

const PIECES = ['model', 'node', 'input', 'output', 'override', 'extends', 'import', 'frozen', 'preprocess', 'generation', 'true', 'vit', 'qformer',
  'opt', 'generate', '{', '}', '(', ')', '[', ']', ':', ',', '@', '"x"', '"', '\\', '/*', '*/', '//', '\n', '\r\n', ' ', '\t', '1', '-2', '1.5e3',
  '1e999', '99999999999999999999', 'é', '😀', '\u0000', '\u00a0', '\ufffd', '\ud800', 'a', '_'];

function generate(r: () => number, i: number): string {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  if (i % 5 === 0) {
    const bytes = new Uint8Array(Math.floor(r() * 120)).map(() => Math.floor(r() * 256));
    return new TextDecoder('utf-8').decode(bytes);
  }
  if (i % 5 === 1) return Array.from({ length: Math.floor(r() * 40) }, () => pick(PIECES)).join(r() < 0.5 ? ' ' : '');
  let s = pick(corpus);
  const edits = 1 + Math.floor(r() * 4);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(r() * (s.length + 1));
    const len = Math.floor(r() * 12);
    switch (Math.floor(r() * 5)) {
      case 0:
        s = s.slice(0, at) + s.slice(at + len);
        break;
      case 1:
        s = s.slice(0, at) + pick(PIECES) + s.slice(at);
        break;
      case 2:
        s = s.slice(0, at) + String.fromCharCode(Math.floor(r() * 0x3000)) + s.slice(at + 1);
        break;
      case 3:
        s = s.slice(0, at) + s.slice(at, at + len) + s.slice(at);
        break;
      default:
        s = s.slice(0, at);
    }
  }
  return s;
}

/** Tokens but commas, which are optional between attributes (fmt writes them in one-line blocks). */
const tokens = (text: string) => BlipLexer.tokenize(text).tokens.map((t) => t.image).filter((t) => t !== ',');
const comments = (text: string) => (BlipLexer.tokenize(text).groups.comments ?? []).map((t) => t.image.trimEnd());

test('2000 seeded inputs: no exception, well-formed diagnostics, stable formatting', () => {
  const r = mulberry32(20240611);
  let clean = 0;
  for (let i = 0; i < 2000; i++) {
    const text = generate(r, i);
    const ctx = `input ${i}: ${JSON.stringify(text.slice(0, 200))}`;
    parse(text, 'main.blip');
    // Imports resolve against the shipped graphs (pinned ones import "../x.blip").
    const files: Record<string, string> = { 'main.blip': text };
    for (const [k, v] of Object.entries(graphFiles)) files[k] = files['pinned/' + k] = v;
    const result = load(files);
    for (const d of result.diagnostics) {
      assert.ok(Object.hasOwn(CODES, d.code), `${ctx}: unknown code ${d.code}`);
      const len = result.sources.get(d.loc.file)?.length ?? 0;
      assert.ok(d.loc.line >= 1 && d.loc.column >= 1, `${ctx}: position ${d.loc.line}:${d.loc.column}`);
      assert.ok(0 <= d.loc.start && d.loc.start <= d.loc.end && d.loc.end <= len, `${ctx}: span ${d.loc.start}-${d.loc.end} of ${len}`);
      assert.ok(d.message.length > 0 && !/[\r\n]/.test(d.message), `${ctx}: message ${JSON.stringify(d.message)}`);
      assert.match(d.message, /expect/, `${ctx}: ${d.message}`);
    }
    formatDiagnostics(result.diagnostics, result.sources);
    const f = formatSource(text, 'main.blip');
    if (f.text === undefined) continue;
    clean++;
    const again = formatSource(f.text, 'main.blip');
    assert.equal(again.text, f.text, `${ctx}: fmt is not idempotent`);
    assert.deepEqual(tokens(f.text), tokens(text), `${ctx}: fmt changed the tokens`);
    assert.deepEqual(comments(f.text).sort(), comments(text).sort(), `${ctx}: fmt lost or changed a comment`);
  }
  assert.ok(clean > 100, `only ${clean} inputs parsed cleanly: the generator is too destructive to test fmt`);
});
