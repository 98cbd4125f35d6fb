// A Q-Former's text: port is BLIP-2 retrieval's: refused beside instruction: and in a graph whose
// Q-Former feeds generate() (BLIP2038). The refused graphs are a review's: each checked clean and
// compiled, then failed at run ("BLIP5043: encode.onnx failed (input 'input_ids' is missing in
// 'feeds'.)") or, with InstructBLIP-T5, ran with the T5 tokenizer's ids in the Q-Former.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { load } from './harness.js';
import type { Diagnostic } from '../../../src/diagnostics/Diagnostic.js';

const at = (d: Diagnostic) => ({ code: d.code, file: d.loc.file, line: d.loc.line, column: d.loc.column, message: d.message, related: d.related?.map((r) => `${r.loc.file}:${r.loc.line}:${r.loc.column}`) });
const shipped = () => Object.fromEntries(readdirSync('graphs').filter((f) => f.endsWith('.blip')).map((f) => [`graphs/${f}`, readFileSync(`graphs/${f}`, 'utf8')]));
/** `model` checked as review/main.blip beside the shipped graphs/ (imports "../graphs/…"). */
const checkEdit = (model: string) => load({ 'review/main.blip': model, ...shipped() }, 'review/main.blip').diagnostics.map(at);

const TEXT_PORT = "qformer 'qformer' reads text: prompt and feeds generate() output 'text': expected 'instruction: prompt', the port a generating Q-Former reads text through (InstructBLIP), found text:, BLIP-2 retrieval's port for itm() and itc()";

test('a Q-Former reading both text: and instruction: is refused at the text: input', () => {
  assert.deepEqual(checkEdit('import "../graphs/instructblip-vicuna.blip"\nmodel q extends instructblip_vicuna {\n  override node qformer: qformer(vision, text: prompt, instruction: prompt) @ "qformer" { config: "qformer_config" }\n}\n'), [
    {
      code: 'BLIP2038', file: 'review/main.blip', line: 3, column: 42, related: ['review/main.blip:3:56'],
      message: "qformer 'qformer' reads both text: prompt and instruction: prompt: expected one, instruction: for InstructBLIP's instruction beside the queries or text: for BLIP-2 retrieval's text",
    },
  ]);
});

test('text: where instruction: was meant, in InstructBLIP-Vicuna and -T5 and in BLIP-2 OPT, is refused at the text: input', () => {
  for (const [file, base] of [['instructblip-vicuna', 'instructblip_vicuna'], ['instructblip-t5', 'instructblip_t5'], ['blip2-opt', 'blip2_opt']])
    assert.deepEqual(checkEdit(`import "../graphs/${file}.blip"\nmodel q extends ${base} {\n  override node qformer: qformer(vision, text: prompt) @ "qformer" { config: "qformer_config" }\n}\n`), [
      { code: 'BLIP2038', file: 'review/main.blip', line: 3, column: 42, related: undefined, message: TEXT_PORT },
    ], file);
});

test("BLIP-2 retrieval's text: passes (fused ITM, text-only ITC) and InstructBLIP's instruction: stay clean", () => {
  for (const f of ['graphs/blip2-itm.blip', 'graphs/instructblip-vicuna.blip', 'graphs/instructblip-t5.blip']) {
    const r = load({ ...shipped() }, f);
    assert.deepEqual(r.diagnostics.map(at), [], f);
  }
});

test('every shipped graph, example and pinned graph checks without BLIP2038', () => {
  const files = [...readdirSync('graphs').map((f) => `graphs/${f}`), ...readdirSync('graphs/examples').map((f) => `graphs/examples/${f}`), ...readdirSync('graphs/pinned').map((f) => `graphs/pinned/${f}`)];
  for (const f of files.filter((f) => f.endsWith('.blip'))) {
    const r = load({ [f]: readFileSync(f, 'utf8'), ...shipped() }, f);
    assert.deepEqual(r.diagnostics.map(at), [], f);
  }
});
