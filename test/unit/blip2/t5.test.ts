// Flan-T5 / T5 against transformers: the encoder over [soft prompt ; prompt] (encode side, with
// every decoder layer's cross keys/values), then the decoder one token at a time with its cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../../src/lower/GraphBuilder.js';
import { WeightStore } from '../../../src/lower/WeightStore.js';
import { floatInput, floatOutput } from '../../../src/lower/transformer.js';
import { Checkpoint } from '../../../src/weights/checkpoint.js';
import { T5, relativeBucketTable, t5Encode } from '../../../src/nodes/t5.js';
import { Built, DEBUG, assertClose, contextFor, readJson, readTensors, resolved, stepInputs, stepOutputs, toOrt, type Tensor } from './harness.js';

function at(t: Tensor, pos: number): Float32Array {
  const [B, T, V] = t.dims;
  const out = new Float32Array(B * V);
  for (let b = 0; b < B; b++) out.set((t.data as Float32Array).subarray((b * T + pos) * V, (b * T + pos + 1) * V), b * V);
  return out;
}

test('t5: relative position buckets follow transformers float32 arithmetic at the log-spaced edges', () => {
  // Reference values from T5Attention._relative_position_bucket (transformers 5.12.1).
  const bi = relativeBucketTable(true, 32, 128);
  const at = (rel: number) => Number(bi[rel + 128]);
  assert.deepEqual([-128, -64, -32, -16, -9, -8, -1, 0, 1, 8, 15, 16, 31, 32, 64, 127, 128].map(at), [15, 14, 12, 10, 8, 8, 1, 0, 17, 24, 25, 26, 27, 28, 30, 31, 31]);
  const uni = relativeBucketTable(false, 32, 128);
  assert.deepEqual([-128, -64, -16, -15, -1, 0, 5].map((r) => Number(uni[r + 128])), [31, 26, 16, 15, 1, 0, 0]);
});

test('t5: at the fewest buckets and shortest max distance the compile accepts (4 buckets, max distance buckets / 2 + 1) the table is transformers\'', () => {
  // T5Attention._relative_position_bucket (transformers 5.12.1) over -md..md; it keeps the edge buckets
  // beyond ±md too (checked there out to ±(md + 200)), which the table's clipping assumes. One bucket
  // or one distance fewer is refused (BLIP4017; errors.test.ts): transformers divides by zero there, or
  // gives bucket ids outside its table.
  const reference: Array<[number, number, boolean, number[]]> = [
    [4, 3, true, [1, 1, 1, 0, 3, 3, 3]],
    [4, 3, false, [3, 2, 1, 0, 0, 0, 0]],
    [5, 3, true, [1, 1, 1, 0, 3, 3, 3]],
    [5, 3, false, [4, 2, 1, 0, 0, 0, 0]],
    [8, 5, true, [3, 3, 2, 2, 1, 0, 5, 6, 6, 7, 7]],
    [8, 5, false, [7, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0]],
    [9, 5, false, [8, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0]],
  ];
  for (const [n, md, bidirectional, want] of reference) assert.deepEqual([...relativeBucketTable(bidirectional, n, md)].map(Number), want, `${n} buckets, max distance ${md}, ${bidirectional ? 'bi' : 'uni'}directional`);
});

// Original T5 (debug fixture of test/oracle/blip2_debug.py): relu, tied head scaled by d_model**-0.5,
// d_kv · heads != d_model, 32 buckets over 128 positions, one decoder layer under two encoder layers.
// Flan-T5: compile.test.ts.
for (const name of ['blip2-t5-tied']) {
  const dir = join(DEBUG, name);
  test(`t5: ${name} encoder states and cached decoder steps match transformers`, async (t) => {
    const ck = Checkpoint.open(dir);
    const exp = readTensors(join(dir, 'expected.safetensors'));
    const meta = readJson(join(dir, 'expected.json')) as { greedy: number[][] };
    const a = resolved(T5, ck, 'text_config');
    const lowering = T5.lowering!.decoder!;
    const store = new WeightStore('float32');

    // encode.onnx's part of T5: the encoder over [soft prompt ; prompt], cross keys/values per decoder layer.
    const enc = new GraphBuilder('encode', store);
    const text = { type: 'text' as const, ids: enc.input('input_ids', 'int64', ['batch', 'sequence']), mask: enc.input('attention_mask', 'int64', ['batch', 'sequence']) };
    const prefix = { type: 'features' as const, hidden: floatInput(enc, 'projected', ['batch', 'queries', a.width as number]) };
    const side = t5Encode(contextFor(enc, ck, 'language_model', a, ['prefix', 'text']), prefix.hidden, text);
    floatOutput(enc, side.states, 'encoder_hidden');
    side.cross.forEach((kv, i) => {
      floatOutput(enc, kv.key, `cross.${i}.key`);
      floatOutput(enc, kv.value, `cross.${i}.value`);
    });
    enc.output(side.mask, 'cross_attention_mask', 'int64');

    const dec = new GraphBuilder('decoder', store);
    const dctx = contextFor(dec, ck, 'language_model', a, ['prefix', 'text']);
    const f = lowering.facts(dctx);
    stepOutputs(dec, lowering.step(dctx, stepInputs(dec, f, { cross: side.cross.length })));
    const [N, dkv, layers, V] = [f.kvHeads, f.headDim, f.layers, f.vocab];
    const built = await Built.from(store, [enc, dec]);
    try {
      const encOut = await built.run('encode', { projected: toOrt(exp.get('projected')!), input_ids: toOrt(exp.get('text_input_ids')!), attention_mask: toOrt(exp.get('text_attention_mask')!) });
      const encDiff = assertClose(encOut.encoder_hidden, exp.get('encoder_hidden')!, 'encoder states');
      const decIds = exp.get('decoder_input_ids')!;
      const [B, steps] = decIds.dims;
      const cross: Record<string, ort.Tensor> = { cross_attention_mask: encOut.cross_attention_mask };
      for (let i = 0; i < layers; i++) Object.assign(cross, { [`cross.${i}.key`]: encOut[`cross.${i}.key`], [`cross.${i}.value`]: encOut[`cross.${i}.value`] });
      let past: Record<string, ort.Tensor> = {};
      const empty = new ort.Tensor('float32', new Float32Array(0), [B, N, 0, dkv]);
      for (let i = 0; i < layers; i++) Object.assign(past, { [`past.${i}.key`]: empty, [`past.${i}.value`]: empty });
      let worst = 0;
      const greedy: number[][] = Array.from({ length: B }, () => []);
      for (let s = 0; s < steps; s++) {
        const step = Array.from({ length: B }, (_, r) => (decIds.data as BigInt64Array)[r * steps + s]);
        const out = await built.run('decoder', {
          input_ids: new ort.Tensor('int64', BigInt64Array.from(step), [B, 1]),
          attention_mask: new ort.Tensor('int64', new BigInt64Array(B * (s + 1)).fill(1n), [B, s + 1]),
          ...past,
          ...cross,
        });
        worst = Math.max(worst, assertClose(out.logits, at(exp.get('logits')!, s), `step ${s} logits`));
        const lg = out.logits.data as Float32Array;
        for (let r = 0; r < B; r++) {
          let best = 0;
          for (let v = 1; v < V; v++) if (lg[r * V + v] > lg[r * V + best]) best = v;
          greedy[r].push(best);
        }
        past = {};
        for (let i = 0; i < layers; i++) Object.assign(past, { [`past.${i}.key`]: out[`present.${i}.key`], [`past.${i}.value`]: out[`present.${i}.value`] });
      }
      t.diagnostic(`encoder ${encDiff.toExponential(2)}, decoder max over ${steps} steps ${worst.toExponential(2)}`);
      assert.deepEqual(greedy.map((row) => row.slice(0, steps - 1)), meta.greedy.map((row) => row.slice(1)));
    } finally {
      await built.close();
      ck.close();
    }
  });
}
