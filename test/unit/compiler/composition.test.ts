// Compositions a user writes by editing a shipped graph: each is checked by `blip check` where
// the file alone tells, compiled or refused with one clear line otherwise, and never merged,
// dropped or fed something the graph does not connect (docs/composition.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadProgram } from '../../../src/syntax/load.js';
import type { Diagnostic } from '../../../src/diagnostics/Diagnostic.js';
import { compile } from '../../../src/lower/compile.js';
import { CompileError } from '../../../src/lower/CompileError.js';
import { FIXTURES, tmp } from './harness.js';

/** Diagnostics of `text` read as if it were `file` (imports resolve beside it). */
function check(text: string, file = 'graphs/user.blip'): Diagnostic[] {
  return loadProgram(file, { text }).diagnostics;
}

/** The CompileError of compiling `text` (as graphs/user.blip) against a fixture; nothing is written. */
async function compileFails(text: string, fixture: string, weights = join(FIXTURES, fixture, 'checkpoint')): Promise<CompileError> {
  const loaded = loadProgram('graphs/user.blip', { text });
  assert.ok(loaded.program, loaded.diagnostics.map((d) => d.message).join('; '));
  const out = join(tmp('compose-'), 'out');
  let error: unknown;
  await compile({ model: loaded.program.models[0]!, graphFile: 'graphs/user.blip', graphText: text, weights, out }).catch((e) => (error = e));
  assert.ok(error instanceof CompileError, `expected a CompileError, got ${error}`);
  assert.ok(!existsSync(out));
  return error;
}

function only(ds: Diagnostic[], code: string): Diagnostic {
  const hits = ds.filter((d) => d.code === code);
  assert.equal(hits.length, 1, ds.map((d) => `${d.code} ${d.loc.file}:${d.loc.line}: ${d.message}`).join('\n'));
  return hits[0]!;
}

test('blip check refuses a second generate output (an output cannot be renamed by adding one), at the new output', () => {
  const ds = check('import "./blip2-opt.blip"\nmodel renamed extends blip2_opt {\n  output caption: generate(llm)\n}\n');
  const d = only(ds, 'BLIP2034');
  assert.deepEqual([d.loc.file, d.loc.line, d.severity], ['graphs/user.blip', 3, 'error']);
  assert.match(d.message, /'caption' is a second generate\(\) output/);
  assert.equal(d.related?.[0]?.loc.file, 'graphs/blip2-opt.blip');
});

test('blip check refuses generate beside itm, and a second itc', () => {
  const mixed = check('import "./blip-itm.blip"\nmodel both extends blip_itm {\n  node decoder: bert(text, cross: vision) @ "text_decoder" { causal: true }\n  output caption: generate(decoder)\n}\n');
  assert.match(only(mixed, 'BLIP2034').message, /mixes generate\(\) \('caption'\) and itm\(\) \('itm'\)/);
  const twice = check('import "./blip-itm.blip"\nmodel two extends blip_itm {\n  output again: itc(image_proj, text_proj)\n}\n');
  assert.equal(only(twice, 'BLIP2034').loc.line, 3);
});

test('a second text input (an instruction beside the prompt) is a check error at the second input, not merged', () => {
  const ds = check(
    'import "./instructblip-t5.blip"\nmodel split extends instructblip_t5 {\n  input instruction: text\n' +
      '  override node qformer: qformer(vision, instruction: instruction) @ "qformer" { config: "qformer_config" }\n}\n',
  );
  const d = only(ds, 'BLIP2035');
  assert.deepEqual([d.loc.file, d.loc.line, d.loc.column], ['graphs/user.blip', 3, 9]);
  assert.match(d.message, /'instruction' is a second text input.*read 'prompt' where 'instruction' is read/);
});

const RETRIEVAL = (imageB: string, textB: string) => `model two {
  input image: image
  input image_b: image
  input text: text
  input query: text
  node vision: vit(image) @ "vision_model" { config: "vision_config" }
  node vision_b: vit(${imageB}) @ "vision_model" { config: "vision_config" }
  node fused: bert(text, cross: vision) @ "text_encoder" { config: "text_config" }
  node unimodal: bert(${textB}) @ "text_encoder" { config: "text_config" }
  node itm_head: classifier(fused) @ "itm_head" { pool: cls }
  node image_proj: embed(vision_b) @ "vision_proj" { pool: cls }
  node text_proj: embed(unimodal) @ "text_proj" { pool: cls }
  output itm: itm(itm_head)
  output itc: itc(image_proj, text_proj)
}
`;

test('a second image input, or a second text input, of a retrieval model is a check error (not an internal error or a run-time BLIP5043)', () => {
  const images = only(check(RETRIEVAL('image_b', 'text')), 'BLIP2035');
  assert.deepEqual([images.loc.line, images.message.startsWith("'image_b' is a second image input")], [3, true]);
  const texts = only(check(RETRIEVAL('image', 'query')), 'BLIP2035');
  assert.deepEqual([texts.loc.line, texts.message.startsWith("'query' is a second text input")], [5, true]);
  // declared but unread: a warning (BLIP2031), not this error
  const unread = check(RETRIEVAL('image', 'text'));
  assert.deepEqual(unread.filter((d) => d.severity === 'error'), []);
  assert.deepEqual(unread.map((d) => d.code).sort(), ['BLIP2031', 'BLIP2031']);
});

test('a pinned query count that disagrees names the key it comes from: the top-level num_query_tokens, not qformer_config', async () => {
  const text = 'import "./examples/blip2-llama.blip"\nmodel x extends blip2_llama {\n  override node qformer { queries: 4 }\n}\n';
  const e = await compileFails(text, 'blip2-llama-a');
  const p = e.problems.find((x) => x.code === 'BLIP4013');
  assert.match(p?.message ?? '', /pinned to 4, but config\.json "num_query_tokens" says 6/);
  assert.deepEqual([p?.loc?.file, p?.loc?.line], ['graphs/user.blip', 3]);
});

// attributes a kind derives from a config.json key rather than copies: the key's own value, then the derived one
for (const [node, pin, says] of [
  ['llm', 'final_norm: false', 'config.json "text_config._remove_final_layer_norm" is false, so final_norm is true'],
  ['llm', 'placeholders: false', 'config.json "image_token_index" is 476, so placeholders is true'],
  ['qformer', 'keep_float32: false', 'config.json "model_type" is "blip-2", so keep_float32 is true'],
] as const) {
  test(`a pinned ${pin.split(':')[0]} that disagrees with what config.json derives gives the key's value and the derived one`, async () => {
    const text = `import "./blip2-opt.blip"\nmodel x extends blip2_opt {\n  override node ${node} { ${pin} }\n}\n`;
    const e = await compileFails(text, 'blip2-opt-a');
    const p = e.problems.find((x) => x.code === 'BLIP4013');
    assert.equal(p?.message, `attribute "${pin.split(':')[0]}" of node "${node}" is pinned to false, but ${says}: the file describes another model than the checkpoint holds`);
    assert.deepEqual([p?.loc?.file, p?.loc?.line], ['graphs/user.blip', 3]);
  });
}

test('one config.json size that contradicts the tensors is one line naming the key and both sizes, not a line per tensor', async () => {
  const weights = join(tmp('compose-ckpt-'), 'checkpoint');
  cpSync(join(FIXTURES, 'blip2-opt-a', 'checkpoint'), weights, { recursive: true });
  const config = JSON.parse(readFileSync(join(weights, 'config.json'), 'utf8'));
  config.text_config.hidden_size = 48; // the tensors are 32 wide
  writeFileSync(join(weights, 'config.json'), JSON.stringify(config));
  const e = await compileFails('import "./blip2-opt.blip"\nmodel x extends blip2_opt {}\n', 'blip2-opt-a', weights);
  const lines = e.problems.map((p) => `${p.code} ${p.message}`);
  assert.ok(lines.length <= 2, lines.join('\n'));
  assert.deepEqual(e.problems.filter((p) => p.code === 'BLIP4010' || p.code === 'BLIP4012'), []);
  const p = e.problems.find((x) => x.code === 'BLIP4017')!;
  assert.match(p.message, /^config\.json "text_config\.hidden_size" says 48 for attribute "width" of node "llm" \(opt\), but its tensors say 32: "language_model\.[^"]+" is \[\d+, 32\], not the \[\d+, 48\]/);
  assert.equal(p.loc?.line, 10);
});

test('mlp over a linear projection is one line naming both layouts, pinned or not (not "pin in_width", then a missing and an unread tensor each)', async () => {
  for (const attrs of ['', ' { in_width: 32, hidden_width: 32, out_width: 32 }']) {
    const e = await compileFails(`import "./blip2-opt.blip"\nmodel x extends blip2_opt {\n  override node projection: mlp(qformer) @ "language_projection"${attrs}\n}\n`, 'blip2-opt-a');
    assert.equal(e.problems.length, 1, e.problems.map((p) => `${p.code} ${p.message}`).join('\n'));
    const p = e.problems[0]!;
    assert.equal(p.code, 'BLIP4019');
    assert.match(p.message, /node "projection" is mlp \(two linear layers: linear_1\.weight, linear_2\.weight.*\), but the checkpoint has "language_projection\.bias", "language_projection\.weight", the layout of linear \(one linear layer.*write linear\(…\)/);
    assert.deepEqual([p.loc?.file, p.loc?.line], ['graphs/user.blip', 3]);
  }
});

const ITM_ONLY = (dropped: string) => `model itm_only {
  input image: image
  input text: text
  node vision: vit(image) @ "vision_model" { config: "vision_config" }
  node fused: bert(text, cross: vision) @ "text_encoder" { config: "text_config" }
  node itm_head: classifier(fused) @ "itm_head" { pool: cls }
${dropped}  output itm: itm(itm_head)
}
`;

test('a head no node names stays an error (the wrong checkpoint, usually), saying how to drop it on purpose; declared and unused, it compiles', async () => {
  const e = await compileFails(ITM_ONLY(''), 'blip-itm-a');
  assert.equal(e.problems.length, 1);
  assert.match(e.problems[0]!.message, /no node reads its tensors under "text_proj\." \(2 tensors\), "vision_proj\." \(2 tensors\);.*; to leave them out on purpose, declare a node at each such prefix that no output reads$/);
  const text = ITM_ONLY('  node image_proj: embed(vision) @ "vision_proj" { pool: cls }\n  node text_proj: embed(fused) @ "text_proj" { pool: cls }\n');
  assert.deepEqual(check(text).map((d) => d.code), ['BLIP2030', 'BLIP2030']);
  const out = join(tmp('compose-'), 'out');
  const r = await compile({ model: loadProgram('graphs/user.blip', { text }).program!.models[0]!, graphFile: 'graphs/user.blip', graphText: text, weights: join(FIXTURES, 'blip-itm-a', 'checkpoint'), out });
  assert.deepEqual(r.manifest.outputs.map((o) => o.name), ['itm']);
});

test('an override that bypasses the Q-Former compiles: the unused node\'s query_tokens beside its prefix are left unread like its own tensors', async () => {
  const text = 'import "./blip2-opt.blip"\nmodel skip extends blip2_opt {\n  override node llm: opt(prefix: vision, text: prompt) frozen @ "language_model" { config: "text_config" }\n}\n';
  const warnings = check(text);
  assert.deepEqual(warnings.map((d) => d.code), ['BLIP2030', 'BLIP2030']);
  // the unused nodes are in the base file; the override that left them unused follows, in the user's
  for (const w of warnings) assert.deepEqual([w.loc.file, w.related?.[0]?.loc.file, w.related?.[0]?.loc.line], ['graphs/blip2-opt.blip', 'graphs/user.blip', 3]);
  const out = join(tmp('compose-'), 'out');
  const r = await compile({ model: loadProgram('graphs/user.blip', { text }).program!.models[0]!, graphFile: 'graphs/user.blip', graphText: text, weights: join(FIXTURES, 'blip2-opt-a', 'checkpoint'), out });
  assert.equal(r.manifest.task, 'caption');
});

test('a wrong edge type caused by an override in another file points at the override too', () => {
  const ds = check('import "./blip2-opt.blip"\nmodel typ extends blip2_opt {\n  override node projection: classifier(qformer) @ "language_projection"\n}\n');
  const d = only(ds, 'BLIP2024');
  assert.equal(d.loc.file, 'graphs/blip2-opt.blip');
  assert.deepEqual([d.related?.[0]?.loc.file, d.related?.[0]?.loc.line, d.related?.[0]?.message], ['graphs/user.blip', 3, "classifier 'projection' is declared here"]);
});

test('a refinement that points a node at another kind\'s config section names the section it wrote and the usual one', async () => {
  const e = await compileFails('import "./blip2-opt.blip"\nmodel x extends blip2_opt {\n  override node vision { config: "qformer_config" }\n}\n', 'blip2-opt-a');
  const p = e.problems.find((x) => x.code === 'BLIP4014');
  assert.match(p?.message ?? '', /node "vision" \(vit\) is not in config\.json "qformer_config", the section its config: names; vit nodes read "vision_config", which the checkpoint has: write config: "vision_config"/);
  // at the config: the user wrote, not at the base file's node
  assert.deepEqual([p?.loc?.file, p?.loc?.line, p?.loc?.column], ['graphs/user.blip', 3, 34]);
});

test('a pinned width that the tensor shapes contradict is BLIP4013 naming the checkpoint as one thing that says the width', async () => {
  const text = 'import "./blip2-opt.blip"\nmodel x extends blip2_opt {\n  override node projection { out_width: 4096 }\n}\n';
  const e = await compileFails(text, 'blip2-opt-a');
  const p = e.problems.find((x) => x.code === 'BLIP4013');
  assert.match(p?.message ?? '', /^attribute "out_width" of node "projection" is pinned to 4096, but the checkpoint \(the shapes of its "language_projection\.\*" tensors\) says \d+: /);
});

for (const attr of ['class_token', 'pre_norm']) {
  test(`a vit ${attr} the lowering does not support is reported at the override line that sets it, not at the base file's node`, async () => {
    const text = `import "./blip2-opt.blip"\nmodel x extends blip2_opt {\n  override node vision { ${attr}: false }\n}\n`;
    const e = await compileFails(text, 'blip2-opt-a');
    const p = e.problems.find((x) => x.code === 'BLIP4015');
    assert.equal(p?.message, `vit lowers pre-norm ViTs with a class token only (${attr} is false)`);
    assert.deepEqual([p?.loc?.file, p?.loc?.line, text.slice(p!.loc!.start - attr.length - 2, p!.loc!.end)], ['graphs/user.blip', 3, `${attr}: false`]);
  });
}
