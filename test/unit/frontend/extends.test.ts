// Composition: imports relative to the importing file, `extends` chains, `override` (replace and
// refine), redeclared inputs, blocks merged key by key (a length bound replacing the base's either way).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BLIP2, load, simple } from './harness.js';

test('a chain across files in different folders, with an import cycle, resolves', () => {
  const files = {
    'lib/base.blip': BLIP2.replace('  output text', '  generation { max_new_tokens: 30, num_beams: 1 }\n  output text'),
    'lib/mid.blip':
      'import "./base.blip"\nimport "../main.blip"\nmodel mid extends m {\n  override node llm: t5(prefix: projection, text: prompt) frozen @ "language_model"\n  override node projection { in_width: 768 }\n}\n',
    'main.blip': [
      'import "./lib/mid.blip"',
      'model top extends mid {',
      '  input prompt: text', // redeclared identically: allowed
      '  override node qformer { queries: 32, width: 768 }',
      '  override node projection { out_width: 2048 }',
      '  override output text: generate(llm)',
      '  node proj2: linear(qformer) @ "language_projection"', // declared, read by no output: a warning
      '  generation { num_beams: 5 }',
      '}',
      '',
    ].join('\n'),
  };
  const r = load(files);
  // (a second text input or generate output is BLIP2035 / BLIP2034: a compiled model takes one of each)
  assert.deepEqual(r.diagnostics.map((d) => d.code), ['BLIP2030']);
  const [top] = r.program!.models;
  assert.equal(top.name, 'top');
  assert.equal(top.extends, 'mid');
  assert.deepEqual(top.inputs.map((i) => i.name), ['image', 'prompt']);
  assert.deepEqual(top.nodes.map((n) => `${n.name}:${n.kind}`), ['vision:vit', 'qformer:qformer', 'projection:linear', 'llm:t5', 'proj2:linear']);
  // A refinement keeps the node's inputs and binding from the base file; refinements down a chain add up.
  const q = top.nodes[1];
  assert.deepEqual(q.attrs, { queries: 32, width: 768 });
  assert.equal(q.checkpoint, 'qformer');
  assert.equal(q.loc.file, 'lib/base.blip');
  assert.equal(q.attrLocs.width.file, 'main.blip');
  assert.deepEqual(top.nodes[2].attrs, { in_width: 768, out_width: 2048 });
  assert.equal(top.nodes[2].attrLocs.in_width.file, 'lib/mid.blip');
  assert.equal(top.nodes[3].loc.file, 'lib/mid.blip');
  assert.deepEqual(top.outputs.map((o) => [o.name, o.args]), [['text', ['llm']]]);
  assert.deepEqual(top.generation, { max_new_tokens: 30, num_beams: 5 });
  assert.equal(top.generationLocs.num_beams.file, 'main.blip');
  assert.equal(top.generationLocs.max_new_tokens.file, 'lib/base.blip');
});

test("a derived generation block that bounds a length replaces the base's bound of it either way (else the base's max_new_tokens would win over its max_length)", () => {
  const base = BLIP2.replace('  output text', '  generation { max_new_tokens: 30, min_length: 5, num_beams: 3 }\n  output text');
  const r = load({
    'base.blip': base,
    'main.blip': [
      'import "./base.blip"',
      'model whole extends m {\n  generation { max_length: 40 }\n}',
      'model fresh extends m {\n  generation { min_new_tokens: 2, early_stopping: never }\n}',
      'model both extends whole {\n  generation { max_new_tokens: 8 }\n}',
      '',
    ].join('\n'),
  });
  assert.deepEqual(r.diagnostics.map(simple), []);
  const [whole, fresh, both] = r.program!.models;
  assert.deepEqual(whole!.generation, { min_length: 5, num_beams: 3, max_length: 40 });
  assert.deepEqual(fresh!.generation, { max_new_tokens: 30, num_beams: 3, min_new_tokens: 2, early_stopping: 'never' });
  assert.deepEqual(both!.generation, { min_length: 5, num_beams: 3, max_new_tokens: 8 });
  assert.deepEqual(Object.keys(both!.generationLocs).sort(), ['max_new_tokens', 'min_length', 'num_beams']);
});

test('a node refined twice in one model is a duplicate', () => {
  const r = load({ 'base.blip': BLIP2, 'main.blip': 'import "./base.blip"\nmodel a extends m {\n  override node qformer { width: 768 }\n  override node qformer { depth: 12 }\n}\n' });
  assert.deepEqual(r.diagnostics.map(simple), [
    { code: 'BLIP2005', line: 4, column: 17, message: "duplicate name 'qformer': expected each input and node name once in model 'a', found it declared again" },
  ]);
});

test('every model of the root file is in the program; imported models are not', () => {
  const r = load({ 'base.blip': BLIP2, 'main.blip': 'import "./base.blip"\nmodel a extends m {}\nmodel b extends m {}\n' });
  assert.deepEqual(r.program!.models.map((m) => m.name), ['a', 'b']);
  assert.deepEqual([...r.sources.keys()], ['main.blip', 'base.blip']);
});

test('an error in a base model is reported once, in its file, even with two derived models', () => {
  const r = load({ 'base.blip': BLIP2.replace('linear(qformer)', 'linear(qformr)'), 'main.blip': 'import "./base.blip"\nmodel a extends m {}\nmodel b extends m {}\n' });
  assert.deepEqual(
    r.diagnostics.map((d) => [d.loc.file, d.code, d.loc.line]),
    [['base.blip', 'BLIP2020', 6]],
  );
});
