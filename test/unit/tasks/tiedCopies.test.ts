// Checkpoints that store a tied tensor apart: an untied fine-tune's BLIP LM head or head bias, a head
// stored in place of the word embeddings, T5's decoder / encoder embeddings or lm_head, a T5 without
// `shared`, an OPT / LLaMA lm_head next to the token embeddings with text_config tying them or not.
// Each variant of test/fixtures/untied/expected.json (test/oracle/untied.py) is rebuilt here from its
// base fixture by the same edits, compiled with the shipped graph, and must generate transformers'
// greedy tokens; a variant transformers loads with missing keys must be refused, naming them. A stored
// copy equal to the tensor it is tied to is stored once: the artifact is the base fixture's, byte for byte.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, load } from '../../../src/index.js';
import { SafetensorsFile, encodeSafetensors, DTYPE_SIZE } from '../../../src/weights/safetensors.js';
import { GRAPH_OF, compileFixture, expectedRow, fixturePath, repoRoot, tempDir } from './harness.js';

type Edit = { set: string; from: string; reverse: boolean } | { drop: string };
interface Variant {
  name: string;
  fixture: string;
  edits: Edit[];
  config: Record<string, unknown>;
  case: { name: string; prompt?: string | null; questions?: string[] };
  missing_keys: string[];
  generation?: Array<{ kwargs: { max_new_tokens: number }; new_tokens: number[][]; margins: number[][] }>;
}

const untied = JSON.parse(readFileSync(fixturePath('untied', 'expected.json'), 'utf8')) as { variants: Variant[] };
const tmp = tempDir('blip-tied-copies-');
after(() => tmp.remove());

type Tensor = { name: string; dtype: string; shape: number[]; data: Uint8Array };

/** `fixture`'s checkpoint with its tensors edited as test/oracle/untied.py edits them, and config.json keys set. */
function editedCheckpoint(fixture: string, name: string, edits: Edit[], config: Record<string, unknown> = {}): string {
  const src = fixturePath(fixture, 'checkpoint');
  const dir = join(tmp.dir, name);
  mkdirSync(dir);
  for (const f of readdirSync(src)) if (f !== 'model.safetensors' && f !== 'config.json') copyFileSync(join(src, f), join(dir, f));
  const st = SafetensorsFile.open(join(src, 'model.safetensors'));
  const tensors = new Map<string, Tensor>([...st.tensors.values()].map((t) => [t.name, { name: t.name, dtype: t.dtype, shape: t.shape, data: st.readRaw(t.name) }]));
  st.close();
  for (const e of edits) {
    if ('drop' in e) {
      assert.ok(tensors.delete(e.drop), e.drop);
      continue;
    }
    const from = tensors.get(e.from)!;
    const data = new Uint8Array(from.data); // a copy
    if (e.reverse) {
      const row = (from.data.length / from.shape[0]) | 0; // bytes per entry of the first axis
      assert.equal(row % DTYPE_SIZE[from.dtype], 0);
      for (let i = 0; i < from.shape[0]; i++) data.set(from.data.subarray(i * row, (i + 1) * row), (from.shape[0] - 1 - i) * row);
    }
    tensors.set(e.set, { ...from, name: e.set, data });
  }
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors([...tensors.values()]));
  const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
  for (const [k, v] of Object.entries(config)) {
    if (k.startsWith('text_config.')) cfg.text_config[k.slice('text_config.'.length)] = v;
    else cfg[k] = v;
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg, null, 2));
  return dir;
}

const graphOf = (fixture: string) => join(repoRoot(), 'graphs', `${GRAPH_OF[fixture]}.blip`);

for (const v of untied.variants) {
  test(`a stored tied copy as transformers loads it: ${v.name} (${v.missing_keys.length ? `missing ${v.missing_keys.join(', ')}` : 'greedy tokens'})`, async (t) => {
    const weights = editedCheckpoint(v.fixture, v.name, v.edits, v.config);
    const out = join(tmp.dir, `${v.name}-out`);
    if (v.missing_keys.length) {
      // transformers would run a newly initialised head: refused, the missing tensors named and nothing
      // else (the unused cls.predictions.bias is no BLIP4011)
      await assert.rejects(compile(graphOf(v.fixture), { weights, out }), (e: Error & { code?: string; problems?: Array<{ code: string; message: string }> }) => {
        const problems = e.problems ?? [{ code: e.code ?? '', message: e.message }];
        assert.deepEqual(problems.map((p) => p.code), v.missing_keys.map(() => 'BLIP4010'), e.message);
        assert.deepEqual(problems.map((p) => /tensor "([^"]+)"/.exec(p.message)?.[1]).sort(), v.missing_keys, e.message);
        return true;
      });
      return;
    }
    await compile(graphOf(v.fixture), { weights, out });
    const model = await load(out, { threads: 1 });
    try {
      const base = JSON.parse(readFileSync(fixturePath(v.fixture, 'expected.json'), 'utf8')) as { images: string[] };
      const images = base.images.map((n) => fixturePath('images', n));
      const g = v.generation![0]!;
      const res = await model.generate(images, { maxNewTokens: g.kwargs.max_new_tokens, numBeams: 1, doSample: false, minNewTokens: 0, repetitionPenalty: 1, noRepeatNgramSize: 0, prompt: v.case.questions ?? v.case.prompt ?? undefined });
      const eos = model.manifest.text.eos_token_id;
      res.forEach((r, b) => {
        // transformers' new tokens through the first EOS, up to a near tie
        const { ids, certain } = expectedRow(g, b, eos);
        assert.deepEqual(r.tokenIds.slice(0, certain), ids.slice(0, certain), `${v.name} row ${b}`);
        if (certain === ids.length) assert.equal(r.tokenIds.length, ids.length, `${v.name} row ${b}: length`);
      });
      t.diagnostic(`${res.length} rows: ${res.map((r) => r.tokenIds.join(' ')).join(' | ')}`);
    } finally {
      await model.close();
    }
  });
}

/** encode.onnx, decoder.onnx and weights.bin of two artifacts are the same bytes; the manifests count the same weights. */
function assertSameArtifact(a: string, b: string): void {
  for (const f of ['encode.onnx', 'decoder.onnx', 'weights.bin']) assert.ok(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), `${f} differs`);
  const weights = (d: string) => JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8')).weights;
  assert.deepEqual(weights(b), weights(a));
}

test('a BLIP head and head bias stored equal to the word embeddings and cls.predictions.bias are stored once: the artifact is the base fixture\'s', async () => {
  const fixture = 'blip-caption-a';
  const weights = editedCheckpoint(fixture, 'blip-equal-copies', [
    { set: 'text_decoder.cls.predictions.decoder.weight', from: 'text_decoder.bert.embeddings.word_embeddings.weight', reverse: false },
    { set: 'text_decoder.cls.predictions.decoder.bias', from: 'text_decoder.cls.predictions.bias', reverse: false },
  ]);
  const out = join(tmp.dir, 'blip-equal-copies-out');
  await compile(graphOf(fixture), { weights, out });
  assertSameArtifact(await compileFixture(fixture, tmp.dir), out);
});

test("T5 decoder and encoder embeddings stored equal to `shared` are stored once: the artifact is the base fixture's", async () => {
  const fixture = 'blip2-t5-a';
  const weights = editedCheckpoint(fixture, 't5-equal-copies', [
    { set: 'language_model.decoder.embed_tokens.weight', from: 'language_model.shared.weight', reverse: false },
    { set: 'language_model.encoder.embed_tokens.weight', from: 'language_model.shared.weight', reverse: false },
  ]);
  const out = join(tmp.dir, 't5-equal-copies-out');
  await compile(graphOf(fixture), { weights, out });
  assertSameArtifact(await compileFixture(fixture, tmp.dir), out);
});

test("T5's lm_head stored equal to `shared` is `shared`, stored once: the artifact is that of a checkpoint without lm_head", async () => {
  const fixture = 'blip2-t5-a';
  const [equal, none] = await Promise.all([
    compileEdited(fixture, 't5-head-equal', [{ set: 'language_model.lm_head.weight', from: 'language_model.shared.weight', reverse: false }]),
    compileEdited(fixture, 't5-no-head', [{ drop: 'language_model.lm_head.weight' }]),
  ]);
  assertSameArtifact(none, equal);
});

const OPT_EMBED = 'language_model.model.decoder.embed_tokens.weight';
const LLAMA_EMBED = 'language_model.model.embed_tokens.weight';
const HEAD = 'language_model.lm_head.weight';

test("an OPT lm_head stored equal to the token embeddings, the config tying them, is stored once: the artifact is the base fixture's", async () => {
  const fixture = 'blip2-opt-a';
  const out = await compileEdited(fixture, 'opt-head-equal', [{ set: HEAD, from: OPT_EMBED, reverse: false }]);
  assertSameArtifact(await compileFixture(fixture, tmp.dir), out);
});

test("a LLaMA lm_head stored equal to the token embeddings, text_config tying them, is stored once: the artifact is that of the head left out", async () => {
  const fixture = 'blip2-llama-a';
  const tie = { 'text_config.tie_word_embeddings': true };
  const [equal, none] = await Promise.all([
    compileEdited(fixture, 'llama-tied-head-equal', [{ set: HEAD, from: LLAMA_EMBED, reverse: false }], tie),
    compileEdited(fixture, 'llama-tied-no-head', [{ drop: HEAD }], tie),
  ]);
  assertSameArtifact(none, equal);
});

test('an lm_head equal to the token embeddings stays a tensor of its own when text_config does not tie them, as transformers keeps two parameters', async () => {
  const fixture = 'blip2-opt-a';
  const out = await compileEdited(fixture, 'opt-untied-head-equal', [{ set: HEAD, from: OPT_EMBED, reverse: false }], { 'text_config.tie_word_embeddings': false });
  const weights = (d: string) => JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8')).weights as { tensors: number; parameters: number };
  const [base, untied] = [weights(await compileFixture(fixture, tmp.dir)), weights(out)];
  const [V, E] = [480, 32];
  assert.deepEqual([untied.tensors, untied.parameters], [base.tensors + 1, base.parameters + V * E]);
});

/** `fixture` edited as editedCheckpoint does, compiled with its shipped graph; returns the artifact directory. */
async function compileEdited(fixture: string, name: string, edits: Edit[], config: Record<string, unknown> = {}): Promise<string> {
  const out = join(tmp.dir, `artifact-${name}-out`);
  await compile(graphOf(fixture), { weights: editedCheckpoint(fixture, `artifact-${name}`, edits, config), out });
  return out;
}
