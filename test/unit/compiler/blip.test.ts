// The BLIP family compiled from the shipped graphs against the oracle fixtures, run with
// onnxruntime-node and compared with transformers 5.12.1: image embeddings, decoder logits
// teacher-forced (whole sequence at once, and step by step through the KV cache), the logits of
// every greedy generation step, ITM logits and probabilities, ITC embeddings and similarities.
// Tolerance: max abs difference ≤ 1e-4 · max(1, max |expected|).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readManifest } from '../../../src/artifact/manifest.js';
import { TEST_TARGETS, close, compileFixture, emptyPast, expected, f32, i64, nextPast, rows, session, stepPositions, targetTag, tmp } from './harness.js';
import type { Target } from '../../../src/rewrite/index.js';

type Diffs = Record<string, number>;
const report = (t: { diagnostic(m: string): void }, d: Diffs) => t.diagnostic(Object.entries(d).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', '));

function argmax(a: Float32Array, row: number, V: number): number {
  let best = 0;
  for (let v = 1; v < V; v++) if (a[row * V + v] > a[row * V + best]) best = v;
  return best;
}

/**
 * Drive decoder.onnx like the runtime does: one prefill with `prefill` ids, then one token per
 * step. `check(step, logits)` sees the (B, V) logits of each call.
 */
async function drive(dec: ort.InferenceSession, fixed: Record<string, ort.Tensor>, kv: [number, number], prefill: number[][], then: number[][], check: (step: number, logits: Float32Array) => void) {
  const B = prefill.length;
  let past = emptyPast(dec, B, kv[0], kv[1]);
  let len = 0;
  const feeds = [prefill, ...Array.from({ length: then[0]?.length ?? 0 }, (_, t) => then.map((r) => [r[t]]))];
  for (const [step, ids] of feeds.entries()) {
    len += ids[0].length;
    const o = await dec.run({ ...fixed, ...past, ...stepPositions(dec, len - ids[0].length, ids), input_ids: i64(ids), attention_mask: i64(ids.map(() => Array(len).fill(1))) });
    check(step, o.logits.data as Float32Array);
    past = nextPast(o);
  }
}

async function checkGenerating(fixture: string, graph: string, t: { diagnostic(m: string): void }, target: Target) {
  const out = join(tmp('blip-'), 'out');
  const diffs: Diffs = {};
  try {
    const r = await compileFixture(graph, fixture, out, 'float32', target);
    const m = readManifest(out);
    assert.deepEqual(Object.keys(m.graphs).sort(), ['decoder', 'encode']);
    assert.equal(m.decoder!.positions, 'input');
    const exp = expected(fixture);
    const enc = await session(join(out, 'encode.onnx'));
    const dec = await session(join(out, 'decoder.onnx'));
    assert.deepEqual(dec.inputNames, m.decoder!.inputs);
    const kv: [number, number] = [m.decoder!.kv_heads, m.decoder!.head_dim];
    const V = m.decoder!.vocab_size;
    let replayed = 0;
    for (const c of exp.json.cases) {
      const encFeeds: Record<string, ort.Tensor> = { pixel_values: f32(exp.array('pixel_values')) };
      if (c.input_ids) Object.assign(encFeeds, { input_ids: i64(c.input_ids), attention_mask: i64(c.attention_mask) });
      const e = await enc.run(encFeeds);
      close('image_embeds', e.image_embeds.data as Float32Array, exp.array('image_embeds').data, diffs);
      const fixed: Record<string, ort.Tensor> = {};
      for (const name of m.decoder!.from_encode) fixed[name] = e[name] as ort.Tensor;

      // (mixed_prompts records generations only: runtime/decoder.test.ts and tasks/generate.test.ts replay them)
      if (!exp.has(`${c.name}/decoder_logits`)) continue;
      const ids: number[][] = c.decoder_input_ids;
      const S = ids[0].length;
      const logits = exp.array(`${c.name}/decoder_logits`);
      // Teacher-forced, whole sequence at once: the last position's logits.
      await drive(dec, fixed, kv, ids, [], (_, got) => close('decoder logits (whole sequence)', got, rows(logits, S - 1, S), diffs));
      // Teacher-forced, one token at a time through the KV cache: every position.
      await drive(dec, fixed, kv, ids.map((r) => [r[0]]), ids.map((r) => r.slice(1)), (step, got) => close('decoder logits (step by step)', got, rows(logits, step, step + 1), diffs));
      // Greedy generation replayed: logits of every step, and the argmax is transformers' token.
      // (The fixtures record step logits for one case each.)
      if (!exp.has(`${c.name}/greedy/step_logits`)) continue;
      replayed++;
      const greedy = c.generation.find((g: { name: string }) => g.name === 'greedy');
      const steps = exp.array(`${c.name}/greedy/step_logits`);
      await drive(dec, fixed, kv, ids, greedy.new_tokens.map((r: number[]) => r.slice(0, -1)), (step, got) => {
        close('greedy step logits', got, rows(steps, step, step + 1), diffs);
        // After its end-of-sequence token a row is filled with padding, whatever the logits say.
        greedy.new_tokens.forEach((r: number[], b: number) => {
          if (!r.slice(0, step).includes(m.text.eos_token_id[0])) assert.equal(argmax(got, b, V), r[step], `greedy token ${step} of row ${b}`);
        });
      });
    }
    assert.ok(replayed > 0, 'a greedy generation was replayed');
    assert.ok(r.parameters > 0 && r.weightsBytes >= r.parameters * 4);
    report(t, diffs);
  } finally {
    rmSync(join(out, '..'), { recursive: true, force: true });
  }
}

async function checkRetrieval(fixture: string, t: { diagnostic(m: string): void }, target: Target) {
  const out = join(tmp('blip-'), 'out');
  const diffs: Diffs = {};
  try {
    await compileFixture('graphs/blip-itm.blip', fixture, out, 'float32', target);
    const m = readManifest(out);
    assert.deepEqual(Object.keys(m.graphs), ['retrieval']);
    const exp = expected(fixture);
    const rt = exp.json.retrieval;
    const s = await session(join(out, 'retrieval.onnx'));
    // pair p = text p with image row pair_image[p]: here image p
    const pairs = new ort.Tensor('int64', BigInt64Array.from(rt.input_ids.map((_: number[], p: number) => BigInt(p))), [rt.input_ids.length]);
    assert.deepEqual(s.inputNames, ['pixel_values', 'input_ids', 'attention_mask', 'pair_image']);
    const o = await s.run({ pixel_values: f32(exp.array('pixel_values')), input_ids: i64(rt.input_ids), attention_mask: i64(rt.attention_mask), pair_image: pairs });
    close('itm_logits', o.itm_logits.data as Float32Array, exp.array('itm_logits').data, diffs);
    close('itm_score', o.itm_score.data as Float32Array, exp.array('itm_probs').data, diffs);
    close('image_embeds (ITC)', o.image_embeds.data as Float32Array, exp.array('image_feat').data, diffs);
    close('text_embeds (ITC)', o.text_embeds.data as Float32Array, exp.array('text_feat').data, diffs);
    close('itc_score', o.itc_score.data as Float32Array, exp.array('itc_scores').data, diffs);
    report(t, diffs);
  } finally {
    rmSync(join(out, '..'), { recursive: true, force: true });
  }
}

for (const target of TEST_TARGETS) {
  test(`blip-caption-a: caption graph matches transformers (embeddings, logits, KV cache, greedy steps)${targetTag(target)}`, (t) => checkGenerating('blip-caption-a', 'graphs/blip-caption.blip', t, target));
  test(`blip-caption-b: other sizes, 2 heads, 3 layers, padded vocabulary, preprocessor_config.json${targetTag(target)}`, (t) => checkGenerating('blip-caption-b', 'graphs/blip-caption.blip', t, target));
  test(`blip-vqa-a: question encoder + answer decoder match transformers (padded questions)${targetTag(target)}`, (t) => checkGenerating('blip-vqa-a', 'graphs/blip-vqa.blip', t, target));
  test(`blip-itm-a: ITM logits/probabilities and ITC embeddings/similarities match transformers${targetTag(target)}`, (t) => checkRetrieval('blip-itm-a', t, target));
  test(`blip-itm-b: retrieval with other sizes and padding${targetTag(target)}`, (t) => checkRetrieval('blip-itm-b', t, target));
}
