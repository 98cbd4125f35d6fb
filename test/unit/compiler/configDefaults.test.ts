// A config.json that leaves keys out compiles as transformers reads it: each left-out key takes its
// config class's default (src/weights/transformersConfig.ts). The fixtures' values for the keys
// stripped here are those defaults, so the stripped checkpoint must give the very same artifact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { SafetensorsFile, encodeSafetensors } from '../../../src/weights/safetensors.js';
import { join, resolve } from 'node:path';
import { compile } from '../../../src/lower/compile.js';
import { CompileError } from '../../../src/lower/CompileError.js';
import { FIXTURES, compileFixture, loadModel, tmp } from './harness.js';

type Json = Record<string, any>;

/** The fixture's checkpoint with `strip(config)` applied to config.json (weights linked, not copied). */
function strippedCheckpoint(fixture: string, strip: (c: Json) => void): string {
  const src = join(FIXTURES, fixture, 'checkpoint');
  const dir = join(tmp('blip-cfg-'), 'checkpoint');
  mkdirSync(dir);
  for (const f of readdirSync(src)) {
    if (f === 'config.json') continue;
    if (f.endsWith('.safetensors')) symlinkSync(resolve(src, f), join(dir, f));
    else copyFileSync(join(src, f), join(dir, f));
  }
  const config = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
  strip(config);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

const drop = (o: Json, keys: string[]) => keys.forEach((k) => {
  assert.ok(k in o, `the fixture's config has no ${k} to leave out`);
  delete o[k];
});

async function sameArtifact(graph: string, fixture: string, strip: (c: Json) => void, files: string[]): Promise<void> {
  const full = tmp('blip-cfg-full-');
  await compileFixture(graph, fixture, full);
  const { model, text } = loadModel(graph);
  const sparse = tmp('blip-cfg-sparse-');
  await compile({ model, graphFile: graph, graphText: text, weights: strippedCheckpoint(fixture, strip), out: sparse });
  for (const f of files) assert.ok(readFileSync(join(full, f)).equals(readFileSync(join(sparse, f))), `${f} differs`);
  const manifest = (dir: string) => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  assert.deepEqual(manifest(sparse).text, manifest(full).text);
}

test("BLIP: a config without epsilons, activations, pad id or encoder_hidden_size compiles to the full config's artifact", async () => {
  await sameArtifact('graphs/blip-caption.blip', 'blip-caption-a', (c) => {
    drop(c.vision_config, ['layer_norm_eps', 'hidden_act']); // BlipVisionConfig: 1e-5, gelu
    drop(c.text_config, ['layer_norm_eps', 'hidden_act', 'encoder_hidden_size', 'pad_token_id']); // 1e-12, gelu, the vision width, 0
  }, ['encode.onnx', 'decoder.onnx', 'weights.bin']);
});

test('BLIP-2 OPT: vision eps 1e-6 and qkv_bias, the Q-Former encoder_hidden_size and the OPT defaults come from transformers\' classes', async () => {
  await sameArtifact('graphs/blip2-opt.blip', 'blip2-opt-a', (c) => {
    drop(c.vision_config, ['layer_norm_eps', 'qkv_bias', 'hidden_act']); // Blip2VisionConfig: 1e-6 (BlipVisionConfig's is 1e-5)
    drop(c.qformer_config, ['layer_norm_eps', 'encoder_hidden_size', 'hidden_act']);
    drop(c.text_config, ['activation_function', 'do_layer_norm_before', 'word_embed_proj_dim', 'bos_token_id', 'eos_token_id', 'pad_token_id', 'model_type']);
  }, ['encode.onnx', 'decoder.onnx', 'weights.bin']);
});

test('a pinned attribute that disagrees with a class default is BLIP4013 naming the default', async () => {
  const graph = 'graphs/blip2-opt.blip';
  const text = readFileSync(graph, 'utf8').replace('{ config: "vision_config" }', '{ config: "vision_config", layer_norm_eps: 1e-5 }');
  assert.notEqual(text, readFileSync(graph, 'utf8'));
  const file = join(tmp('blip-cfg-graph-'), 'pinned.blip');
  writeFileSync(file, text);
  const { model } = loadModel(file);
  const weights = strippedCheckpoint('blip2-opt-a', (c) => drop(c.vision_config, ['layer_norm_eps']));
  await assert.rejects(compile({ model, graphFile: file, graphText: text, weights, out: tmp('blip-cfg-out-') }), (e: unknown) => {
    assert.ok(e instanceof CompileError);
    assert.deepEqual(e.problems.map((p) => p.code), ['BLIP4013']);
    assert.match(e.message, /"layer_norm_eps" of node "vision" is pinned to 0\.00001, but transformers' Blip2VisionConfig default \(config\.json "vision_config" leaves it out\) says 0\.000001/);
    return true;
  });
});

/** Compile `graph` against the fixture's checkpoint, `strip` applied to its config and `lm_head` tensors left out. */
async function compileHeadless(graph: string, fixture: string, strip: (c: Json) => void) {
  const src = join(FIXTURES, fixture, 'checkpoint');
  const dir = strippedCheckpoint(fixture, strip);
  const st = SafetensorsFile.open(join(src, 'model.safetensors'));
  const tensors = [...st.tensors.values()].filter((t) => !t.name.endsWith('lm_head.weight')).map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: st.readRaw(t.name) }));
  st.close();
  rmSync(join(dir, 'model.safetensors'));
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
  const { model, text } = loadModel(graph);
  return compile({ model, graphFile: graph, graphText: text, weights: dir, out: tmp('blip-cfg-head-') });
}

test('an untied language model without lm_head is BLIP4010 saying why (transformers reports it missing and leaves the head random); tied, the embeddings serve', async () => {
  const llama = 'graphs/examples/blip2-llama.blip';
  // LlamaConfig's tie_word_embeddings is false: left out, it is still false
  await assert.rejects(compileHeadless(llama, 'blip2-llama-a', (c) => drop(c.text_config, ['tie_word_embeddings'])), (e: unknown) => {
    assert.ok(e instanceof CompileError);
    assert.deepEqual(e.problems.map((p) => p.code), ['BLIP4010']);
    assert.match(e.message, /no tensor "language_model\.lm_head\.weight", which node "llm" \(llama\) needs: its config does not tie the head to the token embeddings/);
    return true;
  });
  await compileHeadless(llama, 'blip2-llama-a', (c) => (c.text_config.tie_word_embeddings = true));
  // OPTConfig's is true: the fixture stores no lm_head, and saying false makes it needed
  await compileHeadless('graphs/blip2-opt.blip', 'blip2-opt-a', (c) => drop(c.text_config, ['tie_word_embeddings']));
  await assert.rejects(compileHeadless('graphs/blip2-opt.blip', 'blip2-opt-a', (c) => (c.text_config.tie_word_embeddings = false)), /no tensor "language_model\.lm_head\.weight", which node "llm" \(opt\) needs: its config does not tie/);
});

test("a defaulted id that does not fit the model is BLIP4017 saying the file leaves it out and whose default it is", async () => {
  const graph = 'graphs/blip-caption.blip';
  const { model, text } = loadModel(graph);
  const weights = strippedCheckpoint('blip-caption-a', (c) => drop(c.text_config, ['bos_token_id']));
  await assert.rejects(compile({ model, graphFile: graph, graphText: text, weights, out: tmp('blip-cfg-out-') }), (e: unknown) => {
    assert.ok(e instanceof CompileError);
    assert.ok(e.problems.some((p) => p.code === 'BLIP4017' && p.message === `config.json "text_config" bos_token_id (left out: BlipTextConfig's default) is 30522, outside the language model's vocabulary of 364 tokens`), e.message);
    return true;
  });
});

test("the hub's Salesforce/blip2-opt-2.7b and blip2-flan-t5-xl config.json (no vision or Q-Former sizes at all) resolve to the models transformers builds", async () => {
  const { resolveNodes } = await import('../../../src/lower/resolve.js');
  const hub = JSON.parse(readFileSync(join(FIXTURES, 'config-defaults.json'), 'utf8')).sparse.slice(0, 2).map((s: { config: Json }) => s.config);
  const vision = { width: 1408, depth: 39, heads: 16, mlp_width: 6144, image_size: 224, patch_size: 14, layer_norm_eps: 1e-6, qkv_bias: true, act: 'gelu' };
  const qformer = { width: 768, depth: 12, heads: 12, mlp_width: 3072, encoder_width: 1408, cross_attention_frequency: 2, layer_norm_eps: 1e-12, queries: 32 };
  const cases: Array<[string, Json, Json]> = [
    ['graphs/blip2-opt.blip', hub[0], { width: 2560, depth: 32, heads: 32, mlp_width: 10240, vocab_size: 50304, max_positions: 2048, embed_width: 2560, pre_norm: true, act: 'relu', tie_embeddings: true }],
    // act: the hub file's dense_act_fn "gelu" over gated-gelu's gelu_new, as T5Config reads it (the fixture's `read`)
    ['graphs/blip2-t5.blip', hub[1], { width: 2048, kv_width: 64, mlp_width: 5120, depth: 24, decoder_depth: 24, heads: 32, vocab_size: 32128, gated: true, act: 'gelu', tie_embeddings: false }],
  ];
  for (const [graph, config, llm] of cases) {
    assert.equal(config.vision_config.hidden_size, undefined);
    const { model } = loadModel(graph);
    const { nodes, problems } = resolveNodes(model, { config, shape: () => undefined });
    assert.deepEqual(problems, [], graph);
    const attrs = (name: string) => nodes.get(name)!.attrs;
    for (const [k, v] of Object.entries(vision)) assert.equal(attrs('vision')[k], v, `${graph} vision.${k}`);
    for (const [k, v] of Object.entries(qformer)) assert.equal(attrs('qformer')[k], v, `${graph} qformer.${k}`);
    for (const [k, v] of Object.entries(llm)) assert.equal(attrs('llm')[k], v, `${graph} llm.${k}`);
  }
});

test("the hub's Salesforce/blip-image-captioning-base config.json, whose text_config has no encoder_hidden_size, resolves (the decoder's cross width is the vision width)", async () => {
  const { resolveNodes } = await import('../../../src/lower/resolve.js');
  const config = JSON.parse(readFileSync(join(FIXTURES, 'config-defaults.json'), 'utf8')).sparse[2].config as Json;
  assert.equal(config.model_type, 'blip');
  assert.equal(config.text_config.encoder_hidden_size, undefined);
  const { model } = loadModel('graphs/blip-caption.blip');
  const { nodes, problems } = resolveNodes(model, { config, shape: () => undefined });
  assert.deepEqual(problems, []);
  assert.equal(nodes.get('decoder')!.attrs.encoder_width, 768);
  assert.equal(nodes.get('decoder')!.attrs.heads, 12);
  assert.equal(nodes.get('vision')!.attrs.layer_norm_eps, 1e-5);
});

test('a pinned attribute against a top-level default names the top level', async () => {
  const graph = 'graphs/blip2-opt.blip';
  const text = readFileSync(graph, 'utf8').replace('{ config: "qformer_config" }', '{ config: "qformer_config", queries: 8 }');
  const file = join(tmp('blip-cfg-graph-'), 'pinned.blip');
  writeFileSync(file, text);
  const { model } = loadModel(file);
  const weights = strippedCheckpoint('blip2-opt-a', (c) => drop(c, ['num_query_tokens']));
  await assert.rejects(compile({ model, graphFile: file, graphText: text, weights, out: tmp('blip-cfg-out-') }), (e: unknown) => {
    assert.ok(e instanceof CompileError);
    assert.match(e.message, /"queries" of node "qformer" is pinned to 8, but transformers' Blip2Config default \(config\.json leaves it out at its top level\) says 32/);
    return true;
  });
});

test('heads that do not divide the width, given or defaulted, are BLIP4017 at compile (transformers refuses them; the model failed at run)', async () => {
  const graph = 'graphs/blip2-opt.blip';
  const { model, text } = loadModel(graph);
  const weights = strippedCheckpoint('blip2-opt-a', (c) => {
    drop(c.qformer_config, ['num_attention_heads']); // Blip2QFormerConfig's 12 over a width of 32
    c.text_config.num_attention_heads = 5;
  });
  await assert.rejects(compile({ model, graphFile: graph, graphText: text, weights, out: tmp('blip-cfg-out-') }), (e: unknown) => {
    assert.ok(e instanceof CompileError);
    assert.deepEqual(e.problems.map((p) => [p.code, p.message.split(':')[0]]), [['BLIP4017', 'node "qformer" (qformer)'], ['BLIP4017', 'node "llm" (opt)']]);
    assert.match(e.problems[0].message, /width 32 is not a multiple of heads 12/);
    assert.match(e.problems[1].message, /width 32 is not a multiple of heads 5/);
    return true;
  });
});

test("the pinned graphs of the published checkpoints accept the hub's own config.json (blip2-opt-2.7b's embeddings are 50304 rows since the <image> token)", async () => {
  const { resolveNodes } = await import('../../../src/lower/resolve.js');
  const hub = JSON.parse(readFileSync(join(FIXTURES, 'config-defaults.json'), 'utf8')).sparse.slice(0, 3).map((s: { config: Json }) => s.config);
  for (const [graph, config] of [['graphs/pinned/blip2-opt-2.7b.blip', hub[0]], ['graphs/pinned/blip2-flan-t5-xl.blip', hub[1]], ['graphs/pinned/blip-image-captioning-base.blip', hub[2]]] as const) {
    const { model } = loadModel(graph);
    assert.deepEqual(resolveNodes(model, { config, shape: () => undefined }).problems, [], graph);
  }
});

test('review cases: null where transformers takes no None is BLIP4017; defaults are credited to the class they come from; a heads problem names where each size came from', async () => {
  const graph = 'graphs/blip2-opt.blip';
  const { model, text } = loadModel(graph);
  const weights = strippedCheckpoint('blip2-opt-a', (c) => {
    c.text_config.enable_bias = null;
    drop(c.text_config, ['num_attention_heads']);
  });
  await assert.rejects(compile({ model, graphFile: graph, graphText: text, weights, out: tmp('blip-cfg-out-') }), (e: unknown) => {
    assert.ok(e instanceof CompileError);
    assert.deepEqual(e.problems.map((p) => p.message), [
      `config.json "text_config" enable_bias is null, which transformers refuses (OPTConfig takes no None there): write the value, or leave the key out for the class's default`,
      `node "llm" (opt): width 32 is not a multiple of heads 12: expected heads to divide width (width: config.json "text_config"; heads: transformers' OPTConfig default (config.json "text_config" leaves it out)); transformers refuses it too`,
    ]);
    return true;
  });
  // a pinned query count against Blip2Config's default names the top level even when the section has defaults too
  const pinned = readFileSync(graph, 'utf8').replace('{ config: "qformer_config" }', '{ config: "qformer_config", queries: 8 }');
  const file = join(tmp('blip-cfg-graph-'), 'pinned.blip');
  writeFileSync(file, pinned);
  const both = strippedCheckpoint('blip2-opt-a', (c) => (drop(c, ['num_query_tokens']), drop(c.qformer_config, ['layer_norm_eps'])));
  await assert.rejects(compile({ model: loadModel(file).model, graphFile: file, graphText: pinned, weights: both, out: tmp('blip-cfg-out-') }), /pinned to 8, but transformers' Blip2Config default \(config\.json leaves it out at its top level\) says 32/);
});

test('a model_type that is an Object.prototype name is an unknown family, not a crash', async () => {
  const { effectiveConfig, configClassOf } = await import('../../../src/weights/transformersConfig.js');
  for (const model_type of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    assert.equal(configClassOf({ model_type }, 'vision_config'), undefined);
    assert.equal(configClassOf({ model_type: 'blip-2', text_config: { model_type } }, 'text_config'), undefined);
    assert.deepEqual(effectiveConfig({ model_type: 'blip-2', text_config: { model_type } }).config.text_config, { model_type });
  }
});

test("a section left out whose class defaults do not fit the checkpoint is one line naming the cause, not a line per tensor", async () => {
  const graph = 'graphs/blip2-opt.blip';
  const { model, text } = loadModel(graph);
  for (const [how, strip] of [['has "text_config": null', (c: Json) => (c.text_config = null)], ['has no "text_config"', (c: Json) => delete c.text_config]] as const) {
    const weights = strippedCheckpoint('blip2-opt-a', strip);
    await assert.rejects(compile({ model, graphFile: graph, graphText: text, weights, out: tmp('blip-cfg-out-') }), (e: unknown) => {
      assert.ok(e instanceof CompileError);
      const tensorLines = e.problems.filter((p) => p.code === 'BLIP4010' || p.code === 'BLIP4012');
      assert.deepEqual(tensorLines, []);
      const [summary] = e.problems.filter((p) => p.code === 'BLIP4017');
      assert.match(summary.message, new RegExp(`^config\\.json ${how.replace(/"/g, '"')}, so transformers builds OPTConfig with every default, and the checkpoint's tensors under "language_model\\." do not fit that model \\(\\d+ missing, misshapen or unread, the first: tensor "language_model\\.model\\.decoder\\.embed_tokens\\.weight" has shape \\[480, 32\\]`));
      return true;
    });
  }
});

test("a vision section left out: one line, and the text decoder's cross-attention, sized by that section's defaulted width, adds none", async () => {
  const graph = 'graphs/blip-caption.blip';
  const { model, text } = loadModel(graph);
  const weights = strippedCheckpoint('blip-caption-a', (c: Json) => delete c.vision_config);
  await assert.rejects(compile({ model, graphFile: graph, graphText: text, weights, out: tmp('blip-cfg-out-') }), (e: unknown) => {
    assert.ok(e instanceof CompileError);
    assert.deepEqual(
      e.problems.map((p) => p.code),
      ['BLIP4017'],
      e.problems.map((p) => p.message).join('\n'),
    );
    assert.match(e.problems[0]!.message, /^config\.json has no "vision_config", so transformers builds BlipVisionConfig with every default/);
    return true;
  });
});

test('LLaMA biases follow attention_bias / mlp_bias as LlamaAttention and LlamaMLP build them, not the stored tensors', async () => {
  const graph = 'graphs/examples/blip2-llama.blip';
  const { model, text } = loadModel(graph);
  for (const [key, tensor] of [['attention_bias', 'language_model.model.layers.0.self_attn.q_proj.bias'], ['mlp_bias', 'language_model.model.layers.0.mlp.gate_proj.bias']]) {
    const weights = strippedCheckpoint('blip2-llama-a', (c) => (c.text_config[key] = true));
    await assert.rejects(compile({ model, graphFile: graph, graphText: text, weights, out: tmp('blip-cfg-out-') }), (e: unknown) => {
      assert.ok(e instanceof CompileError);
      assert.ok(e.problems.some((p) => p.code === 'BLIP4010' && p.message.startsWith(`the checkpoint has no tensor "${tensor}"`)), e.message);
      return true;
    });
  }
});

test("BLIP-2's ViT q/v biases follow the config's qkv_bias, as Blip2Attention builds them", async () => {
  const graph = 'graphs/blip2-opt.blip';
  const { model, text } = loadModel(graph);
  // qkv_bias false while the checkpoint stores qkv.bias: transformers does not read it, nor does the compile
  const off = strippedCheckpoint('blip2-opt-a', (c) => (c.vision_config.qkv_bias = false));
  await assert.rejects(compile({ model, graphFile: graph, graphText: text, weights: off, out: tmp('blip-cfg-out-') }), (e: unknown) => {
    assert.ok(e instanceof CompileError);
    assert.ok(e.problems.some((p) => p.code === 'BLIP4011' && p.message.includes('"vision_model.encoder.layers.0.self_attn.qkv.bias"')), e.message);
    return true;
  });
  // qkv_bias left out (Blip2VisionConfig: true) and no bias stored for layer 0: the missing tensor is named
  const src = join(FIXTURES, 'blip2-opt-a', 'checkpoint');
  const dir = strippedCheckpoint('blip2-opt-a', (c) => drop(c.vision_config, ['qkv_bias']));
  const st = SafetensorsFile.open(join(src, 'model.safetensors'));
  const tensors = [...st.tensors.values()].filter((t) => t.name !== 'vision_model.encoder.layers.0.self_attn.qkv.bias').map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: st.readRaw(t.name) }));
  st.close();
  rmSync(join(dir, 'model.safetensors'));
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
  await assert.rejects(compile({ model, graphFile: graph, graphText: text, weights: dir, out: tmp('blip-cfg-out-') }), (e: unknown) => {
    assert.ok(e instanceof CompileError);
    assert.ok(e.problems.some((p) => p.code === 'BLIP4010' && p.message.startsWith('the checkpoint has no tensor "vision_model.encoder.layers.0.self_attn.qkv.bias"')), e.message);
    return true;
  });
});
