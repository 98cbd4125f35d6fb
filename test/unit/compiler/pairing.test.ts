// A graph given another model's checkpoint is one BLIP4019 line naming what the checkpoint is and
// the shipped graph for it (src/lower/pairing.ts), found before any size is resolved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pairingProblems } from '../../../src/lower/pairing.js';
import { Checkpoint } from '../../../src/weights/checkpoint.js';
import { FIXTURES, loadModel } from './harness.js';

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
