// runtime/generation against transformers' generate() (fixtures: test/oracle/generation_cases.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createRandom,
  generate,
  logSoftmaxRow,
  MAX_ROWS_PER_PROMPT,
  minLength,
  minNewTokens,
  minP,
  noRepeatNgram,
  order,
  softmaxRow,
  repetitionPenalty,
  temperature,
  TextStreamer,
  topK,
  topP,
  typicalP,
  type GenerationOptions,
  type LogitsProcessor,
  type TokenEvent,
} from '../../../runtime/generation/index.js';
import { loadTokenizer } from '../../../runtime/tokenizers/index.js';
import { GenerationConfigError, BlipRuntimeError } from '../../../runtime/errors.js';
import { fixturePath, readFixtureJson } from './fixtures.js';
import { ScriptedModel, type ScriptedSpec } from './scripted.js';

interface GenCase extends ScriptedSpec {
  name: string;
  pad: number | null;
  input_ids: number[][];
  attention_mask: number[][];
  kwargs: Record<string, unknown>;
  sequences: number[][];
  sequences_scores?: number[];
  model_calls: number;
}
interface Fixture {
  cases: GenCase[];
  processors: { scores: string[][]; input_ids: number[][]; processors: Array<{ name: string; out: string[][] }>; log_softmax: string[][] };
  streamer: Array<{ tokenizer: string; ids: number[]; skip_special_tokens: boolean; pieces: Array<[string, boolean]> }>;
}

const fx = readFixtureJson<Fixture>('generation', 'cases.json');
const camel = (k: string): string => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

function optionsOf(c: GenCase): GenerationOptions {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c.kwargs)) o[camel(k)] = v;
  o.eosTokenId = c.eos.length ? c.eos : null;
  o.padTokenId = c.pad;
  return o as GenerationOptions;
}

test('every oracle case runs (greedy, penalties, n-grams, min lengths, beams x early stopping x length penalty, ...)', () => {
  assert.ok(fx.cases.length >= 60);
  const kinds = new Set(fx.cases.map((c) => (c.kwargs.num_beams ? 'beam' : 'greedy')));
  assert.deepEqual([...kinds].sort(), ['beam', 'greedy']);
});

for (const c of fx.cases) {
  test(`generate == transformers: ${c.name}`, async () => {
    const model = new ScriptedModel(c);
    const r = await generate(model, { inputIds: c.input_ids, attentionMask: c.attention_mask }, optionsOf(c));
    assert.deepEqual(r.sequences, c.sequences);
    assert.equal(r.modelCalls, c.model_calls, 'model calls');
    assert.equal(model.calls, c.model_calls);
    assert.equal(r.promptLength, c.input_ids[0].length);
    if (c.sequences_scores) {
      assert.equal(r.sequenceScores!.length, c.sequences_scores.length);
      r.sequenceScores!.forEach((s, i) => assert.ok(Math.abs(s - c.sequences_scores![i]) < 1e-5, `score ${i}: ${s} vs ${c.sequences_scores![i]}`));
    }
  });
}

// Ties for the highest score: transformers' greedy step is torch.argmax, the first maximal index
// (test/oracle/greedy_ties.py: a model returning the same row every step, ids 1 and 3 tied; its
// fixture's sequences are transformers' generate()). The scripted model above never ties.
test('greedy decoding resolves a tie for the maximum to the first index, as torch.argmax (with penalties and an EOS ban breaking and restoring it)', async () => {
  const ties = readFixtureJson<{ row: number[]; cases: Array<{ name: string; input_ids: number[][]; eos: number; kwargs: Record<string, unknown>; sequences: number[][] }> }>('generation', 'ties.json');
  assert.equal(ties.cases.length, 4);
  const V = ties.row.length;
  const model = {
    step: async (input: { batch: number }) => {
      const logits = new Float32Array(input.batch * V);
      for (let r = 0; r < input.batch; r++) logits.set(ties.row, r * V);
      return { logits, vocab: V, state: null };
    },
    reorder: (s: null) => s,
  };
  for (const c of ties.cases) {
    const o: Record<string, unknown> = { eosTokenId: c.eos, padTokenId: 0 };
    for (const [k, v] of Object.entries(c.kwargs)) o[camel(k)] = v;
    const r = await generate(model, { inputIds: c.input_ids }, o as GenerationOptions);
    assert.deepEqual(r.sequences, c.sequences, c.name);
  }
});

const fromBits = (h: string): number =>
  h === '-inf' ? -Infinity : h === 'inf' ? Infinity : new Float32Array(new Uint8Array(h.match(/../g)!.map((x) => parseInt(x, 16))).buffer)[0];

test('logits processors and warpers are bit-exact with transformers (float32)', () => {
  const p = fx.processors;
  const rows = p.scores.map((r) => r.map(fromBits));
  const V = rows[0].length;
  const make: Record<string, LogitsProcessor> = {
    'temperature_0.7': temperature(0.7),
    'temperature_1.3': temperature(1.3),
    top_k_5: topK(5),
    top_k_5_keep8: topK(5, 8),
    top_k_1: topK(1),
    'top_p_0.9': topP(0.9),
    'top_p_0.5': topP(0.5),
    'top_p_0.05_keep2': topP(0.05, 2),
    'min_p_0.1': minP(0.1),
    'min_p_0.5_keep3': minP(0.5, 3),
    'typical_0.8': typicalP(0.8),
    'typical_0.9': typicalP(0.9),
    'repetition_1.3': repetitionPenalty(1.3),
    'repetition_0.6': repetitionPenalty(0.6),
    ngram_2: noRepeatNgram(2),
    ngram_3: noRepeatNgram(3),
    min_length_6: minLength(6, [4, 9]),
    min_length_5: minLength(5, [4]),
    min_new_3_of_3: minNewTokens(3, 3, [4]),
    min_new_2_of_3: minNewTokens(3, 2, [4]),
  };
  assert.equal(Object.keys(make).length, p.processors.length);
  for (const pr of p.processors) {
    const s = new Float32Array(rows.flat());
    make[pr.name](p.input_ids, s, V);
    const exp = pr.out.flat().map(fromBits);
    for (let i = 0; i < s.length; i++) assert.ok(Object.is(s[i], exp[i]) || s[i] === exp[i], `${pr.name} [${Math.floor(i / V)}, ${i % V}]: ${s[i]} vs ${exp[i]}`);
  }
  // log-softmax (beam scores): torch's vectorised float32 differs in the last bits (a few ulp of the
  // intermediate x - max or log-sum-exp)
  const ls = new Float32Array(rows.length * V);
  rows.forEach((r, i) => logSoftmaxRow(r, ls, i * V));
  const exp = p.log_softmax.flat().map(fromBits);
  for (let i = 0; i < ls.length; i++) {
    if (exp[i] === -Infinity) assert.equal(ls[i], -Infinity);
    else assert.ok(Math.abs(ls[i] - exp[i]) <= 2 ** -20 * Math.max(1, Math.abs(exp[i])), `log_softmax ${i}: ${ls[i]} vs ${exp[i]}`);
  }
});

test('top-p after top-k weighs only the tokens left in play and removes exactly what sorting the whole row does', () => {
  // the whole-row form (transformers' TopPLogitsWarper, as the runtime did it before): sort every
  // score ascending, softmax in that order, remove the prefix whose mass stays within 1 - p
  const reference = (row: Float32Array, p: number, keep: number): Float32Array => {
    const out = row.slice();
    const idx = order(row, false);
    const probs = softmaxRow(Float32Array.from(idx, (i) => row[i]));
    let cum = 0;
    let cut = 0;
    for (let j = 0; j < row.length - keep; j++) {
      cum += probs[j];
      if (!(Math.fround(cum) <= Math.fround(1 - p))) break;
      cut = j + 1;
    }
    for (let j = 0; j < cut; j++) out[idx[j]] = -Infinity;
    return out;
  };
  const rnd = createRandom(11);
  const V = 3000;
  let compared = 0;
  let removing = 0;
  for (const k of [1, 2, 5, 50, 2999, 3000]) {
    for (const [p, keep, nan] of [[0.9, 1, false], [0.5, 1, false], [0.05, 2, false], [0.05, 4, false], [0.999, 7, false], [1, 1, false], [0.9, 1, true]] as const) {
      const row = Float32Array.from({ length: V }, () => Math.fround(Math.floor(rnd() * 400) / 40 - 5)); // ties on purpose
      if (nan) row[17] = NaN; // (a NaN makes every probability NaN: nothing is removed)
      row[18] = -Infinity;
      topK(k)([], row, V);
      const want = reference(row, p, keep);
      const got = row.slice();
      topP(p, keep)([], got, V);
      for (let i = 0; i < V; i++) assert.ok(Object.is(got[i], want[i]), `k ${k}, p ${p}, keep ${keep}, token ${i}: ${got[i]} vs ${want[i]}`);
      compared++;
      if (want.filter((x) => x === -Infinity).length > row.filter((x) => x === -Infinity).length) removing++;
    }
  }
  assert.equal(compared, 42);
  assert.ok(removing >= 20, `top-p removed tokens in ${removing} of 42 cases`);
  const dead = new Float32Array(5).fill(-Infinity);
  topP(0.9)([], dead, 5);
  assert.ok(dead.every((x) => x === -Infinity));
});

test('TextStreamer releases the same pieces as transformers TextStreamer', () => {
  assert.ok(fx.streamer.length >= 16);
  const toks = new Map<string, ReturnType<typeof loadTokenizer>>();
  for (const c of fx.streamer) {
    if (!toks.has(c.tokenizer)) toks.set(c.tokenizer, loadTokenizer(fixturePath('tokenizers', c.tokenizer)));
    const pieces: Array<[string, boolean]> = [];
    const st = new TextStreamer(toks.get(c.tokenizer)!, (t, end) => pieces.push([t, end]), { skipSpecialTokens: c.skip_special_tokens });
    for (const id of c.ids) st.put([id]);
    st.end();
    assert.deepEqual(pieces, c.pieces, `${c.tokenizer} ${JSON.stringify(c.ids)}`);
  }
});

test('TextStreamer without the reset at newlines: the pieces add up to the decoded text, where transformers\' do not', () => {
  const tok = loadTokenizer(fixturePath('tokenizers', 'llama'));
  const ids = tok.encode('dog\n cat', { addSpecialTokens: false });
  const run = (resetAtNewline: boolean) => {
    let out = '';
    const st = new TextStreamer(tok, (t) => (out += t), { resetAtNewline });
    for (const id of ids) st.put([id]);
    st.end();
    return out;
  };
  const whole = tok.decode(ids);
  assert.equal(whole, 'dog\n cat');
  assert.equal(run(true), 'dog\ncat'); // transformers' pieces: the word after the newline is decoded alone
  assert.equal(run(false), whole);
});

test('onToken streams every generated token with finished flags', async () => {
  const c = fx.cases.find((x) => x.name === 'greedy_b3')!;
  const events: TokenEvent[] = [];
  const r = await generate(new ScriptedModel(c), { inputIds: c.input_ids, attentionMask: c.attention_mask }, { ...optionsOf(c), onToken: (e) => events.push(e) });
  const P = c.input_ids[0].length;
  assert.equal(events.length, r.sequences[0].length - P);
  events.forEach((e, i) => {
    assert.equal(e.step, i);
    assert.deepEqual(e.tokens, r.sequences.map((s) => s[P + i]));
  });
  assert.ok(events[events.length - 1].finished.every(Boolean));
});

test('stopRow finishes a row: padded from then on as after an EOS, the other rows and the draws unchanged, no calls after the last row stops', async () => {
  const c = fx.cases.find((x) => x.name === 'greedy_b3')!;
  const prompt = { inputIds: c.input_ids, attentionMask: c.attention_mask };
  const P = c.input_ids[0].length;
  for (const extra of [{}, { doSample: true, seed: 9, numReturnSequences: 2 }] as GenerationOptions[]) {
    const o = { ...optionsOf(c), ...extra, maxNewTokens: 12, minNewTokens: 12 };
    const full = await generate(new ScriptedModel(c), prompt, o);
    const asked: Array<[number, number[]]> = [];
    // row 1 stops at its 3rd new token; the others run on
    const m = new ScriptedModel(c);
    const r = await generate(m, prompt, { ...o, stopRow: (row, toks) => (asked.push([row, toks.slice()]), row === 1 && toks.length === 3) });
    r.sequences.forEach((s, row) => {
      if (row !== 1) assert.deepEqual(s, full.sequences[row], `row ${row} ${JSON.stringify(extra)}`);
      else assert.deepEqual(s, [...full.sequences[1].slice(0, P + 3), ...new Array(9).fill(c.pad ?? c.eos[0])]);
    });
    // asked with the row's new tokens, never again once it stopped
    assert.ok(asked.every(([row, toks]) => row !== 1 || toks.length <= 3));
    assert.deepEqual(asked.find(([row, toks]) => row === 0 && toks.length === 2)![1], full.sequences[0].slice(P, P + 2));
    // every row stopping at its 2nd token: two model calls (prefill and one step), not thirteen
    const all = new ScriptedModel(c);
    const two = await generate(all, prompt, { ...o, stopRow: (_row, toks) => toks.length === 2 });
    assert.equal(all.calls, 2);
    two.sequences.forEach((s, row) => assert.deepEqual(s.slice(0, P + 2), full.sequences[row].slice(0, P + 2)));
  }
});

test('sampling is reproducible for a seed, varies across seeds, and top_k=1 is greedy', async () => {
  const c = fx.cases.find((x) => x.name === 'greedy_b2_padded')!;
  const prompt = { inputIds: c.input_ids, attentionMask: c.attention_mask };
  const base = { ...optionsOf(c), doSample: true, maxNewTokens: 10, numReturnSequences: 3 };
  const a = await generate(new ScriptedModel(c), prompt, { ...base, seed: 7 });
  const b = await generate(new ScriptedModel(c), prompt, { ...base, seed: 7 });
  assert.deepEqual(a.sequences, b.sequences);
  assert.equal(a.sequences.length, 6);
  const outs = new Set<string>();
  for (let s = 0; s < 8; s++) outs.add(JSON.stringify((await generate(new ScriptedModel(c), prompt, { ...base, seed: s, temperature: 2.0, topK: 0 })).sequences));
  assert.ok(outs.size > 1, 'different seeds gave identical samples');
  const greedy = await generate(new ScriptedModel(c), prompt, optionsOf(c));
  const top1 = await generate(new ScriptedModel(c), prompt, { ...optionsOf(c), doSample: true, topK: 1, seed: 3 });
  assert.deepEqual(top1.sequences, greedy.sequences);
  const beamSample = await generate(new ScriptedModel(c), prompt, { ...optionsOf(c), doSample: true, numBeams: 3, seed: 5, maxNewTokens: 6 });
  assert.deepEqual(beamSample.sequences, (await generate(new ScriptedModel(c), prompt, { ...optionsOf(c), doSample: true, numBeams: 3, seed: 5, maxNewTokens: 6 })).sequences);
  // fewer live candidates than the 2 x beams drawn (top-k 1 keeps 2 per beam; only beam 0 is live at
  // first): the draws go on with zero-probability ones, as torch.multinomial does, after the live
  for (const topK of [1, 5]) {
    const few = await generate(new ScriptedModel(c), prompt, { ...optionsOf(c), doSample: true, numBeams: 4, topK, seed: 2, maxNewTokens: 6 });
    assert.equal(few.sequences.length, c.input_ids.length);
    assert.ok(few.sequenceScores!.every((s) => Number.isFinite(s) && s < 0), JSON.stringify(few.sequenceScores));
  }
});

test('sampled tokens follow the warped distribution', async () => {
  const spec = { vocab: 6, salt: 9, eos: [], eos_bonus: 0 };
  const rnd = createRandom(11);
  const counts = new Array<number>(6).fill(0);
  for (let i = 0; i < 400; i++) {
    const r = await generate(new ScriptedModel(spec), { inputIds: [[1, 2]] }, { doSample: true, maxNewTokens: 1, random: rnd, topK: 2 });
    counts[r.sequences[0][2]]++;
  }
  assert.equal(counts.filter((n) => n > 0).length, 2, `top_k=2 sampled ${JSON.stringify(counts)}`);
});

test('bad settings are BLIP5030 errors; a model returning the wrong shape is BLIP5031', async () => {
  const c = fx.cases[0];
  const m = new ScriptedModel(c);
  const prompt = { inputIds: c.input_ids };
  const bad: GenerationOptions[] = [
    { maxLength: 2 },
    { numReturnSequences: 2 },
    { numBeams: 2, numReturnSequences: 3 },
    { temperature: 0, doSample: true },
    { earlyStopping: 'sometimes' as unknown as boolean },
    { maxNewTokens: 0 },
    { topP: 1.5 },
    { minP: 1.5, doSample: true },
    { typicalP: 0, doSample: true },
    { numBeams: MAX_ROWS_PER_PROMPT + 1 },
    { numReturnSequences: MAX_ROWS_PER_PROMPT + 1, doSample: true },
  ];
  for (const o of bad) await assert.rejects(generate(m, prompt, o), (e: unknown) => e instanceof GenerationConfigError && e.code === 'BLIP5030', JSON.stringify(o));
  await assert.rejects(generate(m, { inputIds: [[1, 2], [3]] }), GenerationConfigError);
  const broken = { step: async () => ({ logits: new Float32Array(3), vocab: 40, state: null }), reorder: (s: null) => s };
  await assert.rejects(generate(broken, prompt, { maxNewTokens: 2 }), (e: unknown) => e instanceof BlipRuntimeError && e.code === 'BLIP5031');
});

test('generation options from a manifest: defaults, sources, overrides', async () => {
  const { generationOptionsFromManifest } = await import('../../../runtime/generation/index.js');
  const text = { eos_token_id: [3], pad_token_id: 0, prompt_format: 'blip' as const };
  const d = generationOptionsFromManifest({ max_length: 20, num_beams: 3, do_sample: false, length_penalty: 0.6, source: { max_length: 'default' } }, text);
  assert.equal(d.maxLength, undefined, 'a default max_length means 20 new tokens');
  assert.deepEqual([d.numBeams, d.lengthPenalty, d.eosTokenId, d.padTokenId], [3, 0.6, 3, 0]);
  const f = generationOptionsFromManifest({ max_length: 30, num_beams: 1, do_sample: false, source: { max_length: 'generation_config.json' } }, { ...text, eos_token_id: [2, 50118] });
  assert.equal(f.maxLength, 30);
  assert.deepEqual(f.eosTokenId, [2, 50118]);
  const o = generationOptionsFromManifest({ max_length: 30, num_beams: 1, do_sample: false, source: {} }, text, { maxNewTokens: 5, numBeams: 2 });
  assert.deepEqual([o.maxLength, o.maxNewTokens, o.numBeams], [undefined, 5, 2]);
  // so does the other length's: a minLength asked for is not overruled by the manifest's min_new_tokens
  const minLength = generationOptionsFromManifest({ min_new_tokens: 4, num_beams: 1, do_sample: false, source: { min_new_tokens: 'graph' } }, text, { minLength: 10 });
  assert.deepEqual([minLength.minLength, minLength.minNewTokens], [10, undefined]);
  const minNew = generationOptionsFromManifest({ min_length: 30, num_beams: 1, do_sample: false, source: { min_length: 'generation_config.json' } }, text, { minNewTokens: 2 });
  assert.deepEqual([minNew.minLength, minNew.minNewTokens], [undefined, 2]);
  // the default max_length behaves as transformers' (prompt + 20)
  const c = fx.cases.find((x) => x.name === 'greedy_default_length')!;
  const r = await generate(new ScriptedModel(c), { inputIds: c.input_ids }, { ...d, numBeams: 1, eosTokenId: c.eos, padTokenId: c.pad });
  assert.deepEqual(r.sequences, c.sequences);
});
