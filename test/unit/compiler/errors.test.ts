// Compile failures: each is reported clearly (code, the tensor / attribute, the node, the graph
// line) and leaves nothing behind: no output directory, no temporary directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadProgram } from '../../../src/syntax/load.js';
import { compile } from '../../../src/lower/compile.js';
import { CompileError } from '../../../src/lower/CompileError.js';
import { CheckpointError } from '../../../src/weights/CheckpointError.js';
import { SafetensorsFile, encodeSafetensors } from '../../../src/weights/safetensors.js';
import { FIXTURES, loadModel, tmp } from './harness.js';
import { readManifest } from '../../../src/artifact/manifest.js';

type Tensor = { name: string; dtype: string; shape: number[]; data: Uint8Array };

/** A copy of a fixture checkpoint whose tensors went through `edit`. */
function checkpointCopy(fixture: string, edit: (ts: Tensor[]) => Tensor[] = (t) => t): string {
  const src = join(FIXTURES, fixture, 'checkpoint');
  const dir = join(tmp('ckpt-'), 'checkpoint');
  mkdirSync(dir);
  for (const f of readdirSync(src)) if (f !== 'model.safetensors') cpSync(join(src, f), join(dir, f), { recursive: true }); // (qformer_tokenizer/ is a folder)
  const st = SafetensorsFile.open(join(src, 'model.safetensors'));
  const tensors = [...st.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: st.readRaw(t.name) }));
  st.close();
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(edit(tensors)));
  return dir;
}

/** Line of the first line of `graph` that contains `needle` (1-based). */
function lineOf(graph: string, needle: string): number {
  return readFileSync(graph, 'utf8').split('\n').findIndex((l) => l.includes(needle)) + 1;
}

async function fails(graph: string, weights: string, check: (e: unknown) => void, text?: string): Promise<void> {
  const out = join(dirname(weights), 'out');
  const { model } = text ? { model: loadProgram(graph, { text }).program!.models[0] } : loadModel(graph);
  try {
    await assert.rejects(compile({ model, graphFile: graph, graphText: text ?? '', weights, out }), (e) => (check(e), true));
    assert.ok(!existsSync(out), 'no output directory is left behind');
    assert.deepEqual(readdirSync(dirname(out)).filter((f) => f.startsWith('out.')), [], 'no temporary directory is left behind');
  } finally {
    rmSync(dirname(weights), { recursive: true, force: true });
  }
}

function problem(e: unknown, code: string) {
  assert.ok(e instanceof CompileError, `expected a CompileError, got ${e}`);
  const p = e.problems.find((x) => x.code === code);
  assert.ok(p, `no ${code} among ${e.problems.map((x) => `${x.code} ${x.message}`).join('; ')}`);
  return p;
}

const CAPTION = 'graphs/blip-caption.blip';

/** checkpointCopy(fixture) with its config.json through `edit`. */
function configCopy(fixture: string, edit: (c: Record<string, any>) => void): string {
  const dir = checkpointCopy(fixture);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  edit(config);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

const codes = (e: unknown) => (e as CompileError).problems.map((p) => `${p.code} ${p.message}`);

test('one corrupt tensor among many of that size is BLIP4012 naming it, not config.json blamed', async () => {
  const key = 'text_decoder.bert.embeddings.LayerNorm.bias';
  const shrink = (t: Tensor) => ({ ...t, shape: [47], data: t.data.slice(0, 47 * 4) });
  await fails(CAPTION, checkpointCopy('blip-caption-a', (ts) => ts.map((t) => (t.name === key ? shrink(t) : t))), (e) => {
    assert.deepEqual(codes(e).map((l) => l.slice(0, 8)), ['BLIP4012'], codes(e).join('\n'));
    assert.match(problem(e, 'BLIP4012').message, /tensor "text_decoder\.bert\.embeddings\.LayerNorm\.bias" has shape \[47\], but node "decoder" \(bert\) expects \[48\]/);
  });
});

test('a config.json size two attributes share (num_query_tokens 4, Q-Former heads 4) names neither: BLIP4012 names the tensor', async () => {
  await fails('graphs/blip2-opt.blip', configCopy('blip2-opt-a', (c) => (c.num_query_tokens = 4)), (e) => {
    assert.ok(!codes(e).some((l) => l.includes('num_attention_heads')), codes(e).join('\n'));
    assert.match(problem(e, 'BLIP4012').message, /tensor "query_tokens" has shape \[1, 8, 32\], but node "qformer" \(qformer\) expects \[1, 4, 32\]/);
  });
});

test('a config.json size only one tensor carries is BLIP4017 naming the key (tied vocab_size, num_query_tokens)', async () => {
  // OPT with tied embeddings: vocab_size sizes embed_tokens alone
  await fails('graphs/blip2-opt.blip', configCopy('blip2-opt-a', (c) => (c.text_config.vocab_size += 8)), (e) => {
    assert.equal(codes(e).length, 1, codes(e).join('\n'));
    assert.match(problem(e, 'BLIP4017').message, /^config\.json "text_config\.vocab_size" says 488 for attribute "vocab_size" of node "llm" \(opt\), but .*"language_model\.model\.decoder\.embed_tokens\.weight" is \[480, 32\]/);
  });
  // 2 Q-Former heads, so 4 is num_query_tokens' alone
  await fails('graphs/blip2-t5.blip', configCopy('blip2-t5-a', (c) => (c.num_query_tokens = 4)), (e) => {
    assert.equal(codes(e).length, 1, codes(e).join('\n'));
    assert.match(problem(e, 'BLIP4017').message, /^config\.json "num_query_tokens" says 4 for attribute "queries" of node "qformer" \(qformer\), but .*"query_tokens" is \[1, 6, 32\]/);
  });
});

test('a config.json depth that disagrees with the layers is one line naming the key, not a line per tensor', async () => {
  await fails('graphs/blip2-opt.blip', configCopy('blip2-opt-a', (c) => (c.qformer_config.num_hidden_layers = 1)), (e) => {
    assert.equal(codes(e).length, 1, codes(e).join('\n'));
    assert.match(problem(e, 'BLIP4017').message, /^config\.json "qformer_config\.num_hidden_layers" says 1 for attribute "depth" of node "qformer" \(qformer\), but the checkpoint has 2 layers under "qformer\.encoder\.layer\." \(\d+ of its tensors not read, e\.g\. "qformer\.encoder\.layer\.1\./);
  });
  await fails(CAPTION, configCopy('blip-caption-a', (c) => (c.vision_config.num_hidden_layers = 3)), (e) => {
    assert.equal(codes(e).length, 1, codes(e).join('\n'));
    assert.match(problem(e, 'BLIP4017').message, /^config\.json "vision_config\.num_hidden_layers" says 3 for attribute "depth" of node "vision" \(vit\), but the checkpoint has 2 layers under "vision_model\.encoder\.layers\." \(\d+ expected tensors missing/);
  });
  // a section left out (12 default layers over 2): its unread tensors are part of that one line too
  await fails('graphs/blip2-opt.blip', configCopy('blip2-opt-a', (c) => delete c.qformer_config), (e) => {
    assert.deepEqual(codes(e).filter((l) => /^BLIP401[0-2]/.test(l)), []);
    assert.match(problem(e, 'BLIP4017').message, /^config\.json has no "qformer_config", so transformers builds Blip2QFormerConfig with every default.*\(\d+ missing, misshapen or unread/);
  });
});

test('a missing tensor names the tensor, the node and its line', async () => {
  const key = 'text_decoder.bert.encoder.layer.1.crossattention.self.key.weight';
  await fails(CAPTION, checkpointCopy('blip-caption-a', (ts) => ts.filter((t) => t.name !== key)), (e) => {
    const p = problem(e, 'BLIP4010');
    assert.match(p.message, new RegExp(`no tensor "${key.replaceAll('.', '\\.')}", which node "decoder" \\(bert\\) needs`));
    assert.equal(p.loc?.file, CAPTION);
    assert.equal(p.loc?.line, lineOf(CAPTION, 'node decoder'));
  });
});

test('an unexpected tensor under a node prefix, and one under no prefix, are errors', async () => {
  const extra = (name: string): Tensor => ({ name, dtype: 'F32', shape: [2], data: new Uint8Array(8) });
  await fails(CAPTION, checkpointCopy('blip-caption-a', (ts) => [...ts, extra('text_decoder.bert.encoder.layer.9.output.dense.bias'), extra('text_encoder.embeddings.LayerNorm.bias')]), (e) => {
    const under = problem(e, 'BLIP4011');
    assert.match(under.message, /tensor "text_decoder\.bert\.encoder\.layer\.9\.output\.dense\.bias" under node "decoder"'s prefix "text_decoder", but bert does not read it/);
    assert.equal(under.loc?.line, lineOf(CAPTION, 'node decoder'));
    // a part of the checkpoint no node owns is said once, as another model's
    const stray = problem(e, 'BLIP4019');
    assert.match(stray.message, /no node reads its tensors under "text_encoder\." \(1 tensor\); it holds text_decoder\.\*, text_encoder\.\*, vision_model\.\* \(config\.json: BlipForConditionalGeneration\); to leave it out on purpose, declare a node at that prefix that no output reads$/);
    assert.equal(stray.loc?.line, lineOf(CAPTION, 'model blip_caption'));
  });
});

test('a tensor of the wrong shape names both shapes, the node and its line', async () => {
  const key = 'vision_model.encoder.layers.0.mlp.fc1.weight';
  const wrong = checkpointCopy('blip-caption-a', (ts) => ts.map((t) => (t.name === key ? { ...t, shape: [t.shape[1], t.shape[0]] } : t)));
  await fails(CAPTION, wrong, (e) => {
    const p = problem(e, 'BLIP4012');
    assert.match(p.message, /tensor "vision_model\.encoder\.layers\.0\.mlp\.fc1\.weight" has shape \[32, 64\], but node "vision" \(vit\) expects \[64, 32\]/);
    assert.equal(p.loc?.line, lineOf(CAPTION, 'node vision'));
  });
});

test('every problem is reported at once', async () => {
  const drop = new Set(['vision_model.post_layernorm.weight', 'text_decoder.cls.predictions.bias']);
  await fails(CAPTION, checkpointCopy('blip-caption-a', (ts) => ts.filter((t) => !drop.has(t.name))), (e) => {
    const missing = (e as CompileError).problems.filter((p) => p.code === 'BLIP4010').map((p) => p.message.match(/"([^"]+)"/)![1]);
    assert.deepEqual(missing.sort(), [...drop].sort());
  });
});

test('a pinned attribute that disagrees with config.json is an error at the attribute', async () => {
  const text = readFileSync(CAPTION, 'utf8').replace('{ config: "vision_config" }', '{ config: "vision_config", heads: 8 }');
  await fails(CAPTION, checkpointCopy('blip-caption-a'), (e) => {
    const p = problem(e, 'BLIP4013');
    assert.match(p.message, /attribute "heads" of node "vision" is pinned to 8, but config\.json "vision_config\.num_attention_heads" says 4/);
    assert.equal(p.loc?.line, lineOf(CAPTION, 'node vision'));
    assert.equal(text.slice(p.loc!.start - 'heads: '.length, p.loc!.end), 'heads: 8');
  }, text);
});

test('config.json values outside what a node takes are errors at the node, each named, before lowering', async () => {
  const weights = checkpointCopy('blip-caption-a');
  const cfg = JSON.parse(readFileSync(join(weights, 'config.json'), 'utf8'));
  cfg.vision_config.image_size = [384, 512]; // non-square: not one size
  cfg.vision_config.patch_size = 1e30;
  cfg.text_config.hidden_act = 'swiglu';
  cfg.text_config.layer_norm_eps = 'tiny';
  writeFileSync(join(weights, 'config.json'), JSON.stringify(cfg));
  await fails(CAPTION, weights, (e) => {
    assert.ok(e instanceof CompileError);
    const got = e.problems.filter((p) => p.code === 'BLIP4017').map((p) => [p.message, p.loc?.line]);
    const [vision, decoder] = [lineOf(CAPTION, 'node vision'), lineOf(CAPTION, 'node decoder')];
    assert.deepEqual(got, [
      ['config.json "vision_config" gives [384,512] for attribute "image_size" of node "vision" (vit), which expects an integer', vision],
      ['config.json "vision_config" gives 1e+30 for attribute "patch_size" of node "vision" (vit), which expects a value <= 256', vision],
      ['config.json "text_config" gives "tiny" for attribute "layer_norm_eps" of node "decoder" (bert), which expects a number', decoder],
      ['config.json "text_config" gives "swiglu" for attribute "act" of node "decoder" (bert), which expects one of gelu, gelu_new, gelu_pytorch_tanh, quick_gelu, relu, silu, swish, tanh', decoder],
    ]);
    // nothing else: no shape errors, no "not given" for the dropped values
    assert.deepEqual(e.problems.filter((p) => p.code !== 'BLIP4017'), []);
  });
});

test("T5 relative position settings transformers' bucket formula cannot use are one BLIP4017 line naming the setting and the least it needs, not a crash", async () => {
  const T5 = 'graphs/blip2-t5.blip';
  // blip2-t5-a (8 buckets, max distance 20) with `n` buckets, its relative_attention_bias tables cut to n rows
  const withBuckets = (n: number) =>
    checkpointCopy('blip2-t5-a', (ts) =>
      ts.map((t) => (t.name.endsWith('relative_attention_bias.weight') ? { ...t, shape: [n, t.shape[1]], data: t.data.slice(0, n * t.shape[1] * 4) } : t)),
    );
  const edited = (n: number, maxDistance = 20) => {
    const dir = withBuckets(n);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    Object.assign(config.text_config, { relative_attention_num_buckets: n, relative_attention_max_distance: maxDistance });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    return dir;
  };
  const llm = lineOf(T5, 'node llm');
  // the attribute's schema minimum (a pinned value is BLIP3003 at blip check: malformed.test)
  const tooFew = (n: number) => `config.json "text_config" gives ${n} for attribute "relative_buckets" of node "llm" (t5), which expects a value >= 4`;
  // 2 and 3 buckets leave the encoder's directions 1 bucket each, none exact (were: internal error,
  // "The number NaN cannot be converted to a BigInt")
  for (const n of [2, 3]) {
    await fails(T5, edited(n), (e) => {
      assert.deepEqual((e as CompileError).problems.map((p) => [p.code, p.message, p.loc?.line]), [['BLIP4017', tooFew(n), llm]]);
    });
  }
  // 1 bucket: none exact in the decoder either
  await fails(T5, edited(1), (e) => assert.deepEqual(codes(e), [`BLIP4017 ${tooFew(1)}`]));
  // max distance at the decoder's exact buckets (8 / 2 = 4): log(4 / 4) = 0 in transformers' divisor
  await fails(T5, edited(8, 4), (e) => {
    assert.deepEqual(codes(e), [
      'BLIP4017 config.json "text_config.relative_attention_max_distance" says 4 for attribute "relative_max_distance" of node "llm" (t5): expected at least 5 with 8 buckets (the decoder\'s first 4 are exact distances, the rest log-spaced from there up to the max distance; transformers gives bucket ids outside its table)',
    ]);
  });
  // both at once: the count, which the distance's bound depends on
  await fails(T5, edited(3, 1), (e) => assert.deepEqual(codes(e), [`BLIP4017 ${tooFew(3)}`]));
  // the least each needs compiles: 4 buckets (max distance 3), 8 buckets with max distance 5
  for (const [n, md] of [[4, 3], [8, 5]]) {
    const dir = edited(n, md);
    try {
      const { model, text } = loadModel(T5);
      await compile({ model, graphFile: T5, graphText: text, weights: dir, out: join(dirname(dir), 'out') });
    } finally {
      rmSync(dirname(dir), { recursive: true, force: true });
    }
  }
});

test('token ids and generation settings the runtime would refuse are errors naming the file and key, before anything is written', async () => {
  const weights = checkpointCopy('blip-caption-a');
  const cfg = JSON.parse(readFileSync(join(weights, 'config.json'), 'utf8'));
  const vocab = cfg.text_config.vocab_size;
  cfg.text_config.bos_token_id = vocab + 5;
  writeFileSync(join(weights, 'config.json'), JSON.stringify(cfg));
  // (min_length: the graph's max_new_tokens bounds the max length, so the file's max_length is not read)
  writeFileSync(join(weights, 'generation_config.json'), JSON.stringify({ num_beams: 'x', min_length: -5 }));
  await fails(CAPTION, weights, (e) => {
    assert.ok(e instanceof CompileError);
    assert.deepEqual(
      e.problems.map((p) => [p.code, p.message, p.loc?.line]),
      [
        ['BLIP4017', 'generation_config.json gives -5 for min_length, which must be >= 0', lineOf(CAPTION, 'output caption')],
        ['BLIP4017', 'generation_config.json gives "x" for num_beams, which must be integer', lineOf(CAPTION, 'output caption')],
      ],
    );
  });
  const weights2 = checkpointCopy('blip-caption-a');
  writeFileSync(join(weights2, 'config.json'), JSON.stringify({ ...cfg, text_config: { ...cfg.text_config, bos_token_id: 2.5 } }));
  await fails(CAPTION, weights2, (e) => assert.equal(problem(e, 'BLIP4017').message, 'config.json "text_config" bos_token_id is 2.5, which must be integer'));
  // a string is refused too, not replaced by the default id (a "408" eos generated to the length limit)
  const weights4 = checkpointCopy('blip-caption-a');
  writeFileSync(join(weights4, 'config.json'), JSON.stringify({ ...cfg, text_config: { ...cfg.text_config, sep_token_id: '102' } }));
  // one line, by the key the file has: BLIP stops on sep_token_id (the manifest's eos) and starts from bos_token_id (its decoder start)
  await fails(CAPTION, weights4, (e) => assert.deepEqual((e as CompileError).problems.map((p) => [p.code, p.message]), [['BLIP4017', 'config.json "text_config" sep_token_id is "102", which must be integer']]));
  const weights5 = checkpointCopy('blip-caption-a');
  writeFileSync(join(weights5, 'config.json'), JSON.stringify({ ...cfg, text_config: { ...cfg.text_config, bos_token_id: null } }));
  await fails(CAPTION, weights5, (e) => {
    assert.ok(e instanceof CompileError);
    assert.deepEqual(e.problems.map((p) => [p.code, p.message, p.loc?.line]), [
      ['BLIP4017', 'config.json "text_config" bos_token_id is null, but BLIP\'s decoder starts from it ([DEC]; transformers fails on null too): write the id, or leave the key out for BlipTextConfig\'s default (30522)', lineOf(CAPTION, 'output caption')],
    ]);
  });
  const weights3 = checkpointCopy('blip-caption-a');
  writeFileSync(join(weights3, 'config.json'), JSON.stringify(cfg));
  await fails(CAPTION, weights3, (e) => {
    assert.deepEqual((e as CompileError).problems.map((p) => p.message), [`config.json "text_config" bos_token_id is ${vocab + 5}, outside the language model's vocabulary of ${vocab} tokens`]);
  });
});

test('a generation setting that takes one of several forms (early_stopping: true, false or "never") is one line saying which', async () => {
  const weights = checkpointCopy('blip2-opt-a');
  writeFileSync(join(weights, 'generation_config.json'), JSON.stringify({ early_stopping: 1 }));
  await fails('graphs/blip2-opt.blip', weights, (e) => {
    assert.ok(e instanceof CompileError);
    assert.deepEqual(e.problems.map((p) => [p.code, p.message]), [['BLIP4017', 'generation_config.json gives 1 for early_stopping, which must be boolean or "never"']]);
  });
});

test("BLIP-2's top-level num_query_tokens that is not a number is refused by its key, not read as absent", async () => {
  const weights = checkpointCopy('blip2-opt-a');
  const cfg = JSON.parse(readFileSync(join(weights, 'config.json'), 'utf8'));
  writeFileSync(join(weights, 'config.json'), JSON.stringify({ ...cfg, num_query_tokens: String(cfg.num_query_tokens) }));
  await fails('graphs/blip2-opt.blip', weights, (e) => {
    assert.ok(e instanceof CompileError);
    assert.deepEqual(e.problems.map((p) => [p.code, p.message]), [
      ['BLIP4017', `config.json "num_query_tokens" gives "${cfg.num_query_tokens}" for attribute "queries" of node "qformer" (qformer), which expects an integer`],
    ]);
  });
});

test("the image processor's values are checked by name instead of replaced by defaults, and its size against the encoder's", async () => {
  const edit = (change: Record<string, unknown>): string => {
    const weights = checkpointCopy('blip-caption-a');
    const file = existsSync(join(weights, 'processor_config.json')) ? 'processor_config.json' : 'preprocessor_config.json';
    const cfg = JSON.parse(readFileSync(join(weights, file), 'utf8'));
    Object.assign(cfg.image_processor ?? cfg, change);
    writeFileSync(join(weights, file), JSON.stringify(cfg));
    return weights;
  };
  const vision = JSON.parse(readFileSync(join(FIXTURES, 'blip-caption-a', 'checkpoint', 'config.json'), 'utf8')).vision_config.image_size;
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ image_mean: [0.5, null, 0.4] }, /_config\.json gives \[0\.5,null,0\.4\] for image_mean: expected a number$/],
    [{ image_std: [0.2, 0.2] }, /gives \[0\.2,0\.2\] for image_std: expected 3 items$/],
    [{ resample: 5 }, /gives 5 for resample: a PIL filter blip-graph does not resize with \(0 nearest, 1 lanczos, 2 bilinear, 3 bicubic\)$/],
    [{ size: { height: vision, width: vision + 16 } }, new RegExp(`gives \\[${vision},${vision + 16}\\] for size: expected an integer$`)],
    [{ size: { height: vision + 16, width: vision + 16 } }, new RegExp(`gives ${vision + 16} for the image size, but the vision encoder takes ${vision} × ${vision} images$`)],
    [{ do_rescale: 'yes' }, /gives "yes" for do_rescale: expected true or false$/],
    // transformers 5 keeps the aspect ratio for a shortest edge, which the encoder cannot take; it is not read as a square
    [{ size: { shortest_edge: vision } }, new RegExp(`gives \\{"shortest_edge":${vision}\\} for size: an aspect-preserving resize, but the vision encoder takes one fixed \\{"height", "width"\\}$`)],
  ];
  for (const [change, pattern] of cases) await fails(CAPTION, edit(change), (e) => assert.match(problem(e, 'BLIP4017').message, pattern));
  // a value checked for each channel is one problem, not one per channel
  await fails(CAPTION, edit({ image_std: [0, 0, 0] }), (e) => {
    assert.ok(e instanceof CompileError);
    assert.deepEqual(e.problems.map((p) => p.message), ['processor_config.json gives [0,0,0] for image_std: expected a value > 0']);
  });
});

test('a sampling setting a greedy model never reads is left out with a warning; a single std is widened; the artifact loads', async () => {
  const weights = checkpointCopy('blip-caption-a');
  writeFileSync(join(weights, 'generation_config.json'), JSON.stringify({ temperature: 0, top_p: 0, min_length: 12 }));
  const processor = JSON.parse(readFileSync(join(weights, 'processor_config.json'), 'utf8'));
  processor.image_processor.image_std = 0.5;
  writeFileSync(join(weights, 'processor_config.json'), JSON.stringify(processor));
  const out = join(dirname(weights), 'out');
  try {
    const { model } = loadModel(CAPTION);
    const r = await compile({ model, graphFile: CAPTION, graphText: '', weights, out });
    assert.deepEqual(r.warnings.filter((w) => w.startsWith('generation_config.json')), [
      'generation_config.json gives 0 for top_p, which must be > 0; left out, since the model does not sample (do_sample is false)',
      'generation_config.json gives 0 for temperature, which must be > 0; left out, since the model does not sample (do_sample is false)',
    ]);
    const m = readManifest(out);
    assert.deepEqual(m.preprocess.std, [0.5, 0.5, 0.5], 'a single std for all channels is widened, as image processors do');
    assert.equal(m.preprocess.source.std, 'processor_config.json');
    assert.equal(m.generation!.temperature, undefined);
    assert.equal(m.generation!.min_length, 12);
  } finally {
    rmSync(dirname(weights), { recursive: true, force: true });
  }
});

test('a checkpoint of another model type, or of none, is refused by name', async () => {
  for (const [type, says] of [['clip', 'model_type "clip"'], [undefined, 'no model_type']] as const) {
    const weights = checkpointCopy('blip-caption-a');
    const cfg = JSON.parse(readFileSync(join(weights, 'config.json'), 'utf8'));
    if (type) cfg.model_type = type;
    else delete cfg.model_type;
    writeFileSync(join(weights, 'config.json'), JSON.stringify(cfg));
    await fails(CAPTION, weights, (e) => {
      assert.match(problem(e, 'BLIP4015').message, new RegExp(`config\\.json has ${says}; blip-graph compiles BLIP \\("blip"\\)`));
    });
  }
});

test('a tokenizer blip run could not build is refused before anything is written', async () => {
  const weights = checkpointCopy('blip-caption-a');
  writeFileSync(join(weights, 'tokenizer.json'), readFileSync(join(weights, 'tokenizer.json'), 'utf8').slice(0, 300));
  await fails(CAPTION, weights, (e) => {
    assert.match(problem(e, 'BLIP4001').message, /tokenizer\.json is not valid JSON \(.*\); blip run could not tokenize with it$/);
  });
});

test('a checkpoint without its tokenizer (or InstructBLIP without qformer_tokenizer/) compiles with a warning saying the model will not run', async () => {
  const weights = checkpointCopy('blip-caption-a');
  const root = tmp('noqformertok-');
  try {
    for (const f of readdirSync(weights)) if (/^(tokenizer|vocab|special_tokens)/.test(f)) rmSync(join(weights, f));
    const { model, text } = loadModel(CAPTION);
    const r = await compile({ model, graphFile: CAPTION, graphText: text, weights, out: join(root, 'cap') });
    assert.ok(r.warnings.some((w) => /checkpoint has no tokenizer files \(tokenizer\.json, tokenizer\.model, vocab\.txt, …\): blip run and load\(\) refuse the compiled model without one/.test(w)), r.warnings.join('\n'));
    const ib = join(root, 'checkpoint');
    cpSync(join(FIXTURES, 'instructblip-t5-a', 'checkpoint'), ib, { recursive: true });
    rmSync(join(ib, 'qformer_tokenizer'), { recursive: true });
    const g = loadModel('graphs/instructblip-t5.blip');
    const r2 = await compile({ model: g.model, graphFile: 'graphs/instructblip-t5.blip', graphText: g.text, weights: ib, out: join(root, 'ib') });
    assert.ok(r2.warnings.some((w) => /qformer_tokenizer has no tokenizer files .*: generate\(\) refuses the compiled model without it/.test(w)), r2.warnings.join('\n'));
    // tokenizer_config.json alone (tokenizer.json removed) is no tokenizer either: the same warning, none of it copied
    const half = checkpointCopy('blip-caption-a');
    rmSync(join(half, 'tokenizer.json'));
    const r3 = await compile({ model, graphFile: CAPTION, graphText: text, weights: half, out: join(root, 'half') });
    rmSync(dirname(half), { recursive: true, force: true });
    assert.ok(r3.warnings.some((w) => /checkpoint has no tokenizer files \(tokenizer\.json, tokenizer\.model, vocab\.txt, …\) \(only tokenizer_config\.json, which no tokenizer is built from\): blip run and load\(\) refuse/.test(w)), r3.warnings.join('\n'));
    assert.equal(r3.manifest.tokenizer, undefined);
    assert.ok(!existsSync(join(root, 'half', 'tokenizer')));
  } finally {
    rmSync(dirname(weights), { recursive: true, force: true });
    rmSync(root, { recursive: true, force: true });
  }
});

test('a truncated safetensors file is refused before anything is written', async () => {
  const dir = checkpointCopy('blip-caption-a');
  const f = join(dir, 'model.safetensors');
  writeFileSync(f, readFileSync(f).subarray(0, 100_000));
  await fails(CAPTION, dir, (e) => {
    assert.ok(e instanceof CheckpointError);
    assert.equal(e.code, 'BLIP4004');
    assert.match(e.message, /model\.safetensors: truncated safetensors file: tensor "[^"]+" ends at byte \d+ but the file has 100000 bytes/);
  });
});

test('a corrupt safetensors header is refused', async () => {
  const dir = checkpointCopy('blip-caption-a');
  const f = join(dir, 'model.safetensors');
  const bytes = readFileSync(f);
  bytes.write('#', 9); // inside the JSON header
  writeFileSync(f, bytes);
  await fails(CAPTION, dir, (e) => {
    assert.ok(e instanceof CheckpointError);
    assert.equal(e.code, 'BLIP4003');
    assert.match(e.message, /corrupt safetensors header: the header is not valid JSON/);
  });
});

test('a failure while weights stream removes the temporary directory', async () => {
  // An I32 tensor passes every header check but cannot be read as a weight: it fails mid-write.
  const key = 'text_decoder.bert.encoder.layer.1.output.dense.weight';
  await fails(CAPTION, checkpointCopy('blip-caption-a', (ts) => ts.map((t) => (t.name === key ? { ...t, dtype: 'I32' } : t))), (e) => {
    assert.ok(e instanceof CheckpointError);
    assert.equal(e.code, 'BLIP4005');
    assert.match(e.message, /tensor "text_decoder\.bert\.encoder\.layer\.1\.output\.dense\.weight" has dtype I32/);
  });
});

test('an output directory that is not a compiled model is left alone; a compiled one is replaced', async () => {
  const root = tmp('out-');
  try {
    const { model, text } = loadModel(CAPTION);
    const weights = join(FIXTURES, 'blip-caption-a', 'checkpoint');
    const out = join(root, 'precious');
    mkdirSync(out);
    writeFileSync(join(out, 'notes.txt'), 'mine');
    await assert.rejects(compile({ model, graphFile: CAPTION, graphText: text, weights, out }), (e) => {
      assert.ok(e instanceof CompileError);
      assert.equal(e.code, 'BLIP4016');
      assert.match(e.message, /precious exists and is not a compiled model/);
      return true;
    });
    assert.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine');
    const again = join(root, 'artifact');
    await compile({ model, graphFile: CAPTION, graphText: text, weights, out: again });
    writeFileSync(join(again, 'stale.txt'), 'old');
    await compile({ model, graphFile: CAPTION, graphText: text, weights, out: again });
    assert.ok(existsSync(join(again, 'manifest.json')) && !existsSync(join(again, 'stale.txt')));
    assert.deepEqual(readdirSync(root).sort(), ['artifact', 'precious']);
    // an --out that is a link (current -> artifact) is compiled where it points; the link stays
    const link = join(root, 'current');
    symlinkSync(again, link, 'dir');
    writeFileSync(join(again, 'stale.txt'), 'old');
    const r = await compile({ model, graphFile: CAPTION, graphText: text, weights, out: link });
    assert.ok(lstatSync(link).isSymbolicLink());
    assert.equal(r.out, realpathSync(again));
    assert.ok(existsSync(join(again, 'manifest.json')) && !existsSync(join(again, 'stale.txt')));
    assert.deepEqual(readdirSync(root).sort(), ['artifact', 'current', 'precious']);
    // written as `current/` (shell completion adds the slash), and a link to a folder not made yet
    writeFileSync(join(again, 'stale.txt'), 'old');
    await compile({ model, graphFile: CAPTION, graphText: text, weights, out: link + '/' });
    assert.ok(lstatSync(link).isSymbolicLink() && !existsSync(join(again, 'stale.txt')));
    const ahead = join(root, 'next');
    symlinkSync(join(root, 'v4'), ahead, 'dir');
    await compile({ model, graphFile: CAPTION, graphText: text, weights, out: ahead });
    assert.ok(lstatSync(ahead).isSymbolicLink() && existsSync(join(root, 'v4', 'manifest.json')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('--out is not replaced when its manifest.json is not blip-graph\'s or it holds the checkpoint being compiled (BLIP4016); an --out inside the checkpoint is written', async () => {
  const root = tmp('out-keep-');
  try {
    const { model, text } = loadModel(CAPTION);
    const weights = join(FIXTURES, 'blip-caption-a', 'checkpoint');
    const refused = async (w: string, out: string, message: RegExp) =>
      assert.rejects(compile({ model, graphFile: CAPTION, graphText: text, weights: w, out }), (e) => {
        assert.ok(e instanceof CompileError, String(e));
        assert.equal(e.code, 'BLIP4016');
        assert.match(e.message, message);
        return true;
      });
    // a folder of the user's that happens to hold a manifest.json (a web app's), or one that is not JSON
    const notes = join(root, 'notes');
    mkdirSync(notes);
    writeFileSync(join(notes, 'manifest.json'), '{"name":"my web app"}');
    writeFileSync(join(notes, 'data.txt'), 'precious');
    await refused(weights, notes, /notes exists and is not a compiled model: its manifest\.json is not blip-graph's \(format missing, "blip-graph-artifact" expected\)/);
    writeFileSync(join(notes, 'manifest.json'), '{');
    await refused(weights, notes, /notes exists and is not a compiled model: manifest\.json is not valid JSON/);
    assert.equal(readFileSync(join(notes, 'data.txt'), 'utf8'), 'precious');
    // the checkpoint itself as --out
    const ck = join(root, 'ck');
    cpSync(weights, ck, { recursive: true });
    writeFileSync(join(ck, 'manifest.json'), '{}');
    await refused(ck, ck, /ck exists and is not a compiled model/);
    await compile({ model, graphFile: CAPTION, graphText: text, weights: ck, out: join(root, 'model') });
    cpSync(join(root, 'model', 'manifest.json'), join(ck, 'manifest.json')); // (even with a real manifest)
    await refused(ck, ck, /ck holds the checkpoint being compiled/);
    assert.ok(existsSync(join(ck, 'model.safetensors')) && existsSync(join(ck, 'config.json')));
    // a compiled model that keeps its checkpoint inside it
    const inner = join(root, 'model', 'hf-checkpoint');
    cpSync(weights, inner, { recursive: true });
    await refused(inner, join(root, 'model'), /model holds the checkpoint being compiled \(.*hf-checkpoint/);
    assert.ok(existsSync(join(inner, 'model.safetensors')));
    // an --out inside the checkpoint is fine, and compiled again over itself
    rmSync(join(ck, 'manifest.json'));
    await compile({ model, graphFile: CAPTION, graphText: text, weights: ck, out: join(ck, 'compiled') });
    await compile({ model, graphFile: CAPTION, graphText: text, weights: ck, out: join(ck, 'compiled') });
    assert.ok(existsSync(join(ck, 'compiled', 'manifest.json')) && existsSync(join(ck, 'model.safetensors')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a LLaMA checkpoint with older per-layer rotary buffers (self_attn.rotary_emb.inv_freq) compiles: transformers ignores them too", async () => {
  const extra = (l: number) => ({ name: `language_model.model.layers.${l}.self_attn.rotary_emb.inv_freq`, dtype: 'F32', shape: [4], data: new Uint8Array(new Float32Array([1, 0.1, 0.01, 0.001]).buffer) });
  const weights = checkpointCopy('blip2-llama-a', (ts) => [...ts, extra(0), extra(1)]);
  try {
    const model = loadProgram('graphs/examples/blip2-llama.blip').program!.models[0];
    const r = await compile({ model, graphFile: 'graphs/examples/blip2-llama.blip', graphText: '', weights, out: join(dirname(weights), 'out') });
    assert.ok(r.manifest.graphs.decoder);
  } finally {
    rmSync(dirname(weights), { recursive: true, force: true });
  }
});

test("special ids a config leaves out take the language model's transformers defaults (T5 eos 1; OPT bos 2, pad 1; no pad id at all: the eos, as generate() pads)", async () => {
  for (const [fixture, graph, drop, want] of [
    ['blip2-t5-a', 'graphs/blip2-t5.blip', ['eos_token_id'], { eos_token_id: [1] }],
    ['blip2-opt-a', 'graphs/blip2-opt.blip', ['bos_token_id', 'pad_token_id'], { bos_token_id: 2, pad_token_id: 1 }],
    // LlamaConfig has no pad id; the fixture's tokenizer neither
    ['instructblip-vicuna-b', 'graphs/instructblip-vicuna.blip', [], { eos_token_id: [2], pad_token_id: 2 }],
  ] as const) {
    const weights = checkpointCopy(fixture);
    try {
      const cfg = JSON.parse(readFileSync(join(weights, 'config.json'), 'utf8'));
      for (const k of drop) delete cfg.text_config[k];
      writeFileSync(join(weights, 'config.json'), JSON.stringify(cfg));
      const { model, text } = loadModel(graph);
      const r = await compile({ model, graphFile: graph, graphText: text, weights, out: join(dirname(weights), 'out') });
      for (const [k, v] of Object.entries(want)) assert.deepEqual((r.manifest.text as unknown as Record<string, unknown>)[k], v, `${fixture} ${k}`);
    } finally {
      rmSync(dirname(weights), { recursive: true, force: true });
    }
  }
});

test('NaN and infinite weights (a corrupt checkpoint transformers would load) compile with a warning naming the tensor and the counts', async () => {
  const key = 'text_decoder.bert.encoder.layer.1.output.dense.weight';
  const inf = 'vision_model.encoder.layers.0.mlp.fc1.weight';
  const weights = checkpointCopy('blip-caption-a', (ts) =>
    ts.map((t) => {
      if (t.name !== key && t.name !== inf) return t;
      const f = new Float32Array(t.data.slice().buffer);
      if (t.name === key) [f[0], f[5], f[7]] = [NaN, NaN, -Infinity];
      else f[3] = Infinity;
      return { ...t, data: new Uint8Array(f.buffer) };
    }),
  );
  try {
    const { model, text } = loadModel(CAPTION);
    const r = await compile({ model, graphFile: CAPTION, graphText: text, weights, out: join(dirname(weights), 'out') });
    assert.deepEqual(r.warnings.filter((w) => w.includes('corrupt')).sort(), [
      `checkpoint tensor ${key} has 2 NaN values and 1 infinite value: the checkpoint is corrupt there, and the model's outputs will be NaN`,
      `checkpoint tensor ${inf} has 1 infinite value: the checkpoint is corrupt there, and the model's outputs will be NaN`,
    ]);
  } finally {
    rmSync(dirname(weights), { recursive: true, force: true });
  }
});

test('--dtype fp16: weights beyond float16\'s range are named with their count (they become infinite); an infinity already there is not counted again', async () => {
  const key = 'text_decoder.bert.encoder.layer.0.output.dense.weight';
  const weights = checkpointCopy('blip-caption-a', (ts) =>
    ts.map((t) => {
      if (t.name !== key) return t;
      const f = new Float32Array(t.data.slice().buffer);
      [f[1], f[2], f[4], f[6]] = [1e6, -70000, 65504, Infinity];
      return { ...t, data: new Uint8Array(f.buffer) };
    }),
  );
  try {
    const { model, text } = loadModel(CAPTION);
    const r = await compile({ model, graphFile: CAPTION, graphText: text, weights, out: join(dirname(weights), 'out'), dtype: 'float16' });
    assert.deepEqual(
      r.warnings.filter((w) => w.includes('float16\'s range')),
      [`weight ${key} has 2 values beyond float16's range (±65504), stored as infinite by --dtype fp16: the model's outputs may be NaN; compile it with --dtype fp32`],
    );
    const f32 = await compile({ model, graphFile: CAPTION, graphText: text, weights, out: join(dirname(weights), 'out32') });
    assert.deepEqual(f32.warnings.filter((w) => w.includes('float16')), []);
  } finally {
    rmSync(dirname(weights), { recursive: true, force: true });
  }
});

test('an --out the machine will not create is one BLIP4018 line naming it and why, with nothing left behind', async () => {
  const root = tmp('unwritable-');
  try {
    const { model, text } = loadModel(CAPTION);
    const weights = join(FIXTURES, 'blip-caption-a', 'checkpoint');
    writeFileSync(join(root, 'a-file'), 'not a folder');
    // a file where a folder belongs; and (Linux) a place that takes no new entries, where Node's own
    // recursive mkdir retries forever
    const outs: Array<[string, RegExp]> = [[join(root, 'a-file', 'out'), /a part of the path is a file, not a folder \(ENOTDIR\)/]];
    if (existsSync('/proc/self')) outs.push(['/proc/blip-graph-test-out', /\(ENOENT\)/]);
    for (const [out, why] of outs) {
      await assert.rejects(compile({ model, graphFile: CAPTION, graphText: text, weights, out }), (e) => {
        assert.ok(e instanceof CompileError, String(e));
        assert.equal(e.code, 'BLIP4018');
        assert.ok(e.message.startsWith(`cannot write the compiled model to ${out}: `), e.message);
        assert.match(e.message, why);
        assert.doesNotMatch(e.message, /\n/);
        return true;
      });
    }
    assert.deepEqual(readdirSync(root), ['a-file']);
    // missing parents are created, as mkdir -p does
    const deep = join(root, 'x', 'y', 'model');
    await compile({ model, graphFile: CAPTION, graphText: text, weights, out: deep });
    assert.ok(existsSync(join(deep, 'manifest.json')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('widths known only from the checkpoint are checked along the edges at compile time', async () => {
  // In blip2-opt-legacy the vision width is 32 and the Q-Former's 24: a projection wired straight to
  // the vision encoder checks clean (no width is pinned) but cannot compile.
  const text = readFileSync('graphs/blip2-opt.blip', 'utf8').replace('linear(qformer)', 'linear(vision)');
  await fails(
    'graphs/blip2-opt.blip',
    checkpointCopy('blip2-opt-legacy'),
    (e) => {
      const p = problem(e, 'BLIP2040');
      assert.match(p.message, /24/);
      assert.match(p.message, /32/);
      assert.match(p.message, /resolved from the checkpoint/);
      assert.equal(p.loc?.line, lineOf('graphs/blip2-opt.blip', 'node projection'));
    },
    text,
  );
});
