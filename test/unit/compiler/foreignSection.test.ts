// A config section of another model than the family's (a BLIP-2 checkpoint whose vision_config is
// SigLIP's, for a vision kind a contributor adds) is not filled with the family class's defaults:
// what it leaves out is the node kind's lowering.defaults (src/weights/transformersConfig.ts). The
// stand-in kind is registered before the checker and compiler are imported, as a file listed in
// src/nodes/index.ts would be (test/unit/nodes/clonedKinds.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeKinds, type NodeKind } from '../../../src/nodes/index.js';
import { Vit } from '../../../src/nodes/vit.js';

// SigLIP's vision tower as the review's siglip kind declares it: its model_type, and
// SiglipVisionConfig's defaults for what a section leaves out (hidden_act "gelu_pytorch_tanh").
const Siglip: NodeKind = {
  ...Vit,
  kind: 'siglip',
  attrSchema: { ...Vit.attrSchema, $id: 'blip:node/siglip' },
  modelTypes: ['siglip_vision_model'],
  lowering: { ...Vit.lowering!, defaults: { ...Vit.lowering!.defaults, act: 'gelu_pytorch_tanh', layer_norm_eps: 1e-6 } },
};
nodeKinds.siglip = Siglip;

const { resolveNodes } = await import('../../../src/lower/resolve.js');
const { pairingProblems } = await import('../../../src/lower/pairing.js');
const { FIXTURES, loadModel } = await import('./harness.js');

type Json = Record<string, any>;
const base = (): Json => JSON.parse(readFileSync(join(FIXTURES, 'blip2-opt-a', 'checkpoint', 'config.json'), 'utf8'));
/** blip2-opt's graph with its vision node made `kind`, resolved against `config`. */
function resolved(kind: string, config: Json) {
  const { model } = loadModel('graphs/blip2-opt.blip');
  model.nodes.find((n) => n.name === 'vision')!.kind = kind;
  const r = resolveNodes(model, { config, shape: () => undefined });
  return { ...r, vision: r.nodes.get('vision')!, model };
}

test("a SigLIP vision_config without hidden_act takes the siglip kind's gelu_pytorch_tanh, not Blip2VisionConfig's gelu", () => {
  const config = base();
  const { hidden_act: _, layer_norm_eps: __, ...section } = config.vision_config;
  config.vision_config = { ...section, model_type: 'siglip_vision_model' };
  const { vision, problems, model } = resolved('siglip', config);
  assert.deepEqual(problems, []);
  assert.equal(vision.attrs.act, 'gelu_pytorch_tanh');
  assert.equal(vision.from.act, "siglip's default");
  assert.equal(vision.attrs.layer_norm_eps, 1e-6);
  // what the section gives is read as given, and the Q-Former still reads the vision width
  assert.equal(vision.attrs.width, config.vision_config.hidden_size);
  assert.equal(vision.from.width, 'config.json "vision_config"');
  // and it pairs: the siglip kind lowers that model_type
  assert.deepEqual(pairingProblems(model, new Set(model.nodes.map((n) => n.name)), config, ['vision_model.x', 'qformer.x', 'query_tokens', 'language_projection.x', 'language_model.x']), []);
});

test("BLIP-2's own vision_config without hidden_act still takes Blip2VisionConfig's gelu, as transformers reads it", () => {
  const config = base();
  delete config.vision_config.hidden_act;
  const { vision } = resolved('vit', config);
  assert.equal(vision.attrs.act, 'gelu');
  assert.equal(vision.from.act, `transformers' Blip2VisionConfig default (config.json "vision_config" leaves it out)`);
});
