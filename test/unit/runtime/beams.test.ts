// Beams share the prefix: encode.onnx runs once per image, the decoder's prefill runs once per
// distinct prompt row (B rows, not B x beams), and the past K/V is expanded to the beams afterwards;
// the encoder-side tensors (cross.*, cross_attention_mask) stay one row per image (a decoder compiled
// with cross_rows 'grouped'; older artifacts: expanded once and never reordered again). The results
// stay those of transformers, which prefills B x beams identical rows.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readManifest } from '../../../src/artifact/manifest.js';
import { generate, OnnxDecoderStepModel, type DecoderState, type GenerationOptions, type StepInput, type StepModel, type StepOutput } from '../../../runtime/generation/index.js';
import { generateForImages, type GenerateContext } from '../../../runtime/tasks/generate.js';
import { preprocessFromManifest } from '../../../runtime/preprocess/config.js';
import { loadTokenizer } from '../../../runtime/tokenizers/hf.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { compileFixture, expected, fixturePath, imagesOf, tempDir } from '../tasks/harness.js';
import type { FixtureInputs } from './fixtures.js';

// ---- a stand-in decoder.onnx: logits from the row's cross value and its past tokens ----

const V = 7;
/** The logits of a row that has seen `tokens` and reads the image value `img` (any mixing function). */
function rowLogits(img: number, tokens: number[]): Float32Array {
  const out = new Float32Array(V);
  let h = img * 0.61;
  for (const t of tokens) h = Math.sin(h * 3.7 + t * 1.3) * 10;
  for (let v = 0; v < V; v++) out[v] = Math.fround(Math.sin(h + v * 2.1 + img) * 3);
  return out;
}

const INPUTS = ['input_ids', 'attention_mask', 'past.0.key', 'past.0.value', 'cross.0.key', 'cross_attention_mask'];
const FACTS = { layers: 1, kv_heads: 1, head_dim: 1, vocab_size: V, inputs: INPUTS, from_encode: ['cross.0.key', 'cross_attention_mask'], positions: 'attention_mask' as const };

/** Records every call's feeds; present row b = past row b + its new ids (D = 1). */
function standIn() {
  const calls: Array<Record<string, ort.Tensor>> = [];
  return {
    calls,
    inputNames: INPUTS,
    outputNames: ['logits', 'present.0.key', 'present.0.value'],
    async run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
      calls.push(feeds);
      const B = feeds.input_ids.dims[0];
      const S = feeds.input_ids.dims[1];
      const P = feeds['past.0.key'].dims[2];
      const T = P + S;
      const past = feeds['past.0.key'].data as Float32Array;
      const ids = feeds.input_ids.data as BigInt64Array;
      const cross = feeds['cross.0.key'].data as Float32Array;
      const present = new Float32Array(B * T);
      const logits = new Float32Array(B * V);
      for (let b = 0; b < B; b++) {
        present.set(past.subarray(b * P, (b + 1) * P), b * T);
        for (let j = 0; j < S; j++) present[b * T + P + j] = Number(ids[b * S + j]);
        // a grouped decoder's B rows read the I cross rows in contiguous groups of B / I
        logits.set(rowLogits(cross[Math.floor(b / (B / feeds['cross.0.key'].dims[0]))], Array.from(present.subarray(b * T, (b + 1) * T))), b * V);
      }
      const kv = new ort.Tensor('float32', present, [B, 1, T, 1]);
      return { logits: new ort.Tensor('float32', logits, [B, V]), 'present.0.key': kv, 'present.0.value': kv };
    },
  };
}

/** transformers' way: every tensor expanded to B x beams before the prefill, everything gathered on every reorder. */
class Reference implements StepModel<{ tokens: number[][]; img: number[] }> {
  prefillRows = 0;
  constructor(private readonly images: number[], private readonly expand: number) {}
  async step(input: StepInput, state: { tokens: number[][]; img: number[] } | undefined): Promise<StepOutput<{ tokens: number[][]; img: number[] }>> {
    const rows = (n: number) => Array.from({ length: n }, (_, b) => Array.from(input.inputIds.subarray(b * input.seqLen, (b + 1) * input.seqLen), Number));
    let st: { tokens: number[][]; img: number[] };
    if (!state) {
      // expand the prompt rows as transformers does (repeat_interleave), then prefill them all
      const p = rows(input.batch);
      st = { tokens: p.flatMap((r) => Array.from({ length: this.expand }, () => r.slice())), img: this.images.flatMap((i) => new Array<number>(this.expand).fill(i)) };
      this.prefillRows = st.tokens.length;
    } else {
      const n = rows(input.batch);
      st = { tokens: state.tokens.map((r, b) => [...r, ...n[b]]), img: state.img };
    }
    const logits = new Float32Array(st.tokens.length * V);
    st.tokens.forEach((t, b) => logits.set(rowLogits(st.img[b], t), b * V));
    if (!state) {
      // the loop gave B rows: hand back one row per prompt (the beams of a prompt are identical)
      const one = new Float32Array(input.batch * V);
      for (let b = 0; b < input.batch; b++) one.set(logits.subarray(b * this.expand * V, (b * this.expand + 1) * V), b * V);
      return { logits: one, vocab: V, state: { tokens: st.tokens.filter((_, r) => r % this.expand === 0), img: this.images } };
    }
    return { logits, vocab: V, state: st };
  }
  reorder(state: { tokens: number[][]; img: number[] }, rows: number[]) {
    return { tokens: rows.map((r) => state.tokens[r].slice()), img: rows.map((r) => state.img[r]) };
  }
}

const IMAGES = [0.25, -1.5];
function encoded(): Record<string, ort.Tensor> {
  return {
    'cross.0.key': new ort.Tensor('float32', Float32Array.from(IMAGES), [2, 1, 1, 1]),
    cross_attention_mask: new ort.Tensor('int64', BigInt64Array.from([1n, 1n]), [2, 1]),
  };
}

/** The batch size of every batch-major feed of a call (all of decoder.onnx's inputs are batch-major). */
const batches = (feeds: Record<string, ort.Tensor>): number[] => [...new Set(Object.values(feeds).map((t) => t.dims[0]))];

for (const [what, opts, K] of [
  ['beam search (num_beams 3)', { numBeams: 3, maxNewTokens: 9, eosTokenId: 6 }, 3],
  ['beam search (num_beams 4, 2 returned, length penalty)', { numBeams: 4, numReturnSequences: 2, maxNewTokens: 8, lengthPenalty: 0.7, eosTokenId: 6 }, 4],
  ['beam sampling (num_beams 3)', { numBeams: 3, doSample: true, seed: 5, maxNewTokens: 8, eosTokenId: 6 }, 3],
  ['sampling (3 sequences per prompt)', { doSample: true, numReturnSequences: 3, seed: 9, maxNewTokens: 8 }, 3],
] as Array<[string, GenerationOptions, number]>) for (const grouped of [false, true]) {
  test(`${what}: prefill of B rows, cross K/V ${grouped ? 'one row per image (grouped decoder)' : 'expanded once'}, results as prefilling B x beams`, async () => {
    const s = standIn();
    const model = new OnnxDecoderStepModel({ session: s, decoder: grouped ? { ...FACTS, cross_rows: 'grouped' } : FACTS, encoded: encoded() });
    const reorders: number[][] = [];
    const spy: StepModel<DecoderState> = {
      step: (i, st) => model.step(i, st),
      reorder: (st, rows) => (reorders.push(rows), model.reorder(st, rows)),
    };
    const prompt = { inputIds: [[1, 2], [3, 2]] };
    const ours = await generate(spy, prompt, opts);
    const ref = new Reference(IMAGES, K);
    const theirs = await generate(ref, prompt, opts);
    assert.equal(ref.prefillRows, 2 * K);
    assert.deepEqual(ours.sequences, theirs.sequences);
    assert.deepEqual(ours.sequenceScores, theirs.sequenceScores);
    // the prefill ran with the 2 prompt rows, every later step with 2 x K rows
    assert.deepEqual(batches(s.calls[0]), [2]);
    assert.ok(s.calls.length > 2);
    if (grouped) {
      // cross K/V and its mask: encode.onnx's two rows at every step, never copied
      for (const c of s.calls.slice(1)) {
        assert.deepEqual(batches(c), [2 * K, 2]);
        assert.equal(c['cross.0.key'], s.calls[0]['cross.0.key']);
        assert.equal(c.cross_attention_mask, s.calls[0].cross_attention_mask);
      }
    } else {
      for (const c of s.calls.slice(1)) assert.deepEqual(batches(c), [2 * K]);
      // cross K/V and its mask: built once after the prefill (row i reads image i / K), the same tensors every step
      const cross = s.calls[1]['cross.0.key'];
      assert.deepEqual(Array.from(cross.data as Float32Array), IMAGES.flatMap((v) => new Array<number>(K).fill(v)));
      for (const c of s.calls.slice(2)) {
        assert.equal(c['cross.0.key'], cross);
        assert.equal(c.cross_attention_mask, s.calls[1].cross_attention_mask);
      }
    }
    if (opts.numBeams) {
      // the beams did move between rows (the reorders were not all the identity), within their prompt
      assert.ok(reorders.slice(1).some((r) => r.some((x, i) => x !== i)));
      for (const r of reorders.slice(1)) r.forEach((x, i) => assert.equal(Math.floor(x / K), Math.floor(i / K)));
    }
  });
}

test('reorder: past gathered, encoder-side rows rebuilt from the per-image rows only when the row -> image mapping changes', async () => {
  const s = standIn();
  const model = new OnnxDecoderStepModel({ session: s, decoder: FACTS, encoded: encoded() });
  const a = await model.step({ inputIds: BigInt64Array.from([4n, 5n]), batch: 2, seqLen: 1, attentionMask: BigInt64Array.from([1n, 1n]), pastLength: 0, prefill: true }, undefined);
  const e = model.reorder(a.state, [0, 0, 1, 1]);
  assert.deepEqual(e.origin, [0, 0, 1, 1]);
  assert.deepEqual(Array.from(e.fixed['cross.0.key'].data as Float32Array), [0.25, 0.25, -1.5, -1.5]);
  assert.deepEqual(Array.from(e.past['past.0.key'].data as Float32Array), [4, 4, 5, 5]);
  // within the images: no copy of the encoder-side tensors
  const w = model.reorder(e, [1, 0, 3, 3]);
  assert.equal(w.fixed['cross.0.key'], e.fixed['cross.0.key']);
  assert.equal(w.fixed.cross_attention_mask, e.fixed.cross_attention_mask);
  assert.deepEqual(w.mask, [[1], [1], [1], [1]]);
  // the identity keeps the past too
  const id = model.reorder(w, [0, 1, 2, 3]);
  assert.equal(id.past['past.0.key'], w.past['past.0.key']);
  // across images: rebuilt from the encoded rows (not from the expanded ones)
  const x = model.reorder(w, [3, 0]);
  assert.deepEqual(x.origin, [1, 0]);
  assert.deepEqual(Array.from(x.fixed['cross.0.key'].data as Float32Array), [-1.5, 0.25]);
  assert.equal(x.base, a.state.base);
  assert.throws(() => model.reorder(w, [4]), (err: unknown) => (err as { code?: string }).code === 'BLIP5031');
});

test('reorder, grouped decoder: the encoded rows as they are while each image\'s rows are one contiguous run of equal length', async () => {
  const s = standIn();
  const model = new OnnxDecoderStepModel({ session: s, decoder: { ...FACTS, cross_rows: 'grouped' }, encoded: encoded() });
  const a = await model.step({ inputIds: BigInt64Array.from([4n, 5n]), batch: 2, seqLen: 1, attentionMask: BigInt64Array.from([1n, 1n]), pastLength: 0, prefill: true }, undefined);
  for (const rows of [[0, 0, 1, 1], [0, 0, 0, 1, 1, 1], [0, 1]]) {
    const e = model.reorder(a.state, rows);
    assert.equal(e.fixed['cross.0.key'], a.state.base['cross.0.key'], JSON.stringify(rows));
    assert.equal(e.fixed.cross_attention_mask, a.state.base.cross_attention_mask);
  }
  // rows the groups cannot describe: gathered to one per row, as for an older artifact
  for (const [rows, want] of [
    [[1, 0], [-1.5, 0.25]],
    [[0, 1, 0, 1], [0.25, -1.5, 0.25, -1.5]],
    [[0, 0, 1], [0.25, 0.25, -1.5]],
  ] as Array<[number[], number[]]>) {
    const e = model.reorder(a.state, rows);
    assert.deepEqual(Array.from(e.fixed['cross.0.key'].data as Float32Array), want, JSON.stringify(rows));
    assert.equal(e.fixed.cross_attention_mask.dims[0], rows.length);
  }
  // and the step reads each row's own image either way
  const out = await model.step({ inputIds: BigInt64Array.from([1n, 1n]), batch: 2, seqLen: 1, attentionMask: BigInt64Array.from([1n, 1n, 1n, 1n]), pastLength: 1, prefill: false }, model.reorder(a.state, [1, 0]));
  assert.deepEqual(out.logits.subarray(0, V), rowLogits(-1.5, [5, 1]));
});

// ---- the compiled fixtures: logits of the shared prefill == logits of a B x beams prefill ----

const tmp = tempDir('blip-beams-');
after(() => tmp.remove());

const i64 = (rows: number[][]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);
function repeatRows(t: ort.Tensor, k: number): ort.Tensor {
  const d = t.data as Float32Array | BigInt64Array;
  const per = d.length / t.dims[0];
  const out = new (d.constructor as new (n: number) => Float32Array | BigInt64Array)(d.length * k);
  for (let b = 0; b < t.dims[0]; b++) for (let j = 0; j < k; j++) out.set(d.subarray(b * per, (b + 1) * per) as never, (b * k + j) * per);
  return new ort.Tensor(t.type as 'float32', out as Float32Array, [t.dims[0] * k, ...t.dims.slice(1)]);
}

for (const fixture of ['blip-caption-a', 'blip2-opt-a', 'blip2-t5-a', 'instructblip-vicuna-a']) {
  const present = existsSync(fixturePath(fixture, 'expected.json'));
  test(`${fixture}: the shared prefill's logits equal a B x beams prefill's bit for bit, the next steps within 1e-5`, { skip: !present && `fixture ${fixture} not present` }, async () => {
    const dir = await compileFixture(fixture, tmp.dir);
    const m = readManifest(dir);
    const exp = (await import('node:fs')).readFileSync(fixturePath(fixture, 'expected.json'), 'utf8');
    const e = JSON.parse(exp) as { cases: FixtureInputs[]; num_query_tokens?: number; image_token_index?: number };
    const c = e.cases[0];
    const st = SafetensorsFile.open(fixturePath(fixture, 'expected.safetensors'));
    const pv = st.info('pixel_values')!;
    const opts = { graphOptimizationLevel: 'all' as const, intraOpNumThreads: 1 };
    const enc = await ort.InferenceSession.create(join(dir, 'encode.onnx'), opts);
    const dec = await ort.InferenceSession.create(join(dir, 'decoder.onnx'), opts);
    try {
      const Q = e.num_query_tokens ?? 0;
      const placeholders = typeof e.image_token_index === 'number';
      const feeds: Record<string, ort.Tensor> = { pixel_values: new ort.Tensor('float32', Float32Array.from(st.readFloat32('pixel_values')), pv.shape) };
      if (enc.inputNames.includes('qformer_input_ids')) Object.assign(feeds, { qformer_input_ids: i64(c.qformer_input_ids!), qformer_attention_mask: i64(c.qformer_attention_mask!) });
      if (enc.inputNames.includes('input_ids')) {
        const cut = (rows: number[][]) => (placeholders ? rows.map((r) => r.slice(Q)) : rows);
        Object.assign(feeds, { input_ids: i64(cut(c.input_ids!)), attention_mask: i64(cut(c.attention_mask!)) });
      }
      const enc1 = (await enc.run(feeds)) as Record<string, ort.Tensor>;
      const K = 3;
      const encK = Object.fromEntries(Object.entries(enc1).map(([n, t]) => [n, repeatRows(t, K)]));
      const ids = c.decoder_input_ids ?? c.input_ids!;
      const mask = c.decoder_input_ids ? (c.decoder_attention_mask ?? ids.map((r) => r.map(() => 1))) : c.attention_mask!;
      const B = ids.length;
      const P = ids[0].length;
      const prefix = dec.inputNames.includes('prefix_embeds') ? { placeholders } : undefined;
      const shared = new OnnxDecoderStepModel({ session: dec, decoder: m.decoder!, encoded: enc1, prefix });
      const hf = new OnnxDecoderStepModel({ session: dec, decoder: m.decoder!, encoded: encK, prefix });
      const flat = (rows: number[][]) => BigInt64Array.from(rows.flat().map(BigInt));
      const expand = <T>(rows: T[]): T[] => rows.flatMap((r) => Array.from({ length: K }, () => r));
      const a = await shared.step({ inputIds: flat(ids), batch: B, seqLen: P, attentionMask: flat(mask), pastLength: 0, prefill: true }, undefined);
      const h = await hf.step({ inputIds: flat(expand(ids)), batch: B * K, seqLen: P, attentionMask: flat(expand(mask)), pastLength: 0, prefill: true }, undefined);
      const Vd = a.vocab;
      for (let r = 0; r < B * K; r++) {
        assert.deepEqual(h.logits.subarray(r * Vd, (r + 1) * Vd), a.logits.subarray(Math.floor(r / K) * Vd, (Math.floor(r / K) + 1) * Vd), `prefill row ${r}`);
      }
      // expand the shared state to the beams, then step both through the same beam reorders
      let sa = shared.reorder(a.state, expand(Array.from({ length: B }, (_, b) => b)));
      let sh = h.state;
      const steps: number[][] = [
        [1, 0, 2, 5, 5, 3],
        [0, 0, 1, 3, 4, 5],
        [2, 1, 0, 4, 4, 4],
      ].map((r) => r.slice(0, B * K));
      let m2 = expand(mask).map((r) => r.slice());
      for (let j = 0; j < steps.length; j++) {
        const tok = BigInt64Array.from({ length: B * K }, (_, r) => BigInt((7 * r + 3 * j + 1) % Vd));
        for (const r of m2) r.push(1);
        const inp = { inputIds: tok, batch: B * K, seqLen: 1, attentionMask: flat(m2), pastLength: m2[0].length - 1, prefill: false };
        const oa = await shared.step(inp, sa);
        const oh = await hf.step(inp, sh);
        // The beams of an image attend to its one copy of the cross K/V as query positions
        // (cross_rows 'grouped'): the same sums in another kernel's order, so not bit for bit.
        if (m.decoder!.cross_rows === 'grouped') {
          assert.ok(!(sa.fixed['cross.0.key'] ?? sa.fixed.cross_attention_mask) || Object.values(sa.fixed).every((t) => t.dims[0] === B), 'cross K/V stay one row per image');
          const scale = oh.logits.reduce((x, v) => Math.max(x, Math.abs(v)), 0);
          const diff = oa.logits.reduce((x, v, i) => Math.max(x, Math.abs(v - oh.logits[i])), 0);
          assert.ok(diff <= 1e-5 * scale, `${fixture} step ${j + 1}: max difference ${diff} at scale ${scale}`);
        } else assert.deepEqual(oa.logits, oh.logits, `${fixture} step ${j + 1}`);
        sa = shared.reorder(oa.state, steps[j]);
        sh = hf.reorder(oh.state, steps[j]);
        m2 = steps[j].map((r) => m2[r].slice());
      }
    } finally {
      await enc.release();
      await dec.release();
    }
  });
}

// ---- the task API: encode.onnx once per image batch, the prefill with B rows, on transformers' beams ----

function recording(s: ort.InferenceSession) {
  const calls: Array<Record<string, ort.Tensor>> = [];
  return { calls, inputNames: s.inputNames, outputNames: s.outputNames, run: (f: Record<string, ort.Tensor>) => (calls.push(f), s.run(f) as Promise<Record<string, ort.Tensor>>) };
}

for (const fixture of ['blip-caption-a', 'blip2-opt-a', 'blip2-t5-a']) {
  const present = existsSync(fixturePath(fixture, 'expected.json'));
  test(`generate() with num_beams 3 on ${fixture}: one encode of B rows, a prefill of B rows, transformers' beams`, { skip: !present && `fixture ${fixture} not present` }, async () => {
    const dir = await compileFixture(fixture, tmp.dir);
    const manifest = readManifest(dir);
    const opts = { graphOptimizationLevel: 'all' as const, intraOpNumThreads: 1 };
    const encS = await ort.InferenceSession.create(join(dir, 'encode.onnx'), opts);
    const decS = await ort.InferenceSession.create(join(dir, 'decoder.onnx'), opts);
    try {
      const encode = recording(encS);
      const decoder = recording(decS);
      const ctx: GenerateContext = { manifest, preprocess: preprocessFromManifest(manifest.preprocess), tokenizer: loadTokenizer(join(dir, manifest.tokenizer!.dir)), encode, decoder };
      const exp = expected(fixture);
      const images = imagesOf(exp);
      const B = images.length;
      const c = exp.cases![0];
      const g = c.generation.find((x) => x.name === 'beam3')!;
      const res = await generateForImages(ctx, images, { prompt: c.prompt ?? undefined, numBeams: 3, maxNewTokens: g.kwargs.max_new_tokens as number, earlyStopping: false, minNewTokens: 0, repetitionPenalty: 1, noRepeatNgramSize: 0, lengthPenalty: 1 });
      const eos = manifest.text.eos_token_id;
      res.forEach((r, b) => {
        const fresh = g.new_tokens[b];
        const cut = fresh.findIndex((t) => eos.includes(t));
        assert.deepEqual(r.tokenIds, cut < 0 ? fresh : fresh.slice(0, cut + 1), `${fixture} row ${b}`);
        assert.ok(Math.abs(r.score! - g.sequences_scores![b]) < 1e-3, `${fixture} row ${b}: score ${r.score} vs ${g.sequences_scores![b]}`);
      });
      assert.equal(encode.calls.length, 1);
      assert.deepEqual(batches(encode.calls[0]), [B]);
      assert.deepEqual(batches(decoder.calls[0]), [B]);
      assert.ok(decoder.calls.length > 2);
      const fixedNames = Object.keys(decoder.calls[1]).filter((n) => n.startsWith('cross') && manifest.decoder!.from_encode.includes(n));
      assert.equal(fixedNames.length > 0, !!manifest.decoder!.cross_attention, fixedNames.join());
      assert.equal(manifest.decoder!.cross_rows, manifest.decoder!.cross_attention ? 'grouped' : undefined);
      // the beams' rows: 3 B; the cross K/V and mask: the B rows encode.onnx gave, never copied
      for (const f of decoder.calls.slice(1)) assert.deepEqual(batches(f), fixedNames.length ? [3 * B, B] : [3 * B]);
      for (const f of decoder.calls.slice(1)) for (const n of fixedNames) assert.equal(f[n], decoder.calls[0][n], `${n} copied`);
    } finally {
      await encS.release();
      await decS.release();
    }
  });
}
