// The special ids a config.json leaves unset, or sets to null, and the ones it sets outside the
// vocabulary. transformers 5.12.1 loads text_config.pad_token_id: null (OPTConfig pad None) and a
// LlamaConfig without pad_token_id (None) alike, and generate() then pads with the first EOS id
// ("Setting pad_token_id to eos_token_id"): the manifest's pad is that id (src/lower/conventions.ts),
// not the class default (OPTConfig's 1) nor 0. An id equal to the vocabulary size is one past the
// embedding table: BLIP4017.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compile, CompileError, load } from '../../../src/index.js';
import { FIXTURES, tmp } from './harness.js';

type Json = Record<string, any>;
const root = tmp('blip-special-ids-');
after(() => rmSync(root, { recursive: true, force: true }));
let made = 0;

/** The fixture's checkpoint with `edit(config)` applied to config.json (weights linked, not copied). */
function editedCheckpoint(fixture: string, edit: (c: Json) => void): string {
  const src = join(FIXTURES, fixture, 'checkpoint');
  const dir = join(root, `checkpoint-${made++}`);
  mkdirSync(dir);
  for (const f of readdirSync(src)) {
    if (f === 'config.json') continue;
    if (f.endsWith('.safetensors')) symlinkSync(resolve(src, f), join(dir, f));
    else cpSync(join(src, f), join(dir, f), { recursive: true }); // (qformer_tokenizer/ is a folder)
  }
  const config = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
  edit(config);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

const compileWith = (graph: string, fixture: string, edit: (c: Json) => void) => compile(graph, { weights: editedCheckpoint(fixture, edit), out: join(root, `out-${made}`) });

test('BLIP-2 OPT: text_config.pad_token_id null compiles, the pad the first EOS id (2), not OPTConfig\'s default 1', async () => {
  const r = await compileWith('graphs/blip2-opt.blip', 'blip2-opt-a', (c) => {
    assert.equal(c.text_config.pad_token_id, 1, "the fixture's own pad id");
    c.text_config.pad_token_id = null;
  });
  assert.deepEqual([r.manifest.text.pad_token_id, r.manifest.text.eos_token_id], [2, [2]]);
});

test('LLaMA: a text_config without pad_token_id gets the first EOS id as its pad (2; with eos_token_id [3, 2], 3)', async () => {
  const llama = 'graphs/examples/blip2-llama.blip';
  const noPad = (c: Json) => {
    assert.equal(c.text_config.pad_token_id, 0, "the fixture's own pad id");
    delete c.text_config.pad_token_id;
  };
  const r = await compileWith(llama, 'blip2-llama-a', noPad);
  assert.deepEqual([r.manifest.text.pad_token_id, r.manifest.text.eos_token_id], [2, [2]]);
  const two = await compileWith(llama, 'blip2-llama-a', (c) => (noPad(c), (c.text_config.eos_token_id = [3, 2])));
  assert.deepEqual([two.manifest.text.pad_token_id, two.manifest.text.eos_token_id], [3, [3, 2]]);
});

test('a bos or eos id equal to the vocabulary size (one past the embeddings) is BLIP4017; the last id compiles', async () => {
  for (const key of ['bos_token_id', 'eos_token_id']) {
    await assert.rejects(
      compileWith('graphs/blip2-opt.blip', 'blip2-opt-a', (c) => (c.text_config[key] = c.text_config.vocab_size)),
      (e: unknown) => {
        assert.ok(e instanceof CompileError);
        assert.deepEqual(
          e.problems.map((p) => [p.code, p.message]),
          [['BLIP4017', `config.json "text_config" ${key} is 480, outside the language model's vocabulary of 480 tokens`]],
        );
        return true;
      },
    );
  }
  const last = await compileWith('graphs/blip2-opt.blip', 'blip2-opt-a', (c) => (c.text_config.bos_token_id = c.text_config.vocab_size - 1));
  assert.equal(last.manifest.text.bos_token_id, 479);
});

test('T5: a text_config without decoder_start_token_id (left out or null) starts the decoder from bos_token_id, as transformers\' generate() falls back; with neither, BLIP4017 at compile', async () => {
  for (const [graph, fixture] of [['graphs/blip2-t5.blip', 'blip2-t5-a'], ['graphs/instructblip-t5.blip', 'instructblip-t5-a']]) {
    const own = (c: Json) => assert.deepEqual([c.text_config.decoder_start_token_id, c.text_config.bos_token_id], [0, 1], "the fixture's own ids");
    const missing = await compileWith(graph, fixture, (c) => (own(c), delete c.text_config.decoder_start_token_id));
    assert.equal(missing.manifest.text.decoder_start_token_id, 1);
    const asNull = await compileWith(graph, fixture, (c) => (own(c), (c.text_config.decoder_start_token_id = null)));
    assert.equal(asNull.manifest.text.decoder_start_token_id, 1);
    for (const bos of [undefined, null]) {
      await assert.rejects(
        compileWith(graph, fixture, (c) => (own(c), delete c.text_config.decoder_start_token_id, (c.text_config.bos_token_id = bos))),
        (e: unknown) => {
          assert.ok(e instanceof CompileError);
          assert.deepEqual(
            e.problems.map((p) => [p.code, p.message]),
            [['BLIP4017', 'config.json "text_config" gives no decoder_start_token_id and no bos_token_id (left out or null): the decoder starts from one of them, and transformers refuses to generate without; write decoder_start_token_id (Flan-T5\'s is 0)']],
          );
          assert.ok(e.problems[0]!.loc, 'at the generate output');
          return true;
        },
      );
    }
  }
});

test('T5: a bos_token_id outside the vocabulary that stands in for the decoder start is one line, naming bos_token_id (the key the file has)', async () => {
  for (const [graph, fixture] of [['graphs/blip2-t5.blip', 'blip2-t5-a'], ['graphs/instructblip-t5.blip', 'instructblip-t5-a']]) {
    for (const start of [undefined, null]) {
      await assert.rejects(
        compileWith(graph, fixture, (c) => ((c.text_config.decoder_start_token_id = start), (c.text_config.bos_token_id = c.text_config.vocab_size))),
        (e: unknown) => {
          assert.ok(e instanceof CompileError);
          const v = (e.problems[0]!.message.match(/vocabulary of (\d+)/) ?? [])[1];
          // (not also 'decoder_start_token_id (left out: the decoder starts from bos_token_id) is …' for the one value)
          assert.deepEqual(e.problems.map((p) => p.message), [`config.json "text_config" bos_token_id is ${v}, outside the language model's vocabulary of ${v} tokens`], `${fixture}, decoder_start_token_id ${start}`);
          return true;
        },
      );
    }
  }
});

test('eos_token_id null is no end-of-sequence id (eos_token_id [] in the manifest), as transformers reads None: generation runs to its length', async () => {
  // transformers 5.12.1, InstructBlipForConditionalGeneration.generate(max_new_tokens=12) on photo_64x48.jpg,
  // "What is unusual about this image?" (.bench/review/configs/eosnull.py): the fixture's own config stops at 2
  const noEos = [53, 181, 425, 311, 498, 557, 5, 495, 64, 2, 536, 364];
  const r = await compileWith('graphs/instructblip-vicuna.blip', 'instructblip-vicuna-a', (c) => {
    assert.deepEqual([c.text_config.eos_token_id, c.text_config.pad_token_id], [2, 0], "the fixture's own ids");
    c.text_config.eos_token_id = null;
  });
  assert.deepEqual([r.manifest.text.eos_token_id, r.manifest.text.pad_token_id], [[], 0]);
  const model = await load(r.out);
  try {
    const [g] = await model.generate([join(FIXTURES, 'images', 'photo_64x48.jpg')], { prompt: 'What is unusual about this image?', maxNewTokens: 12, numBeams: 1, repetitionPenalty: 1 });
    assert.deepEqual(g!.tokenIds, noEos);
  } finally {
    await model.close();
  }
  for (const [graph, fixture] of [['graphs/blip2-opt.blip', 'blip2-opt-a'], ['graphs/blip2-t5.blip', 'blip2-t5-a']]) {
    const m = await compileWith(graph, fixture, (c) => (c.text_config.eos_token_id = null));
    assert.deepEqual(m.manifest.text.eos_token_id, [], fixture);
  }
  // and no pad id to fall back on: refused by name
  await assert.rejects(
    compileWith('graphs/instructblip-vicuna.blip', 'instructblip-vicuna-a', (c) => ((c.text_config.eos_token_id = null), delete c.text_config.pad_token_id)),
    (e: unknown) => {
      assert.ok(e instanceof CompileError);
      assert.deepEqual(e.problems.map((p) => [p.code, p.message]), [
        ['BLIP4017', 'config.json "text_config" gives no pad_token_id (left out or null) and eos_token_id null: the compiled model needs a padding id (a batch\'s shorter prompts are padded with it when the tokenizer has none); write pad_token_id'],
      ]);
      assert.ok(e.problems[0]!.loc, 'at the generate output');
      return true;
    },
  );
});
