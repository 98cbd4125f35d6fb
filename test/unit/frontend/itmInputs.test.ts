// An itm() output's classifier depends on both the image and the text input (BLIP2042). The
// refused graphs are a review's: blip_itm with the fused BERT's cross: vision forgotten checked
// clean, compiled and scored ITM 0.4198 for two different images; the ITM head over BLIP-2's
// image-only queries was an unused-node warning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { load } from './harness.js';
import type { Diagnostic } from '../../../src/diagnostics/Diagnostic.js';

const at = (d: Diagnostic) => ({ code: d.code, file: d.loc.file, line: d.loc.line, column: d.loc.column, message: d.message, related: d.related?.map((r) => `${r.loc.file}:${r.loc.line}:${r.loc.column}`) });
const shipped = () => ({
  ...Object.fromEntries(readdirSync('graphs').filter((f) => f.endsWith('.blip')).map((f) => [`graphs/${f}`, readFileSync(`graphs/${f}`, 'utf8')])),
  ...Object.fromEntries(readdirSync('graphs/examples').filter((f) => f.endsWith('.blip')).map((f) => [`graphs/examples/${f}`, readFileSync(`graphs/examples/${f}`, 'utf8')])),
});
/** `model` checked as review/main.blip beside the shipped graphs/ (imports "../graphs/…"). */
const checkEdit = (model: string) => load({ 'review/main.blip': model, ...shipped() }, 'review/main.blip').diagnostics.map(at);
const unscored = (missing: string, found: string) =>
  `classifier 'itm_head' (itm() output 'itm') does not depend on the ${missing}: expected image input 'image' and text input 'text' to reach it (itm() scores whether the text matches the image: a text encoder cross-attending to the image, or a Q-Former reading the text beside its queries), found it reads ${found} only`;

test("BLIP's fused text encoder without cross: vision is refused at the override that cut the image off", () => {
  assert.deepEqual(checkEdit('import "../graphs/blip-itm.blip"\nmodel m extends blip_itm {\n  override node fused: bert(text) @ "text_encoder" { config: "text_config" }\n}\n'), [
    { code: 'BLIP2042', file: 'review/main.blip', line: 3, column: 24, related: undefined, message: unscored('image', "text input 'text'") },
  ]);
});

test('an ITM head over the image alone (BLIP-2 queries, BLIP ViT) is refused at its inputs, the unread text features related', () => {
  assert.deepEqual(checkEdit('import "../graphs/blip2-itm.blip"\nmodel m extends blip2_itm {\n  override node itm_head: classifier(queries) @ "itm_head" { pool: mean_queries }\n}\n'), [
    { code: 'BLIP2042', file: 'review/main.blip', line: 3, column: 27, related: ['graphs/blip2-itm.blip:8:8'], message: unscored('text', "image input 'image'") },
  ]);
  assert.deepEqual(checkEdit('import "../graphs/blip-itm.blip"\nmodel m extends blip_itm {\n  override node itm_head: classifier(vision) @ "itm_head" { pool: cls }\n}\n'), [
    { code: 'BLIP2042', file: 'review/main.blip', line: 3, column: 27, related: ['graphs/blip-itm.blip:8:8'], message: unscored('text', "image input 'image'") },
  ]);
});

test('a model without a text input says so', () => {
  const src = 'model m {\n  input image: image\n  node vision: vit(image) @ "vision_model"\n  node itm_head: classifier(vision) @ "itm_head"\n  output itm: itm(itm_head)\n}\n';
  assert.deepEqual(load({ 'main.blip': src }).diagnostics.map(at).map((d) => [d.code, d.line, d.column, d.message]), [
    ['BLIP2042', 4, 18, "classifier 'itm_head' (itm() output 'itm') does not depend on the text: expected image input 'image' and a text input to reach it (itm() scores whether the text matches the image: a text encoder cross-attending to the image, or a Q-Former reading the text beside its queries), found it reads image input 'image' only, and model 'm' declares no text input"],
  ]);
});

test('every shipped graph, example and pinned graph checks without BLIP2042', () => {
  const files = [...readdirSync('graphs').map((f) => `graphs/${f}`), ...readdirSync('graphs/examples').map((f) => `graphs/examples/${f}`), ...readdirSync('graphs/pinned').map((f) => `graphs/pinned/${f}`)];
  for (const f of files.filter((f) => f.endsWith('.blip'))) {
    const r = load({ [f]: readFileSync(f, 'utf8'), ...shipped() }, f);
    assert.deepEqual(r.diagnostics.map(at), [], f);
  }
});
