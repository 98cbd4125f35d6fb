// The shipped graphs: every file in graphs/ and graphs/pinned/ checks clean (no errors, no
// warnings), is already in canonical layout, and lowers to the IR the compiler expects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { loadProgram } from '../../../src/syntax/load.js';
import { formatSource } from '../../../src/syntax/print.js';
import { formatDiagnostics } from '../../../src/diagnostics/format.js';
import type { IrModel } from '../../../src/ir/types.js';
import { load, simple } from './harness.js';

const files = [
  ...readdirSync('graphs').filter((f) => f.endsWith('.blip')).map((f) => `graphs/${f}`),
  ...readdirSync('graphs/pinned').filter((f) => f.endsWith('.blip')).map((f) => `graphs/pinned/${f}`),
].sort();

const model = (file: string): IrModel => {
  const r = loadProgram(file);
  assert.ok(r.program, formatDiagnostics(r.diagnostics, r.sources));
  return r.program.models[0];
};

test('the issue\'s graph files and pinned checkpoints are all there', () => {
  const expected = ['blip-caption', 'blip-vqa', 'blip-itm', 'blip2-opt', 'blip2-t5', 'blip2-itm', 'instructblip-vicuna', 'instructblip-t5'].map((f) => `graphs/${f}.blip`);
  const pinned = ['blip-image-captioning-base', 'blip-vqa-base', 'blip-itm-base-coco', 'blip2-opt-2.7b', 'blip2-opt-6.7b', 'blip2-flan-t5-xl', 'blip2-flan-t5-xxl',
    'instructblip-vicuna-7b', 'instructblip-vicuna-13b', 'instructblip-flan-t5-xl', 'instructblip-flan-t5-xxl'].map((f) => `graphs/pinned/${f}.blip`);
  for (const f of [...expected, ...pinned]) assert.ok(files.includes(f), `missing ${f}`);
});

for (const file of files) {
  test(`${file} checks clean`, () => {
    const r = loadProgram(file);
    assert.equal(formatDiagnostics(r.diagnostics, r.sources), '');
    assert.ok(r.program && r.program.models.length === 1);
  });
  test(`${file} is in canonical layout`, () => {
    const text = readFileSync(file, 'utf8');
    assert.equal(formatSource(text, file).text, text);
  });
}

test('IR: nodes in topological order, edges, checkpoints and config sections', () => {
  for (const file of files) {
    const m = model(file);
    const seen = new Set(m.inputs.map((i) => i.name));
    for (const n of m.nodes) {
      for (const e of n.edges) assert.ok(seen.has(e.from), `${file}: ${n.name} reads ${e.from} before it is defined`);
      seen.add(n.name);
      assert.ok(n.checkpoint, `${file}: ${n.name} has no checkpoint`);
    }
  }
  const t5 = model('graphs/instructblip-t5.blip');
  assert.equal(t5.extends, 'blip2_t5');
  assert.deepEqual(
    t5.nodes.map((n) => [n.name, n.kind, n.checkpoint, n.config ?? null, n.frozen]),
    [
      ['vision', 'vit', 'vision_model', 'vision_config', true],
      ['qformer', 'qformer', 'qformer', 'qformer_config', false],
      ['projection', 'linear', 'language_projection', null, false],
      ['llm', 't5', 'language_model', 'text_config', true],
    ],
  );
  assert.deepEqual(t5.nodes[1].edges.map((e) => [e.port, e.from]), [['', 'vision'], ['instruction', 'prompt']]);
  assert.deepEqual(t5.outputs.map((o) => [o.name, o.task, o.args]), [['text', 'generate', ['llm']]]);
  assert.deepEqual(t5.generation, { max_new_tokens: 256, num_beams: 5, repetition_penalty: 1.5, length_penalty: 1.0 });
  // The inherited declaration keeps its file; the override points into instructblip-t5.blip.
  assert.equal(t5.nodes[0].loc.file, 'graphs/blip2-opt.blip');
  assert.equal(t5.nodes[1].loc.file, 'graphs/instructblip-t5.blip');
});

test('IR: pinned attributes and where they were written', () => {
  const m = model('graphs/pinned/blip2-opt-2.7b.blip');
  const llm = m.nodes.find((n) => n.name === 'llm')!;
  assert.deepEqual(llm.attrs, { width: 2560, depth: 32, heads: 32, mlp_width: 10240 });
  assert.equal(llm.attrLocs.width.file, 'graphs/pinned/blip2-opt-2.7b.blip');
  assert.equal(llm.config, 'text_config');
  assert.equal(llm.kind, 'opt');
  assert.deepEqual(m.preprocess, { image_size: 224, mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711], resample: 'bicubic' });
  assert.equal(m.generation.max_new_tokens, 30);
  const itm = model('graphs/blip-itm.blip');
  assert.deepEqual(itm.outputs.map((o) => [o.task, o.args]), [['itm', ['itm_head']], ['itc', ['image_proj', 'text_proj']]]);
  assert.equal(itm.nodes.find((n) => n.name === 'itm_head')!.attrs.pool, 'cls');
});

test('a pinned file whose widths disagree is refused before any checkpoint is read', () => {
  const files: Record<string, string> = {
    'graphs/blip2-opt.blip': readFileSync('graphs/blip2-opt.blip', 'utf8'),
    'graphs/blip2-t5.blip': readFileSync('graphs/blip2-t5.blip', 'utf8'),
    'graphs/pinned/bad.blip': readFileSync('graphs/pinned/blip2-flan-t5-xl.blip', 'utf8').replace('out_width: 2048', 'out_width: 2560'),
  };
  const ds = load(files, 'graphs/pinned/bad.blip').diagnostics;
  assert.deepEqual(ds.map(simple), [
    {
      code: 'BLIP2040',
      line: 6,
      column: 25,
      message: "width mismatch on projection → llm: t5 'llm' expects its 'prefix' input to be 2048 wide, found 2560 (the output width of linear 'projection')",
    },
  ]);
  // The edge is declared in blip2-t5.blip; the disagreeing sizes are pinned in the pinned file.
  assert.equal(ds[0].loc.file, 'graphs/blip2-t5.blip');
  assert.deepEqual(
    ds[0].related!.map((r) => [r.message, r.loc.file, r.loc.line, r.loc.column]),
    [
      ["width: 2048 of t5 'llm'", 'graphs/pinned/bad.blip', 26, 12],
      ["out_width: 2560 of linear 'projection'", 'graphs/pinned/bad.blip', 24, 56],
    ],
  );
});

test('config: "" selects the top level of config.json', () => {
  // (the image reaches the LLM: a text-only LLM graph is BLIP2039)
  const src = 'model m {\n  input image: image\n  input prompt: text\n  node vision: vit(image) @ "vision_model"\n  node llm: opt(prefix: vision, text: prompt) frozen @ "model" { config: "" }\n  output text: generate(llm)\n}\n';
  const r = load({ 'main.blip': src });
  assert.deepEqual(r.diagnostics.map(simple), []);
  assert.equal(r.program!.models[0].nodes[1].config, '');
});
