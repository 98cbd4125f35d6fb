// BLIP-2 compiled from the shipped graphs (graphs/blip2-*.blip) against the oracle fixtures, run
// with onnxruntime-node and compared with transformers 5.12.1: image features, the soft prompt,
// LM logits teacher-forced (prefill, and token by token through the KV cache), every greedy step's
// logits and token; T5's decoder logits over the encoder's cross keys/values; ITM and ITC.
// Tolerance: max abs difference ≤ 1e-4 · max(1, max |expected|) (test/unit/compiler/harness.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readManifest, type Manifest } from '../../../src/artifact/manifest.js';
import { FIXTURES, TEST_TARGETS, targetTag, close, compileFixture, emptyPast, expected, f32, i64, nextPast, rows, session, tmp, type Expected } from '../compiler/harness.js';
import type { Target } from '../../../src/rewrite/index.js';

type Diffs = Record<string, number>;
type Case = {
  name: string;
  input_ids: number[][];
  attention_mask: number[][];
  qformer_input_ids?: number[][];
  qformer_attention_mask?: number[][];
  decoder_input_ids?: number[][];
  generation: Array<{ name: string; new_tokens: number[][] }>;
};
const report = (t: { diagnostic(m: string): void }, d: Diffs) => t.diagnostic(Object.entries(d).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', '));
const missing = (fixture: string) => !existsSync(join(FIXTURES, fixture, 'expected.json')) && `fixture ${fixture} not present`;

function argmax(a: Float32Array, row: number, V: number): number {
  let best = 0;
  for (let v = 1; v < V; v++) if (a[row * V + v] > a[row * V + best]) best = v;
  return best;
}

/**
 * decoder.onnx driven as the runtime drives it: a prefill of `ids` (with the soft prompt when
 * given, its Q positions first in the mask), then one token per step. `check` sees each step's
 * (B, V) logits.
 */
async function drive(
  m: Manifest,
  dec: ort.InferenceSession,
  fixed: Record<string, ort.Tensor>,
  o: { ids: number[][]; mask: number[][]; prefix?: ort.Tensor; then?: number[][] },
  check: (step: number, logits: Float32Array) => void,
): Promise<void> {
  const B = o.ids.length;
  let past = emptyPast(dec, B, m.decoder!.kv_heads, m.decoder!.head_dim);
  let mask = o.mask;
  const width = dec.inputNames.includes('prefix_embeds') ? (m.graphs.decoder!.inputs.find((i) => i.name === 'prefix_embeds')!.shape[2] as number) : 0;
  const noPrefix = o.prefix && { prefix_embeds: new ort.Tensor('float32', new Float32Array(0), [B, 0, width]) };
  const steps = o.then?.[0]?.length ?? 0;
  for (let s = 0; s <= steps; s++) {
    const ids = s === 0 ? o.ids : o.then!.map((r) => [r[s - 1]]);
    if (s > 0) mask = mask.map((r) => [...r, 1]);
    const prefix: Record<string, ort.Tensor> = s === 0 && o.prefix ? { prefix_embeds: o.prefix } : (noPrefix ?? {});
    const feeds: Record<string, ort.Tensor> = { ...fixed, ...past, ...prefix, input_ids: i64(ids), attention_mask: i64(mask) };
    const out = await dec.run(feeds);
    check(s, out.logits.data as Float32Array);
    past = nextPast(out);
  }
}

/** encode.onnx's feeds for a case: the images, and the instruction (Q-Former tokenizer) and the encoder prompt when it takes them. */
function encodeFeeds(enc: ort.InferenceSession, exp: Expected, c: Case): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = { pixel_values: f32(exp.array('pixel_values')) };
  if (enc.inputNames.includes('qformer_input_ids')) Object.assign(feeds, { qformer_input_ids: i64(c.qformer_input_ids!), qformer_attention_mask: i64(c.qformer_attention_mask!) });
  if (enc.inputNames.includes('input_ids')) {
    // T5: the encoder prompt without its Q `<image>` placeholders, which encode.onnx fills with the soft prompt.
    const Q: number = exp.json.num_query_tokens;
    Object.assign(feeds, { input_ids: i64(c.input_ids.map((r) => r.slice(Q))), attention_mask: i64(c.attention_mask.map((r) => r.slice(Q))) });
  }
  return feeds;
}

/** The float32 prefix as transformers' masked_scatter places it in E-wide token embeddings. */
function scattered(projected: { data: Float32Array; shape: number[] }, E: number): Float32Array {
  const [B, Q] = projected.shape;
  return projected.data.slice(0, B * Q * E);
}

async function checkDecoderOnly(fixture: string, graph: string, t: { diagnostic(m: string): void }, target: Target = 'plain') {
  const out = join(tmp('blip2-'), 'out');
  const diffs: Diffs = {};
  try {
    await compileFixture(graph, fixture, out, 'float32', target);
    const m = readManifest(out);
    assert.deepEqual(Object.keys(m.graphs).sort(), ['decoder', 'encode']);
    assert.equal(m.decoder!.positions, 'attention_mask');
    const exp = expected(fixture);
    const enc = await session(join(out, 'encode.onnx'));
    const dec = await session(join(out, 'decoder.onnx'));
    assert.deepEqual(dec.inputNames, m.decoder!.inputs);
    const V = m.decoder!.vocab_size;
    const Q: number = exp.json.num_query_tokens;
    // Placeholder checkpoints: the prompt starts with Q `<image>` ids, which the prefix replaces;
    // checkpoints without them: the prefix goes in front, its Q positions added to the mask.
    const placeholders = typeof exp.json.image_token_index === 'number';
    const eos: number = exp.json.special_ids.eos_token_id;

    for (const c of exp.json.cases as Case[]) {
      const e = await enc.run(encodeFeeds(enc, exp, c));
      close('image_embeds', e.image_embeds.data as Float32Array, exp.array('image_embeds').data, diffs);
      const prefix = e.prefix_embeds as ort.Tensor;
      assert.equal(prefix.dims[1], Q);
      assert.equal(m.graphs.encode!.outputs.find((x) => x.name === 'prefix_embeds')!.shape[2], prefix.dims[2], 'declared prefix_embeds width');
      const projected = exp.array(exp.json.arrays[`${c.name}/prefix_embeds`] ? `${c.name}/prefix_embeds` : 'prefix_embeds');
      close('prefix_embeds', prefix.data as Float32Array, scattered(projected, prefix.dims[2]), diffs);
      const ids = placeholders ? c.input_ids.map((r) => r.slice(Q)) : c.input_ids;
      const mask = placeholders ? c.attention_mask : c.attention_mask.map((r) => [...Array(Q).fill(1), ...r]);
      const S = ids[0].length;
      const lm = exp.array(`${c.name}/lm_logits`); // (B, S or 1, V): positions after the prefix
      const all = lm.shape[1] === S;
      // Prefill of the whole prompt: the last position. A left-padded row of a LLaMA is left out:
      // transformers' forward numbers its positions 0..S-1 through the padding, while generate (and
      // decoder.onnx) number them from the attention mask; its greedy tokens are checked below.
      const skipPadded = graph.includes('vicuna');
      const keep = mask.map((r) => !(skipPadded && r.includes(0)));
      await drive(m, dec, {}, { ids, mask, prefix }, (_, got) => {
        const want = rows(lm, lm.shape[1] - 1, lm.shape[1]);
        keep.forEach((k, b) => k && close(`LM logits (prefill${c.name === 'padded' ? ', left-padded' : ''})`, got.subarray(b * V, (b + 1) * V), want.subarray(b * V, (b + 1) * V), diffs));
      });
      // The prompt one token at a time through the KV cache: every position (all rows, or row 0).
      const row0 = exp.json.arrays[`${c.name}/lm_logits_all_row0`] ? exp.array(`${c.name}/lm_logits_all_row0`) : undefined;
      if ((all || row0) && S > 1) {
        const first = ids.map((r) => [r[0]]);
        const firstMask = mask.map((r) => r.slice(0, mask[0].length - S + 1));
        await drive(m, dec, {}, { ids: first, mask: firstMask, prefix, then: ids.map((r) => r.slice(1)) }, (s, got) =>
          all ? close('LM logits (step by step)', got, rows(lm, s, s + 1), diffs) : close('LM logits (step by step, row 0)', got.subarray(0, V), row0!.data.subarray(s * V, (s + 1) * V), diffs),
        );
      }
      // Greedy generation replayed: every step's logits (when recorded), and the argmax is transformers' token.
      const greedy = c.generation.find((g) => g.name === 'greedy');
      if (!greedy) continue;
      const steps = exp.json.arrays[`${c.name}/greedy/step_logits`] ? exp.array(`${c.name}/greedy/step_logits`) : undefined;
      const n = steps?.shape[1] ?? greedy.new_tokens[0].length;
      await drive(m, dec, {}, { ids, mask, prefix, then: greedy.new_tokens.map((r) => r.slice(0, n - 1)) }, (s, got) => {
        if (steps) close('greedy step logits', got, rows(steps, s, s + 1), diffs);
        greedy.new_tokens.forEach((r, b) => {
          if (!r.slice(0, s).includes(eos)) assert.equal(argmax(got, b, V), r[s], `${c.name}: greedy token ${s} of row ${b}`);
        });
      });
    }
    report(t, diffs);
  } finally {
    rmSync(join(out, '..'), { recursive: true, force: true });
  }
}

async function checkT5(fixture: string, graph: string, t: { diagnostic(m: string): void }, target: Target = 'plain') {
  const out = join(tmp('blip2-'), 'out');
  const diffs: Diffs = {};
  try {
    await compileFixture(graph, fixture, out, 'float32', target);
    const m = readManifest(out);
    assert.equal(m.decoder!.positions, 'past_length');
    assert.ok(m.decoder!.cross_attention);
    const exp: Expected = expected(fixture);
    const enc = await session(join(out, 'encode.onnx'));
    const dec = await session(join(out, 'decoder.onnx'));
    const V = m.decoder!.vocab_size;
    const eos: number = exp.json.special_ids.eos_token_id;
    for (const c of exp.json.cases as Case[]) {
      const e = await enc.run(encodeFeeds(enc, exp, c));
      close('image_embeds', e.image_embeds.data as Float32Array, exp.array('image_embeds').data, diffs);
      assert.deepEqual([...(e.cross_attention_mask.data as BigInt64Array)].map(Number), c.attention_mask.flat());
      const fixed: Record<string, ort.Tensor> = {};
      for (const name of m.decoder!.from_encode) fixed[name] = e[name] as ort.Tensor;
      const start = c.decoder_input_ids!;
      const mask = start.map((r) => r.map(() => 1));
      await drive(m, dec, fixed, { ids: start, mask }, (_, got) => close('decoder logits', got, rows(exp.array(`${c.name}/decoder_logits`), 0, 1), diffs));
      const greedy = c.generation.find((g) => g.name === 'greedy');
      if (!greedy || !exp.json.arrays[`${c.name}/greedy/step_logits`]) continue;
      const steps = exp.array(`${c.name}/greedy/step_logits`);
      const n = steps.shape[1];
      await drive(m, dec, fixed, { ids: start, mask, then: greedy.new_tokens.map((r) => r.slice(0, n - 1)) }, (s, got) => {
        close('greedy step logits (KV cache)', got, rows(steps, s, s + 1), diffs);
        greedy.new_tokens.forEach((r, b) => {
          if (!r.slice(0, s).includes(eos)) assert.equal(argmax(got, b, V), r[s], `${c.name}: greedy token ${s} of row ${b}`);
        });
      });
    }
    report(t, diffs);
  } finally {
    rmSync(join(out, '..'), { recursive: true, force: true });
  }
}

async function checkRetrieval(fixture: string, t: { diagnostic(m: string): void }, target: Target = 'plain') {
  const out = join(tmp('blip2-'), 'out');
  const diffs: Diffs = {};
  try {
    await compileFixture('graphs/blip2-itm.blip', fixture, out, 'float32', target);
    const m = readManifest(out);
    assert.deepEqual(Object.keys(m.graphs), ['retrieval']);
    const exp = expected(fixture);
    const rt = exp.json.retrieval;
    // Blip2ForImageTextRetrieval drops the Q placeholder ids when image_token_index is set: the text alone goes in.
    const Q = typeof exp.json.image_token_index === 'number' ? (exp.json.num_query_tokens as number) : 0;
    const s = await session(join(out, 'retrieval.onnx'));
    const o = await s.run({
      pixel_values: f32(exp.array('pixel_values')),
      input_ids: i64(rt.input_ids.map((r: number[]) => r.slice(Q))),
      attention_mask: i64(rt.attention_mask.map((r: number[]) => r.slice(Q))),
      pair_image: new ort.Tensor('int64', BigInt64Array.from(rt.input_ids.map((_: number[], p: number) => BigInt(p))), [rt.input_ids.length]), // pair p: image p
    });
    close('itm_logits', o.itm_logits.data as Float32Array, exp.array('itm_logits').data, diffs);
    close('itm_score', o.itm_score.data as Float32Array, exp.array('itm_probs').data, diffs);
    close('image_embeds (ITC, per query)', o.image_embeds.data as Float32Array, exp.array('image_feat').data, diffs);
    close('text_embeds (ITC)', o.text_embeds.data as Float32Array, exp.array('text_feat').data, diffs);
    close('itc_score (max over queries)', o.itc_score.data as Float32Array, exp.array('itc_scores').data, diffs);
    report(t, diffs);
  } finally {
    rmSync(join(out, '..'), { recursive: true, force: true });
  }
}

const gen = (fixture: string, graph: string, what: string, check: typeof checkDecoderOnly) =>
  TEST_TARGETS.forEach((target) => test(`${fixture}: ${what}${targetTag(target)}`, { skip: missing(fixture) }, (t) => check(fixture, graph, t, target)));

gen('blip2-opt-a', 'graphs/blip2-opt.blip', 'OPT with placeholders: soft prompt, prefill / cached / greedy logits match transformers', checkDecoderOnly);
gen('blip2-opt-b', 'graphs/blip2-opt.blip', 'post-norm OPT with project_in/out (masked_scatter of a wider soft prompt), 3 layers', checkDecoderOnly);
gen('blip2-opt-c', 'graphs/blip2-opt.blip', 'OPT with layer norms without scale and shift (the final one still applied) and projections without biases', checkDecoderOnly);
gen('blip2-opt-legacy', 'graphs/blip2-opt.blip', 'checkpoint without image_token_index: the soft prompt is prepended', checkDecoderOnly);
gen('blip2-t5-a', 'graphs/blip2-t5.blip', 'Flan-T5 (gated-gelu, untied unscaled head): encoder cross K/V, decoder logits, greedy steps', checkT5);
gen('instructblip-vicuna-a', 'graphs/instructblip-vicuna.blip', 'Vicuna with grouped KV heads: instruction in the Q-Former, prefill / cached / greedy logits', checkDecoderOnly);
gen('instructblip-vicuna-b', 'graphs/instructblip-vicuna.blip', 'Vicuna, plain multi-head attention, another rope theta', checkDecoderOnly);
gen('blip2-llama-a', 'graphs/examples/blip2-llama.blip', 'composition: the BLIP-2 Q-Former feeding a LLaMA with grouped KV heads (a pairing the papers did not ship)', checkDecoderOnly);
gen('instructblip-t5-a', 'graphs/instructblip-t5.blip', 'Flan-T5 with the instruction in the Q-Former: decoder logits, greedy steps', checkT5);
for (const target of TEST_TARGETS) {
  test(`blip2-itm-a: ITM logits/probabilities and per-query ITC embeddings/similarities match transformers${targetTag(target)}`, { skip: missing('blip2-itm-a') }, (t) => checkRetrieval('blip2-itm-a', t, target));
}
