// The ONNX-backed StepModel end to end: each oracle checkpoint compiled from its shipped graph,
// encode.onnx run on the fixture's pixel_values (and text), then runtime/generation's loop driving
// decoder.onnx through OnnxDecoderStepModel — greedy, beam search, and both with repetition penalty,
// no-repeat n-grams, min_new_tokens and a length penalty — must give transformers' exact sequences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadProgram } from '../../../src/syntax/load.js';
import { compile } from '../../../src/lower/compile.js';
import { readManifest, type Manifest } from '../../../src/artifact/manifest.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { generate, OnnxDecoderStepModel, type GenerationOptions } from '../../../runtime/generation/index.js';
import { fixturePath, repoRoot, type FixtureCase as Case } from './fixtures.js';
import type { Target } from '../../../src/rewrite/index.js';

const GRAPHS: Array<[string, string]> = [
  ['blip-caption-a', 'blip-caption'],
  ['blip-caption-b', 'blip-caption'],
  ['blip-vqa-a', 'blip-vqa'],
  ['blip2-opt-a', 'blip2-opt'],
  ['blip2-opt-b', 'blip2-opt'],
  ['blip2-opt-legacy', 'blip2-opt'],
  ['blip2-t5-a', 'blip2-t5'],
  ['instructblip-vicuna-a', 'instructblip-vicuna'],
  ['instructblip-vicuna-b', 'instructblip-vicuna'],
  ['instructblip-t5-a', 'instructblip-t5'],
];

const camel = (k: string): string => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const i64 = (rows: number[][]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);

async function compileFixture(fixture: string, graph: string, out: string, target: Target): Promise<Manifest> {
  const path = join(repoRoot(), 'graphs', `${graph}.blip`);
  const r = loadProgram(path);
  assert.ok(r.program, `${graph} does not load`);
  await compile({ model: r.program.models[0], graphFile: path, graphText: readFileSync(path, 'utf8'), weights: fixturePath(fixture, 'checkpoint'), out, target });
  return readManifest(out);
}

// Plain ONNX and the CPU target's fused operators (src/rewrite/) must generate the same tokens.
for (const [[fixture, graph], target] of GRAPHS.flatMap((g) => (['plain', 'cpu'] as const).map((t) => [g, t] as const))) {
  const present = existsSync(fixturePath(fixture, 'expected.json'));
  test(`decoder.onnx through OnnxDecoderStepModel + generate == transformers: ${fixture}${target === 'plain' ? '' : ` [--target ${target}]`}`, { skip: !present && `fixture ${fixture} not present` }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'blip-rt-'));
    try {
      const out = join(dir, 'out');
      const m = await compileFixture(fixture, graph, out, target);
      const exp = JSON.parse(readFileSync(fixturePath(fixture, 'expected.json'), 'utf8'));
      const st = SafetensorsFile.open(fixturePath(fixture, 'expected.safetensors'));
      const pv = st.info('pixel_values')!;
      const pixels = new ort.Tensor('float32', Float32Array.from(st.readFloat32('pixel_values')), pv.shape);
      const opts = { graphOptimizationLevel: 'all' as const, intraOpNumThreads: 1 };
      const enc = await ort.InferenceSession.create(join(out, 'encode.onnx'), opts);
      const dec = await ort.InferenceSession.create(join(out, 'decoder.onnx'), opts);
      const Q: number = exp.num_query_tokens ?? 0;
      const placeholders = typeof exp.image_token_index === 'number' && !fixture.includes('legacy');
      let runs = 0;
      for (const c of exp.cases as Case[]) {
        const feeds: Record<string, ort.Tensor> = { pixel_values: pixels };
        if (enc.inputNames.includes('qformer_input_ids')) Object.assign(feeds, { qformer_input_ids: i64(c.qformer_input_ids!), qformer_attention_mask: i64(c.qformer_attention_mask!) });
        if (enc.inputNames.includes('input_ids')) {
          // BLIP VQA: the question; T5: the encoder prompt without its Q placeholders
          const cut = (rows: number[][]) => (placeholders ? rows.map((r) => r.slice(Q)) : rows);
          Object.assign(feeds, { input_ids: i64(cut(c.input_ids!)), attention_mask: i64(cut(c.attention_mask!)) });
        }
        const encoded = (await enc.run(feeds)) as Record<string, ort.Tensor>;
        const encoderDecoder = !!c.decoder_input_ids;
        const legacy = !encoderDecoder && !placeholders;
        for (const g of c.generation) {
          const B = g.sequences.length / ((g.kwargs.num_return_sequences as number) ?? 1);
          const model = new OnnxDecoderStepModel({
            session: dec,
            decoder: m.decoder!,
            encoded,
            prefix: dec.inputNames.includes('prefix_embeds') ? { placeholders } : undefined,
            prefillText: legacy ? { inputIds: c.input_ids!, attentionMask: c.attention_mask! } : undefined,
          });
          const prompt = encoderDecoder
            ? { inputIds: c.decoder_input_ids!, attentionMask: c.decoder_attention_mask }
            : legacy
              ? { inputIds: Array.from({ length: B }, () => [] as number[]) }
              : { inputIds: c.input_ids!, attentionMask: c.attention_mask! };
          const o: Record<string, unknown> = {};
          for (const [k, v] of Object.entries(g.kwargs)) if (k !== 'do_sample') o[camel(k)] = v;
          const r = await generate(model, prompt, { ...(o as GenerationOptions), eosTokenId: m.text.eos_token_id, padTokenId: m.text.pad_token_id, vocabSize: m.decoder!.vocab_size });
          assert.deepEqual(r.sequences, g.sequences, `${fixture} ${c.name} ${g.name}`);
          assert.equal(r.promptLength, g.prompt_length);
          runs++;
        }
      }
      assert.ok(runs >= 4);
      t.diagnostic(`${runs} generations identical to transformers`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

// ---- OnnxDecoderStepModel mechanics with a stand-in session ----

function fakeSession(inputs: string[], V = 5) {
  const calls: Array<Record<string, ort.Tensor>> = [];
  return {
    calls,
    inputNames: inputs,
    outputNames: ['logits', 'present.0.key', 'present.0.value'],
    async run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
      calls.push(feeds);
      const B = feeds.input_ids.dims[0];
      const P = feeds['past.0.key'].dims[2];
      const S = feeds.input_ids.dims[1];
      const T = P + S;
      // present row b = [past row b ; new ids of row b] (D = 1)
      const present = new Float32Array(B * T);
      const past = feeds['past.0.key'].data as Float32Array;
      const ids = feeds.input_ids.data as BigInt64Array;
      for (let b = 0; b < B; b++) {
        present.set(past.subarray(b * P, (b + 1) * P), b * T);
        for (let j = 0; j < S; j++) present[b * T + P + j] = Number(ids[b * S + j]);
      }
      const kv = new ort.Tensor('float32', present, [B, 1, T, 1]);
      return { logits: new ort.Tensor('float32', new Float32Array(B * V), [B, V]), 'present.0.key': kv, 'present.0.value': kv };
    },
  };
}
const facts = (inputs: string[], positions: 'input' | 'attention_mask' = 'input') => ({ layers: 1, kv_heads: 1, head_dim: 1, vocab_size: 5, inputs, from_encode: [] as string[], positions });

test('OnnxDecoderStepModel: position_ids from the mask, past/present, reorder of every row-major tensor', async () => {
  const inputs = ['input_ids', 'attention_mask', 'position_ids', 'past.0.key', 'past.0.value'];
  const s = fakeSession(inputs);
  const m = new OnnxDecoderStepModel({ session: s, decoder: facts(inputs) });
  const ids = BigInt64Array.from([0n, 7n, 8n, 4n, 5n, 6n]);
  const mask = BigInt64Array.from([0n, 1n, 1n, 1n, 1n, 1n]);
  const a = await m.step({ inputIds: ids, batch: 2, seqLen: 3, attentionMask: mask, pastLength: 0, prefill: true }, undefined);
  // transformers 5.12: cumsum(mask) - 1, 0 at padding
  assert.deepEqual(Array.from(s.calls[0].position_ids.data as BigInt64Array, Number), [0, 0, 1, 0, 1, 2]);
  assert.equal(s.calls[0]['past.0.key'].dims[2], 0);
  const r = m.reorder(a.state, [1, 1, 0]);
  assert.deepEqual(r.mask, [[1, 1, 1], [1, 1, 1], [0, 1, 1]]);
  assert.deepEqual(Array.from(r.past['past.0.key'].data as Float32Array), [4, 5, 6, 4, 5, 6, 0, 7, 8]);
  await m.step({ inputIds: BigInt64Array.from([9n, 9n, 3n]), batch: 3, seqLen: 1, attentionMask: new BigInt64Array(12).fill(1n), pastLength: 3, prefill: false }, r);
  const c = s.calls[1];
  assert.deepEqual(Array.from(c.position_ids.data as BigInt64Array, Number), [3, 3, 2]);
  assert.deepEqual(Array.from(c.attention_mask.data as BigInt64Array, Number), [1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1]);
  assert.deepEqual(c['past.0.key'].dims, [3, 1, 3, 1]);
});

test('OnnxDecoderStepModel refuses graphs that break the contract (BLIP5044)', () => {
  const inputs = ['input_ids', 'attention_mask', 'past.0.key', 'past.0.value'];
  const code = (e: unknown) => (e as { code?: string }).code === 'BLIP5044';
  assert.throws(() => new OnnxDecoderStepModel({ session: fakeSession(inputs), decoder: facts([...inputs, 'position_ids']) }), code);
  assert.throws(() => new OnnxDecoderStepModel({ session: fakeSession([...inputs, 'mystery']), decoder: facts([...inputs, 'mystery']) }), code);
  const cross = [...inputs, 'cross.0.key'];
  assert.throws(() => new OnnxDecoderStepModel({ session: fakeSession(cross), decoder: { ...facts(cross), from_encode: ['cross.0.key'] } }), code);
  assert.throws(() => new OnnxDecoderStepModel({ session: fakeSession([...inputs, 'prefix_embeds']), decoder: facts([...inputs, 'prefix_embeds']) }), code);
});
