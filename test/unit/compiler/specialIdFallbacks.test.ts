// The special ids a config.json leaves unset, or sets to null, and the ones it sets outside the
// vocabulary. transformers 5.12.1 loads text_config.pad_token_id: null (OPTConfig pad None) and a
// LlamaConfig without pad_token_id (None) alike, and generate() then pads with the first EOS id
// ("Setting pad_token_id to eos_token_id"): the manifest's pad is that id (src/lower/conventions.ts),
// not the class default (OPTConfig's 1) nor 0. An id equal to the vocabulary size is one past the
// embedding table: BLIP4017.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compile, CompileError } from '../../../src/index.js';
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
    else copyFileSync(join(src, f), join(dir, f));
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
