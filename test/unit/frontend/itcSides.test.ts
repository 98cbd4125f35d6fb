// itc(image_embed, text_embed): the first argument from the image input alone, the second from the
// text input alone (BLIP2036). The refused graphs are a review's: each checked clean, compiled and
// scored, computing the wrong thing (2 images gave 1 embedding, text embedded against a blank image).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { load } from './harness.js';
import type { Diagnostic } from '../../../src/diagnostics/Diagnostic.js';

const at = (d: Diagnostic) => ({ code: d.code, file: d.loc.file, line: d.loc.line, column: d.loc.column, message: d.message, related: d.related?.map((r) => `${r.loc.file}:${r.loc.line}:${r.loc.column}`) });
/** `model` checked as review/main.blip beside the shipped graphs/ (imports "../graphs/…"). */
const checkEdit = (model: string) => {
  const files: Record<string, string> = { 'review/main.blip': model };
  for (const f of readdirSync('graphs').filter((f) => f.endsWith('.blip'))) files[`graphs/${f}`] = readFileSync(`graphs/${f}`, 'utf8');
  return load(files, 'review/main.blip').diagnostics.map(at);
};

test('itc() with its arguments swapped is refused at the call, saying which way round', () => {
  assert.deepEqual(checkEdit('import "../graphs/blip-itm.blip"\nmodel m extends blip_itm { override output itc: itc(text_proj, image_proj) }\n'), [
    {
      code: 'BLIP2036', file: 'review/main.blip', line: 2, column: 49, related: undefined,
      message: "itc() takes the image embedding first and the text embedding second (itc(image_embed, text_embed)): found 'text_proj' (from text input 'text') first and 'image_proj' (from image input 'image') second; write itc(image_proj, text_proj)",
    },
  ]);
});

test("a text side over the fused (cross-attending) encoder is refused at the override's edge, not at the inherited output", () => {
  assert.deepEqual(checkEdit('import "../graphs/blip-itm.blip"\nmodel m extends blip_itm { override node text_proj: embed(fused) @ "text_proj" { pool: cls } }\n'), [
    {
      code: 'BLIP2036', file: 'review/main.blip', line: 2, column: 59, related: ['graphs/blip-itm.blip:17:31'],
      message: "itc() expects its second argument to be the text embedding, computed from the text input alone: found 'text_proj' reads image input 'image' (text_proj ← fused ← vision ← image)",
    },
  ]);
});

test('an image embedding on both sides is refused at the second argument; one over the text alone at the first', () => {
  const both = checkEdit('import "../graphs/blip2-itm.blip"\nmodel m extends blip2_itm { override output itc: itc(image_proj, image_proj) }\n');
  assert.deepEqual(both.filter((d) => d.code === 'BLIP2036').map((d) => [d.line, d.column, d.message]), [
    [2, 66, "itc() expects its second argument to be the text embedding, computed from the text input alone: found 'image_proj' reads image input 'image' (image_proj ← queries ← vision ← image), and no text input"],
  ]);
  const texts = checkEdit('import "../graphs/blip-itm.blip"\nmodel m extends blip_itm { override output itc: itc(text_proj, text_proj) }\n');
  assert.deepEqual(texts.filter((d) => d.code === 'BLIP2036').map((d) => [d.line, d.column, d.message]), [
    [2, 53, "itc() expects its first argument to be the image embedding, computed from the image input alone: found 'text_proj' reads text input 'text' (text_proj ← unimodal ← text), and no image input"],
  ]);
});

test('the shipped retrieval graphs (BLIP, BLIP-2) and every shipped graph and example check without BLIP2036', () => {
  const files = [...readdirSync('graphs').map((f) => `graphs/${f}`), ...readdirSync('graphs/examples').map((f) => `graphs/examples/${f}`), ...readdirSync('graphs/pinned').map((f) => `graphs/pinned/${f}`)];
  for (const f of files.filter((f) => f.endsWith('.blip'))) {
    const r = load({ [f]: readFileSync(f, 'utf8'), ...Object.fromEntries(readdirSync('graphs').filter((g) => g.endsWith('.blip')).map((g) => [`graphs/${g}`, readFileSync(`graphs/${g}`, 'utf8')])) }, f);
    assert.deepEqual(r.diagnostics.map(at), [], f);
    assert.ok(r.program, f);
  }
});

test('a broken edge on the way (a misspelt source) is reported alone, not echoed as a side without its input', () => {
  const src = 'model r {\n  input image: image\n  input text: text\n  node vision: vit(image) @ "vision_model"\n  node fused: bert(txt, cross: vision) @ "text_encoder"\n  node image_proj: embed(vision) @ "vision_proj"\n  node text_proj: embed(fused) @ "text_proj"\n  output itc: itc(image_proj, text_proj)\n}\n';
  assert.deepEqual(load({ 'main.blip': src }).diagnostics.map((d) => d.code), ['BLIP2020']);
});
