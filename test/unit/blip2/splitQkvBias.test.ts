// A BLIP-2 checkpoint whose EVA ViT stores its attention bias split, `self_attn.q_bias` and
// `self_attn.v_bias` with no key bias, as LAVIS-converted saves of transformers 4 did (their
// Blip2Attention held q_bias / v_bias and used cat(q_bias, zeros, v_bias) as the qkv bias).
// transformers 5.12.1 no longer reads such a checkpoint: it builds `qkv.bias` from zero q_bias / v_bias
// at init (modeling_blip_2.py: torch.cat((q_bias, torch.zeros_like(v_bias), v_bias))), reports the
// stored q_bias / v_bias unexpected and qkv.bias missing, and runs with a zero bias (image_embeds off by
// 0.43 on blip2-opt-a). So there is no transformers output for the split save itself; it is the same
// weights as the fixture's `qkv.bias` (whose key third is zero), split here, and must give transformers'
// outputs for the unsplit fixture.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, encodeSafetensors } from '../../../src/weights/safetensors.js';
import { compile } from '../../../src/lower/compile.js';
import { FIXTURES, TEST_TARGETS, targetTag, close, expected, f32, loadModel, session, tmp } from '../compiler/harness.js';

const FIXTURE = 'blip2-opt-a';
const GRAPH = 'graphs/blip2-opt.blip';
const dir = tmp('blip2-split-qkv-');
after(() => rmSync(dir, { recursive: true, force: true }));

type Tensor = { name: string; dtype: string; shape: number[]; data: Uint8Array };

/** The fixture's checkpoint with each vision `self_attn.qkv.bias` (3W) stored as `q_bias` (its first W) and `v_bias` (its last W). */
function splitCheckpoint(): { path: string; layers: number } {
  const src = join(FIXTURES, FIXTURE, 'checkpoint');
  const out = join(dir, 'checkpoint');
  mkdirSync(out);
  for (const f of readdirSync(src)) if (f !== 'model.safetensors') copyFileSync(join(src, f), join(out, f));
  const st = SafetensorsFile.open(join(src, 'model.safetensors'));
  const tensors: Tensor[] = [];
  let layers = 0;
  for (const t of st.tensors.values()) {
    const data = st.readRaw(t.name);
    const m = /^(vision_model\.encoder\.layers\.\d+\.self_attn\.)qkv\.bias$/.exec(t.name);
    if (!m) {
      tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data });
      continue;
    }
    assert.equal(t.dtype, 'F32');
    const W = t.shape[0] / 3;
    const bytes = W * 4;
    assert.ok(data.subarray(bytes, 2 * bytes).every((x) => x === 0), `${t.name}: the key third is not zero`);
    tensors.push({ name: `${m[1]}q_bias`, dtype: 'F32', shape: [W], data: data.slice(0, bytes) });
    tensors.push({ name: `${m[1]}v_bias`, dtype: 'F32', shape: [W], data: data.slice(2 * bytes) });
    layers++;
  }
  st.close();
  writeFileSync(join(out, 'model.safetensors'), encodeSafetensors(tensors));
  return { path: out, layers };
}

const split = splitCheckpoint();

for (const target of TEST_TARGETS) {
  test(`BLIP-2 ViT with split q_bias / v_bias (older saves) gives transformers' image features: ${FIXTURE}${targetTag(target)}`, async (t) => {
    assert.equal(split.layers, expected(FIXTURE).json.config.vision.num_hidden_layers, 'every vision layer split');
    const out = join(dir, `out-${target}`);
    const { model, text } = loadModel(GRAPH);
    await compile({ model, graphFile: GRAPH, graphText: text, weights: split.path, out, dtype: 'float32', target });
    const exp = expected(FIXTURE);
    const enc = await session(join(out, 'encode.onnx'));
    const e = await enc.run({ pixel_values: f32(exp.array('pixel_values')) });
    const d = close('image_embeds', e.image_embeds.data as Float32Array, exp.array('image_embeds').data);
    const p = close('prefix_embeds', e.prefix_embeds.data as Float32Array, exp.array('prefix_embeds').data);
    t.diagnostic(`image_embeds ${d.toExponential(2)}, prefix_embeds ${p.toExponential(2)}`);
  });
}
