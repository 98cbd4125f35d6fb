// A graph given another model's checkpoint is one BLIP4019 line naming what the checkpoint is and
// the shipped graph for it (src/lower/pairing.ts), found before any size is resolved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pairingProblems, shippedGraphFor } from '../../../src/lower/pairing.js';
import { compile } from '../../../src/lower/compile.js';
import { CompileError } from '../../../src/lower/CompileError.js';
import { Checkpoint } from '../../../src/weights/checkpoint.js';
import { nodeKinds } from '../../../src/nodes/index.js';
import { FIXTURES, loadModel, tmp } from './harness.js';

function problems(graph: string, fixture: string) {
  const { model } = loadModel(graph);
  const ckpt = Checkpoint.open(join(FIXTURES, fixture, 'checkpoint'));
  try {
    return pairingProblems(model, new Set(model.nodes.map((n) => n.name)), ckpt.config, ckpt.keys());
  } finally {
    ckpt.close();
  }
}

const SHIPPED: Array<[string, string]> = [
  ['graphs/blip-caption.blip', 'blip-caption-a'],
  ['graphs/blip-vqa.blip', 'blip-vqa-a'],
  ['graphs/blip-itm.blip', 'blip-itm-a'],
  ['graphs/blip2-opt.blip', 'blip2-opt-a'],
  ['graphs/blip2-opt.blip', 'blip2-opt-legacy'],
  ['graphs/blip2-t5.blip', 'blip2-t5-a'],
  ['graphs/blip2-itm.blip', 'blip2-itm-a'],
  ['graphs/examples/blip2-llama.blip', 'blip2-llama-a'],
  ['graphs/instructblip-t5.blip', 'instructblip-t5-a'],
  ['graphs/instructblip-vicuna.blip', 'instructblip-vicuna-a'],
];

test('each shipped graph with its own kind of checkpoint: no pairing problem', () => {
  for (const [graph, fixture] of SHIPPED) assert.deepEqual(problems(graph, fixture), [], `${graph} + ${fixture}`);
});

test("every other pairing of shipped graph and fixture is BLIP4019, naming the graph that compiles the checkpoint", () => {
  for (const [graph] of SHIPPED) {
    for (const [right, fixture] of SHIPPED) {
      if (right === graph) continue;
      // The caption graph reads a subset of a BLIP VQA checkpoint (vision + text decoder): it compiles.
      const found = problems(graph, fixture);
      if (!found.length) {
        assert.ok(graph === 'graphs/blip-caption.blip' && fixture === 'blip-vqa-a', `${graph} + ${fixture}: no BLIP4019`);
        continue;
      }
      assert.equal(found.length, 1);
      assert.equal(found[0].code, 'BLIP4019');
      assert.ok(found[0].loc, `${graph} + ${fixture}: located`);
      assert.ok(found[0].message.includes(`which ${right} compiles)`), `${graph} + ${fixture}: ${found[0].message}`);
    }
  }
});

test('a language model of another kind over the text_config is named by both model types; an instruction where the family has none, and none where it has one', () => {
  assert.match(problems('graphs/instructblip-vicuna.blip', 'blip2-llama-a')[0].message, /node "qformer" takes an instruction \(InstructBLIP\), but config\.json's model_type is "blip-2"/);
  assert.match(problems('graphs/blip2-t5.blip', 'instructblip-t5-a')[0].message, /node "qformer" takes no instruction, but config\.json's model_type is "instructblip", whose Q-Former reads one; .*which graphs\/instructblip-t5\.blip compiles\)$/);
  const [p] = problems('graphs/blip2-t5.blip', 'blip2-opt-a');
  assert.match(p.message, /node "llm" is t5, but config\.json "text_config" is model_type "opt"/);
  const [q] = problems('graphs/blip2-opt.blip', 'blip-caption-a');
  assert.match(q.message, /it has no tensors under "qformer\." \(node qformer\), "language_projection\." \(node projection\), "language_model\." \(node llm\); it holds text_decoder\.\*, vision_model\.\* \(config\.json: BlipForConditionalGeneration, which graphs\/blip-caption\.blip compiles\)$/);
});

/** The fixture's checkpoint with config.json edited (weights linked). */
function edited(fixture: string, edit: (c: Record<string, any>) => void): string {
  const src = join(FIXTURES, fixture, 'checkpoint');
  const dir = join(tmp('blip-pair-'), 'checkpoint');
  mkdirSync(dir);
  for (const f of readdirSync(src)) if (f !== 'config.json') symlinkSync(resolve(src, f), join(dir, f));
  const config = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
  edit(config);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

async function compileError(graph: string, weights: string): Promise<CompileError> {
  const { model, text } = loadModel(graph);
  try {
    await compile({ model, graphFile: graph, graphText: text, weights, out: tmp('blip-pair-out-') });
  } catch (e) {
    assert.ok(e instanceof CompileError, String(e));
    return e;
  }
  assert.fail(`${graph} compiled`);
}

test('a checkpoint with parts no node reads (a caption graph given a VQA checkpoint) is one BLIP4019 line, not a line per tensor', async () => {
  const e = await compileError('graphs/blip-caption.blip', join(FIXTURES, 'blip-vqa-a', 'checkpoint'));
  assert.deepEqual(e.problems.map((p) => p.code), ['BLIP4019']);
  assert.match(e.problems[0].message, /^the checkpoint is another model than "blip_caption" describes: no node reads its tensors under "text_encoder\." \(\d+ tensors\); it holds text_decoder\.\*, text_encoder\.\*, vision_model\.\* \(config\.json: BlipForQuestionAnswering, which graphs\/blip-vqa\.blip compiles\); to leave it out on purpose, declare a node at that prefix that no output reads$/);
});

test("config.json's own contradictions and oddities: model_type against architectures, a lone string, several classes, a text_config without model_type", () => {
  const { model } = loadModel('graphs/blip2-opt.blip');
  const keys = (() => {
    const c = Checkpoint.open(join(FIXTURES, 'blip2-opt-a', 'checkpoint'));
    const k = c.keys();
    c.close();
    return k;
  })();
  const base = JSON.parse(readFileSync(join(FIXTURES, 'blip2-opt-a', 'checkpoint', 'config.json'), 'utf8'));
  const all = new Set(model.nodes.map((n) => n.name));
  const run = (config: Record<string, unknown>, graphFile = 'graphs/blip-caption.blip') => pairingProblems(model, all, config, keys, graphFile);
  assert.match(run({ ...base, model_type: 'blip' })[0].message, /config\.json's model_type "blip" is not the family of its architectures \(Blip2ForConditionalGeneration, model_type "blip-2"\)/);
  assert.deepEqual(shippedGraphFor({ ...base, architectures: 'Blip2ForConditionalGeneration' }), { what: 'Blip2ForConditionalGeneration with opt', graph: 'graphs/blip2-opt.blip' });
  assert.deepEqual(shippedGraphFor({ ...base, architectures: [42] }), { invalid: 'has "architectures": [42], which is not a list of transformers class names' });
  assert.deepEqual(shippedGraphFor({ ...base, architectures: [] }).invalid, 'has "architectures": [], which is not a list of transformers class names');
  assert.deepEqual(shippedGraphFor({ ...base, text_config: [1] }), { what: 'Blip2ForConditionalGeneration', invalid: 'says Blip2ForConditionalGeneration, but its "text_config" ([1]) names no language model' });
  assert.equal(shippedGraphFor({ ...base, architectures: ['Blip2ForConditionalGeneration', 'Blip2Model'] }).what, 'Blip2ForConditionalGeneration with opt (the first of its 2 architectures)');
  // no text_config: Blip2Config builds OPTConfig, and the shipped OPT graph is the one
  const { text_config: _, ...noText } = base;
  assert.deepEqual(shippedGraphFor(noText), { what: 'Blip2ForConditionalGeneration with opt', graph: 'graphs/blip2-opt.blip' });
  const t5 = loadModel('graphs/blip2-t5.blip').model;
  const [p] = pairingProblems(t5, new Set(t5.nodes.map((n) => n.name)), noText, keys, 'graphs/blip2-t5.blip');
  assert.match(p.message, /node "llm" is t5, but config\.json "text_config" leaves model_type out, which transformers reads as "opt"/);
  // the graph being compiled is not suggested to itself
  assert.match(run({ ...base, model_type: 'blip' }, 'graphs/blip2-opt.blip')[0].message, /\(config\.json: Blip2ForConditionalGeneration with opt\)$/);
});

test('a config section that is not an object is BLIP4017 naming it', async () => {
  const e = await compileError('graphs/blip-caption.blip', edited('blip-caption-a', (c) => (c.vision_config = [])));
  assert.ok(e.problems.some((p) => p.code === 'BLIP4017' && p.message === 'config.json "vision_config" is [], where node "vision" (vit) expects an object of settings'), e.message);
});

test('a language model type the kind does not lower (mt5) is named as such', () => {
  const { model } = loadModel('graphs/blip2-t5.blip');
  const ck = Checkpoint.open(join(FIXTURES, 'blip2-t5-a', 'checkpoint'));
  const config = { ...ck.config, text_config: { ...(ck.config.text_config as Record<string, unknown>), model_type: 'mt5' } };
  const [p] = pairingProblems(model, new Set(model.nodes.map((n) => n.name)), config, ck.keys(), 'graphs/blip2-t5.blip');
  ck.close();
  assert.match(p.message, /node "llm" is t5, but config\.json "text_config" is model_type "mt5" \(the t5 kind lowers model_type "t5" only\)/);
  // a model_type another kind lowers is named with that kind
  const [q] = problems('graphs/blip2-t5.blip', 'blip2-opt-a');
  assert.match(q.message, /\(the t5 kind lowers model_type "t5" only; "opt" is the opt kind's\)/);
});

test("a vision section of another model (SigLIP's) under vit is one BLIP4019 line naming the kind that lowers it, not a line per tensor", async () => {
  const siglipSection = (c: Record<string, any>) => (c.vision_config.model_type = 'siglip_vision_model');
  const e = await compileError('graphs/blip2-opt.blip', edited('blip2-opt-a', siglipSection));
  assert.deepEqual(e.problems.map((p) => p.code), ['BLIP4019']);
  const vit = /node "vision" is vit, but config\.json "vision_config" is model_type "siglip_vision_model" \(the vit kind lowers model_type "blip_vision_model", "blip_2_vision_model", "instructblip_vision_model" only(.*?)\)/;
  assert.equal(e.problems[0].message.match(vit)?.[1], '', e.problems[0].message);
  // with a kind registered for it (here a stand-in for the one a contributor adds), that kind is named
  const { model } = loadModel('graphs/blip2-opt.blip');
  const ck = Checkpoint.open(join(FIXTURES, 'blip2-opt-a', 'checkpoint'));
  const [config, keys] = [structuredClone(ck.config) as Record<string, any>, ck.keys()];
  ck.close();
  const pairing = (c: Record<string, any>) => pairingProblems(model, new Set(model.nodes.map((n) => n.name)), c, keys, 'graphs/blip2-opt.blip');
  siglipSection(config);
  nodeKinds.siglip = { ...nodeKinds.vit, kind: 'siglip', modelTypes: ['siglip_vision_model'] };
  try {
    const [p] = pairing(config);
    assert.equal(p.message.match(vit)?.[1], '; "siglip_vision_model" is the siglip kind\'s', p.message);
  } finally {
    delete nodeKinds.siglip;
  }
  // BLIP's, BLIP-2's and InstructBLIP's own vision model_types pair with vit (and the shipped pairings above)
  for (const type of ['blip_vision_model', 'blip_2_vision_model', 'instructblip_vision_model']) {
    config.vision_config.model_type = type;
    assert.deepEqual(pairing(config), [], type);
  }
});

test('tensors no node owns are grouped by the shortest part of the key no node prefix lies within', async () => {
  const { unownedPart } = await import('../../../src/lower/pairing.js');
  assert.equal(unownedPart('text_encoder.embeddings.x', ['vision_model', 'text_decoder']), 'text_encoder');
  assert.equal(unownedPart('text_decoder.cls.predictions.bias', ['vision_model', 'text_decoder.bert']), 'text_decoder.cls');
  assert.equal(unownedPart('query_tokens', ['qformer']), 'query_tokens');
});
