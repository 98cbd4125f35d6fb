// runtime/tokenizers against transformers 5.12.1 (fixtures: test/oracle/build_tokenizers.py and the
// checkpoint fixtures of test/oracle/{blip,blip2,instructblip}.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blipDecoderPrompt, encoderText, llmPrompt, loadTokenizer, parseSentencePieceModel, qformerPrompt, toInt64 } from '../../../runtime/tokenizers/index.js';
import { TokenizerLoadError } from '../../../runtime/errors.js';
import { forEachGraphemeCluster } from '../../../runtime/tokenizers/precompiled.js';
import { fixturePath, readFixtureJson } from './fixtures.js';

interface TokCase {
  text: string;
  ids: number[];
  ids_no_special: number[];
  decoded: string;
  decoded_skip_special: string;
  tokens: string[];
}
interface TokFixture {
  all_special_ids: number[];
  batch: { texts: string[]; input_ids: number[][]; attention_mask: number[][] } | null;
  cases: TokCase[];
  decode_cases: Array<{ ids: number[]; decoded: string; decoded_skip_special: string }>;
  class: string;
  len: number;
  padding_side: 'left' | 'right';
  special: Record<string, { id: number; token: string }>;
  vocab_size: number;
}

const cases = readFixtureJson<Record<string, TokFixture>>('tokenizers', 'cases.json');
const NAMES = ['bert', 'opt', 't5', 'llama', 'llama-spm', 'bert-vocab', 'opt-vocab', 't5-spm'];

for (const name of NAMES) {
  test(`${name}: encode / decode / batch / special tokens as transformers`, () => {
    const fx = cases[name];
    assert.ok(fx, `no fixture for ${name}`);
    const tok = loadTokenizer(fixturePath('tokenizers', name));
    assert.equal(tok.tokenizerClass, fx.class);
    assert.equal(tok.vocabSize, fx.vocab_size);
    assert.equal(tok.length, fx.len);
    assert.equal(tok.paddingSide, fx.padding_side);
    assert.deepEqual(tok.allSpecialIds, [...fx.all_special_ids].sort((a, b) => a - b));
    for (const [k, v] of Object.entries(fx.special)) {
      assert.equal(tok.specialId(k), v.id, `${k}`);
      assert.equal(tok.specialToken(k), v.token, `${k}`);
    }
    assert.ok(fx.cases.length >= 20);
    for (const c of fx.cases) {
      const what = `${name} ${JSON.stringify(c.text)}`;
      assert.deepEqual(tok.encode(c.text), c.ids, what);
      assert.deepEqual(tok.encode(c.text, { addSpecialTokens: false }), c.ids_no_special, what);
      assert.equal(tok.decode(c.ids), c.decoded, what);
      assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.decoded_skip_special, what);
    }
    for (const c of fx.decode_cases) {
      assert.equal(tok.decode(c.ids), c.decoded, `${name} decode ${JSON.stringify(c.ids.slice(0, 8))}...`);
      assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.decoded_skip_special);
    }
    if (fx.batch) {
      const b = tok.encodeBatch(fx.batch.texts);
      assert.deepEqual(b.inputIds, fx.batch.input_ids);
      assert.deepEqual(b.attentionMask, fx.batch.attention_mask);
    }
  });
}

test('BERT spaces apart the ends of its CJK ranges: U+9FFF and the compatibility ideographs U+F900-U+FAFF', () => {
  // ids from transformers 5.12.1 (BertTokenizer of this checkpoint): a CJK character is its own word
  // ([UNK] here, 1) between 'a' (43) and 'b' (44); a character outside the ranges joins 'a' and 'b'
  // into one unknown word
  const tok = loadTokenizer(fixturePath('blip-caption-a', 'checkpoint'));
  const expected: Array<[string, number[]]> = [
    ['a\u4e00b', [2, 43, 1, 44, 3]],
    ['a\u9fffb', [2, 43, 1, 44, 3]],
    ['a\ua000b', [2, 1, 3]],
    ['a\u4dffb', [2, 1, 3]],
    ['a\uf900b', [2, 43, 1, 44, 3]],
    ['a\ufaffb', [2, 43, 1, 44, 3]],
    ['a\uf8ffb', [2, 43, 130, 3]],
  ];
  for (const [text, ids] of expected) assert.deepEqual(tok.encode(text), ids, JSON.stringify(text));
});

test('decoding drops ids beyond the vocabulary (padded LM vocabularies)', () => {
  for (const name of NAMES) {
    const tok = loadTokenizer(fixturePath('tokenizers', name));
    const c = cases[name].cases[0];
    const beyond = [tok.length, tok.length + 7, 1_000_000];
    assert.equal(tok.decode([...beyond, ...c.ids, ...beyond], { skipSpecialTokens: true }), c.decoded_skip_special, name);
    assert.equal(tok.decode([...c.ids, ...beyond.map(BigInt)]), c.decoded, name);
    assert.equal(tok.decode(beyond), '');
  }
});

test('a SentencePiece-only checkpoint converts to the same tokenizer as its tokenizer.json', () => {
  const spm = loadTokenizer(fixturePath('tokenizers', 'llama-spm'));
  const json = loadTokenizer(fixturePath('tokenizers', 'llama'));
  const model = parseSentencePieceModel(new Uint8Array(readFileSync(fixturePath('tokenizers', 'llama-spm', 'tokenizer.model'))));
  assert.equal(model.pieces.length, cases['llama-spm'].vocab_size);
  assert.equal(model.trainer.modelType, 2);
  assert.equal(model.trainer.byteFallback, true);
  for (const c of cases.llama.cases) assert.deepEqual(spm.encode(c.text, { addSpecialTokens: false }), json.encode(c.text, { addSpecialTokens: false }), c.text);
});

test('tokenizer load failures are BLIP5020 / BLIP5021 one-liners', () => {
  const dir = mkdtempSync(join(tmpdir(), 'blip-tok-'));
  try {
    assert.throws(() => loadTokenizer(join(dir, 'missing')), (e: unknown) => e instanceof TokenizerLoadError && e.code === 'BLIP5020' && /does not exist/.test(e.message));
    assert.throws(() => loadTokenizer(dir), (e: unknown) => e instanceof TokenizerLoadError && /has no tokenizer/.test(e.message));
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
    assert.throws(() => loadTokenizer(dir), (e: unknown) => e instanceof TokenizerLoadError && /not valid JSON/.test(e.message) && !e.message.includes('\n'));
    rmSync(join(dir, 'tokenizer.json'));
    writeFileSync(join(dir, 'tokenizer.model'), Buffer.from([0x0a, 0xff, 0xff, 0xff]));
    assert.throws(() => loadTokenizer(dir), (e: unknown) => e instanceof TokenizerLoadError && e.code === 'BLIP5021');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('addSpecialToken appends <image> as the processor does and encodes it whole', () => {
  const dir = mkdtempSync(join(tmpdir(), 'blip-tok-'));
  try {
    for (const f of readdirSync(fixturePath('tokenizers', 'opt'))) copyFileSync(fixturePath('tokenizers', 'opt', f), join(dir, f));
    const tok = loadTokenizer(dir);
    const n = tok.length;
    const id = tok.addSpecialToken('<image>');
    assert.equal(id, n);
    assert.equal(tok.length, n + 1);
    assert.equal(tok.addSpecialToken('<image>'), id);
    assert.deepEqual(tok.encode('<image><image>', { addSpecialTokens: false }), [id, id]);
    assert.equal(tok.decode([id, ...cases.opt.cases[0].ids], { skipSpecialTokens: true }), cases.opt.cases[0].decoded_skip_special);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- checkpoint fixtures: the tokenizer files a model ships, prompts as the processors build them ----

interface Gen {
  name: string;
  prompt_length: number;
  sequences: number[][];
  text: string[];
}
interface Case {
  name: string;
  prompt: string | string[] | null;
  generation: Gen[];
  processor_input_ids?: number[][] | null;
  decoder_input_ids?: number[][];
  input_ids?: number[][];
  attention_mask?: number[][];
  qformer_input_ids?: number[][];
  qformer_attention_mask?: number[][];
  padding_side?: 'left' | 'right';
  questions?: string[];
}
interface Expected {
  cases?: Case[];
  special_ids?: Record<string, number | null>;
  num_query_tokens?: number;
  image_token_index?: number;
  tokenizer_len?: number;
  qformer_tokenizer_len?: number;
  config?: { text_config?: { bos_token_id?: number } };
}

const checkpoints = existsSync(fixturePath())
  ? readdirSync(fixturePath()).filter((d) => existsSync(fixturePath(d, 'checkpoint', 'tokenizer_config.json')) && existsSync(fixturePath(d, 'expected.json')))
  : [];

test('checkpoint fixtures exist', () => {
  assert.ok(checkpoints.length >= 5, `checkpoints: ${checkpoints.join(', ')}`);
});

for (const fx of checkpoints) {
  test(`${fx}: generated ids decode to transformers' text; prompts build as the processor does`, () => {
    const exp = readFixtureJson<Expected>(fx, 'expected.json');
    const dir = fixturePath(fx, 'checkpoint');
    const tok = loadTokenizer(dir);
    if (exp.tokenizer_len !== undefined) assert.equal(tok.length, exp.tokenizer_len);
    const qdir = join(dir, 'qformer_tokenizer');
    const qtok = existsSync(qdir) ? loadTokenizer(qdir) : null;
    if (exp.qformer_tokenizer_len !== undefined) assert.equal(qtok?.length, exp.qformer_tokenizer_len);
    const family = fx.startsWith('instructblip') ? 'instructblip' : fx.startsWith('blip2') ? 'blip2' : 'blip';
    for (const c of exp.cases ?? []) {
      for (const g of c.generation) {
        const newTokens = g.sequences.map((s) => s.slice(g.prompt_length));
        assert.deepEqual(tok.batchDecode(newTokens, { skipSpecialTokens: true }), g.text, `${fx} ${c.name} ${g.name}`);
      }
      const batch = (c.input_ids ?? c.decoder_input_ids ?? [[]]).length;
      const prompts = c.prompt === null ? null : Array.isArray(c.prompt) ? c.prompt : new Array<string>(batch).fill(c.prompt);
      if (family === 'blip' && c.decoder_input_ids && !c.questions) {
        if (c.processor_input_ids) assert.deepEqual(encoderText(tok, prompts!).inputIds, c.processor_input_ids);
        const p = blipDecoderPrompt(tok, prompts, batch, exp.special_ids!.bos_token_id!);
        assert.deepEqual(p.inputIds, c.decoder_input_ids, `${fx} ${c.name}`);
      }
      if (family === 'blip' && c.questions) {
        const q = encoderText(tok, c.questions);
        assert.deepEqual(q.inputIds, c.input_ids);
        assert.deepEqual(q.attentionMask, c.attention_mask);
      }
      if (family !== 'blip' && c.input_ids) {
        const legacy = exp.image_token_index === undefined || fx.includes('legacy');
        const p = llmPrompt(tok, prompts, batch, {
          imageTokenId: legacy ? undefined : exp.image_token_index,
          numQueryTokens: exp.num_query_tokens,
          bosTokenId: exp.config?.text_config?.bos_token_id ?? exp.special_ids?.bos_token_id ?? undefined,
          paddingSide: c.padding_side,
          // what the compiler's conventions give when the tokenizer has no pad: the config's, else the first eos
          padTokenId: exp.special_ids?.pad_token_id ?? [exp.special_ids?.eos_token_id ?? 2].flat()[0],
        });
        assert.deepEqual(p.inputIds, c.input_ids, `${fx} ${c.name}`);
        assert.deepEqual(p.attentionMask, c.attention_mask, `${fx} ${c.name}`);
      }
      if (c.qformer_input_ids) {
        const q = qformerPrompt(qtok!, prompts!);
        assert.deepEqual(q.inputIds, c.qformer_input_ids);
        assert.deepEqual(q.attentionMask, c.qformer_attention_mask);
      }
    }
  });
}

test('toInt64 flattens a batch for ONNX', () => {
  const t = toInt64([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  assert.deepEqual(t.dims, [2, 3]);
  assert.deepEqual(Array.from(t.data), [1n, 2n, 3n, 4n, 5n, 6n]);
  assert.throws(() => toInt64([[1], [1, 2]]), /ragged/);
});

test('T5: the SentencePiece charsmap is applied exactly (zero-width, fullwidth, ligatures, ...)', () => {
  const probe = readFixtureJson<{ t5_charsmap: Array<{ text: string; ids: number[] }> }>('generation', 'cases.json').t5_charsmap;
  assert.ok(probe.length > 100);
  const tok = loadTokenizer(fixturePath('tokenizers', 't5'));
  for (const c of probe) assert.deepEqual(tok.encode(c.text), c.ids, JSON.stringify(c.text));
});

test('T5: grapheme clusters are split as Intl.Segmenter splits the whole text, whatever the window', () => {
  // The charsmap replaces short clusters whole, so a wrong split changes ids. Characters that join
  // (combining and spacing marks, ZWJ, Arabic number signs before a letter, regional-indicator
  // pairs, Hangul jamo, CR LF, lone surrogates) mixed with ASCII; windows small enough to cut
  // clusters and surrogate pairs.
  const pool = ['a', 'b', ' ', '1', '\r', '\n', '\r\n', '\t', '\u0301', '\u200d', '\ufe0f', '\u0600', '\u0605', '\u06dd', '\u0903', '\u0e33', 'ก', '\u0915', '\u094d', '👍', '🏽', '👨', '🇫', '🇷', '\u1100', '\u1161', '\u11a8', '가', '猫', 'é', '\ud800', '\udc00'];
  const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
  let seed = 7;
  const next = (k: number): number => Math.floor(((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * k);
  for (let t = 0; t < 1500; t++) {
    let text = '';
    for (let n = 1 + next(t % 10 === 0 ? 600 : 40); n > 0; n--) text += pool[next(pool.length)];
    const want = [...segmenter.segment(text)].map((s) => s.segment);
    for (const window of [3, 7, 64, 1024]) {
      const got: string[] = [];
      forEachGraphemeCluster(text, segmenter, (s) => got.push(s), window);
      assert.deepEqual(got, want, `window ${window}: ${JSON.stringify(text)}`);
    }
  }
});

test('a word too long for the tokenizer library is a BLIP5032 naming its length, not a RangeError', () => {
  // 150,000 CJK characters without a space: one word of 150,000 tokens, which the library spreads
  // into one call's arguments.
  const tok = loadTokenizer(fixturePath('tokenizers', 't5'));
  assert.throws(
    () => tok.encode('猫'.repeat(150_000)),
    (e: Error & { code?: string }) => e.code === 'BLIP5032' && /a text of 150,000 characters is too long to tokenize/.test(e.message),
  );
});

test('vocab.json + merges.txt: a malformed merge line is refused with its line number', () => {
  const dir = mkdtempSync(join(tmpdir(), 'blip-merges-'));
  try {
    for (const f of ['tokenizer_config.json', 'vocab.json']) copyFileSync(fixturePath('tokenizers', 'opt-vocab', f), join(dir, f));
    writeFileSync(join(dir, 'merges.txt'), '#version: 0.2\nĠ t\nh e l\n');
    assert.throws(() => loadTokenizer(dir), /merges\.txt line 3: a merge is two tokens separated by one space, found "h e l"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a checkpoint whose tokenizer is vocab.txt only compiles, and its artifact tokenizes as the tokenizer.json one does', async () => {
  const { compile } = await import('../../../src/lower/compile.js');
  const { loadProgram } = await import('../../../src/syntax/load.js');
  const root = mkdtempSync(join(tmpdir(), 'blip-vocabtxt-'));
  try {
    const src = fixturePath('blip-caption-a', 'checkpoint');
    const ck = join(root, 'checkpoint');
    mkdirSync(ck);
    for (const f of readdirSync(src)) if (f !== 'tokenizer.json') copyFileSync(join(src, f), join(ck, f));
    copyFileSync(fixturePath('tokenizers', 'bert-vocab', 'vocab.txt'), join(ck, 'vocab.txt'));
    const graph = 'graphs/blip-caption.blip';
    await compile({ model: loadProgram(graph).program!.models[0], graphFile: graph, graphText: readFileSync(graph, 'utf8'), weights: ck, out: join(root, 'out') });
    const copied = loadTokenizer(join(root, 'out', 'tokenizer'));
    const original = loadTokenizer(src);
    for (const c of cases.bert.cases) assert.deepEqual(copied.encode(c.text), original.encode(c.text), c.text);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
