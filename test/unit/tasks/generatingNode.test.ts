// The manifest's special ids and prompt layout are the generating node's (its kind and its config
// section), not the family's: BLIP's caption decoder over BLIP-2's queries (a blip-2 checkpoint whose
// text_config is OPT's, the decoder's section "decoder_config") compiled with OPT's ids and no
// decoder_start_token_id, and `blip run` then took it for T5 (family blip-2 + cross-attention) and
// said "BLIP5044: the manifest has no decoder_start_token_id; recompile the model".
// Reference: test/oracle/bert_decoder_on_queries.py (transformers' modules composed in this order).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../../../src/index.js';
import { CompileError } from '../../../src/lower/CompileError.js';
import { load } from '../../../runtime/model.js';
import { SafetensorsFile, encodeSafetensors } from '../../../src/weights/safetensors.js';
import { fixturePath, tempDir } from './harness.js';

const tmp = tempDir('blip-generating-node-');
after(() => tmp.remove());

const GRAPH = `model qformer_caption {
  input image: image
  input prompt: text
  node vision: vit(image) frozen @ "vision_model" { config: "vision_config" }
  node qformer: qformer(vision) @ "qformer" { config: "qformer_config" }
  node decoder: bert(prompt, cross: qformer) @ "text_decoder" { config: "decoder_config", causal: true }
  output caption: generate(decoder)
}
`;

type Tensor = { name: string; dtype: string; shape: number[]; data: Uint8Array };
function tensors(fixture: string, keep: (name: string) => boolean): Tensor[] {
  const st = SafetensorsFile.open(fixturePath(fixture, 'checkpoint', 'model.safetensors'));
  const out = [...st.tensors.values()].filter((t) => keep(t.name)).map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: st.readRaw(t.name) }));
  st.close();
  return out;
}

/**
 * blip2-opt-a's ViT, query tokens and Q-Former with blip-caption-a's text_decoder (its text_config
 * as "decoder_config", its BERT tokenizer), as the review's merge2.py builds it; `edit` changes config.json.
 */
function mergedCheckpoint(name: string, edit: (c: Record<string, any>) => void = () => {}): string {
  const dir = join(tmp.dir, name);
  mkdirSync(dir);
  cpSync(fixturePath('blip2-opt-a', 'checkpoint'), dir, { recursive: true });
  const merged = [...tensors('blip2-opt-a', (n) => /^(vision_model|qformer|query_tokens)\b/.test(n)), ...tensors('blip-caption-a', (n) => n.startsWith('text_decoder.'))];
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(merged));
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  config.decoder_config = JSON.parse(readFileSync(fixturePath('blip-caption-a', 'checkpoint', 'config.json'), 'utf8')).text_config;
  delete config.image_token_index; // (the <image> id of OPT's vocabulary is no BERT token)
  edit(config);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(fixturePath('blip-caption-a', 'checkpoint', f), join(dir, f));
  return dir;
}

async function compileMerged(weights: string, out: string): Promise<void> {
  const graph = join(tmp.dir, `${out}.blip`);
  writeFileSync(graph, GRAPH);
  await compile(graph, { weights, out: join(tmp.dir, out) });
}

test("BLIP's caption decoder over BLIP-2 queries takes its own section's ids and BLIP's [DEC] prompt; tokens and log-probabilities == transformers", async () => {
  await compileMerged(mergedCheckpoint('merged'), 'merged-out');
  const model = await load(join(tmp.dir, 'merged-out'), { threads: 1 });
  try {
    const t = model.manifest.text;
    // decoder_config's [DEC] 362, [SEP] 3, pad 0 (text_config is OPT's: bos 2, eos 2, pad 1)
    assert.deepEqual([t.bos_token_id, t.decoder_start_token_id, t.eos_token_id, t.sep_token_id, t.pad_token_id, t.prompt_format, t.text_input], [362, 362, [3], 3, 0, 'blip', 'decoder']);
    const image = fixturePath('images', 'rgb_37x23.png');
    const want = new Map<string | undefined, number[]>([
      [undefined, [-3.943673, -3.815298, -3.687916, -3.760208]],
      ['a dog sitting on', [-4.010344, -3.899408, -3.747753, -3.369182]],
    ]);
    for (const [prompt, logprobs] of want) {
      const [r] = await model.generate([image], { maxNewTokens: 12, minNewTokens: 12, logprobs: true, ...(prompt === undefined ? {} : { prompt }) });
      assert.deepEqual(r!.tokenIds, new Array(12).fill(253));
      r!.logprobs!.slice(0, 4).forEach((e, i) => assert.ok(Math.abs(e.logprob - logprobs[i]!) < 1e-4, `prompt ${prompt}: token ${i} logprob ${e.logprob}, transformers ${logprobs[i]}`));
    }
  } finally {
    await model.close();
  }
});

test("a special id out of the decoder's vocabulary is named in the generating node's section, once: BLIP's decoder start is its bos_token_id", async () => {
  const weights = mergedCheckpoint('merged-bad-bos', (c) => (c.decoder_config.bos_token_id = 999));
  await assert.rejects(compileMerged(weights, 'merged-bad-bos-out'), (e) => {
    assert.ok(e instanceof CompileError, String(e));
    assert.deepEqual(e.problems.map((p) => p.message), ['config.json "decoder_config" bos_token_id is 999, outside the language model\'s vocabulary of 364 tokens']);
    return true;
  });
});
