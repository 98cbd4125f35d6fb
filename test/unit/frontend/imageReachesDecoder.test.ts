// A generate() output's decoder depends on the image input (BLIP2039): blip-graph models are
// vision-language. The refused graphs are a review's: each checked clean, then blip compile died
// with "internal error: Error: the manifest would not validate: /graphs/encode/outputs: must NOT
// have fewer than 1 items" and a stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { BLIP2, edit, load } from './harness.js';
import type { Diagnostic } from '../../../src/diagnostics/Diagnostic.js';

const at = (d: Diagnostic) => ({ code: d.code, file: d.loc.file, line: d.loc.line, column: d.loc.column, message: d.message, related: d.related?.map((r) => `${r.loc.file}:${r.loc.line}:${r.loc.column}`) });
const shipped = () => ({
  ...Object.fromEntries(readdirSync('graphs').filter((f) => f.endsWith('.blip')).map((f) => [`graphs/${f}`, readFileSync(`graphs/${f}`, 'utf8')])),
  ...Object.fromEntries(readdirSync('graphs/examples').filter((f) => f.endsWith('.blip')).map((f) => [`graphs/examples/${f}`, readFileSync(`graphs/examples/${f}`, 'utf8')])),
});
/** `model` checked as review/main.blip beside the shipped graphs/ (imports "../graphs/…"). */
const checkEdit = (model: string) => load({ 'review/main.blip': model, ...shipped() }, 'review/main.blip').diagnostics.map(at);
const unreached = (kind: string, name: string, output: string, port: string, found = "it reads text input 'prompt' only") =>
  `${kind} '${name}' (generate() output '${output}') does not depend on the image: expected image input 'image' to reach it through ${port} (blip-graph models are vision-language: the image enters as a prefix, encoder input or cross-attention), found ${found}`;

test('an LLM reading the prompt alone, the projected queries left unread, is refused at its inputs', () => {
  const src = edit('opt(prefix: projection, text: prompt)', 'opt(text: prompt)');
  assert.deepEqual(load({ 'main.blip': src }).diagnostics.map(at), [
    { code: 'BLIP2039', file: 'main.blip', line: 7, column: 13, related: ['main.blip:6:8'], message: unreached('opt', 'llm', 'text', 'prefix:') },
  ]);
  // no image input at all
  const none = 'model m {\n  input prompt: text\n  node llm: opt(text: prompt) frozen @ "language_model"\n  output text: generate(llm)\n}\n';
  assert.deepEqual(load({ 'main.blip': none }).diagnostics.map(at).map((d) => [d.code, d.line, d.column, d.message]), [
    ['BLIP2039', 3, 13, "opt 'llm' (generate() output 'text') does not depend on the image: expected an image input to reach it through prefix: (blip-graph models are vision-language: the image enters as a prefix, encoder input or cross-attention), found it reads text input 'prompt' only, and model 'm' declares no image input"],
  ]);
});

test('an override that cuts the image off (LLaMA, the caption decoder) is refused at the override, the unread image features related', () => {
  assert.deepEqual(checkEdit('import "../graphs/examples/blip2-llama.blip"\nmodel m extends blip2_llama {\n  override node llm: llama(text: prompt) frozen @ "language_model" { config: "text_config" }\n}\n'), [
    { code: 'BLIP2039', file: 'review/main.blip', line: 3, column: 22, related: ['graphs/blip2-opt.blip:9:8'], message: unreached('llama', 'llm', 'text', 'prefix:') },
  ]);
  assert.deepEqual(checkEdit('import "../graphs/blip-caption.blip"\nmodel m extends blip_caption {\n  override node decoder: bert(prompt) @ "text_decoder" { config: "text_config", causal: true }\n}\n'), [
    { code: 'BLIP2039', file: 'review/main.blip', line: 3, column: 26, related: ['graphs/blip-caption.blip:8:8'], message: unreached('bert', 'decoder', 'caption', 'cross:') },
  ]);
  // the decoder inherited, the Q-Former overridden to read the instruction alone: at the Q-Former
  assert.deepEqual(checkEdit('import "../graphs/instructblip-vicuna.blip"\nmodel m extends instructblip_vicuna {\n  override node qformer: qformer(instruction: prompt) @ "qformer" { config: "qformer_config" }\n}\n'), [
    { code: 'BLIP2039', file: 'review/main.blip', line: 3, column: 26, related: ['graphs/blip2-opt.blip:7:8'], message: unreached('llama', 'llm', 'text', 'prefix:') },
  ]);
});

test('decoders that see the image only through an encoder (VQA) or without a prompt stay clean', () => {
  // VQA: the answer decoder cross-attends to the question encoder, which cross-attends to the image
  assert.deepEqual(load(shipped(), 'graphs/blip-vqa.blip').diagnostics.map(at), []);
  assert.deepEqual(load({ 'main.blip': edit(', text: prompt)', ')', edit('  input prompt: text\n', '')) }).diagnostics.map(at), []);
});

test('every shipped graph, example and pinned graph checks without BLIP2039', () => {
  const files = [...readdirSync('graphs').map((f) => `graphs/${f}`), ...readdirSync('graphs/examples').map((f) => `graphs/examples/${f}`), ...readdirSync('graphs/pinned').map((f) => `graphs/pinned/${f}`)];
  for (const f of files.filter((f) => f.endsWith('.blip'))) {
    const r = load({ [f]: readFileSync(f, 'utf8'), ...shipped() }, f);
    assert.deepEqual(r.diagnostics.map(at), [], f);
  }
});
