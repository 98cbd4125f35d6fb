// A decoder-only LLM step by step against transformers (debug fixtures of test/oracle/blip2_debug.py:
// LLaMA with rope_theta 500000 at the top level of its config, the older layout; linear and llama3
// rotary scaling; a head_dim other than hidden_size / heads): the soft prompt
// from the recorded projected query outputs, prefill of [prefix ; prompt] (left-padded batch), then
// one step per greedy token with the KV cache. Every step's logits must match the teacher-forced
// logits of the reference at that position, and the greedy tokens must be the reference's.
// OPT and LLaMA in their other layouts: compile.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../../src/lower/GraphBuilder.js';
import { WeightStore } from '../../../src/lower/WeightStore.js';
import { floatInput, floatOutput } from '../../../src/lower/transformer.js';
import { Checkpoint } from '../../../src/weights/checkpoint.js';
import { Llama } from '../../../src/nodes/llama.js';
import type { NodeKind } from '../../../src/nodes/NodeKind.js';
import { Built, DEBUG, assertClose, contextFor, readJson, readTensors, resolved, stepInputs, stepOutputs, type Tensor } from './harness.js';

/** Row t of axis 1 of a (B, T, V) tensor -> (B, V). */
function at(t: Tensor, pos: number): Float32Array {
  const [B, T, V] = t.dims;
  const out = new Float32Array(B * V);
  for (let b = 0; b < B; b++) out.set((t.data as Float32Array).subarray((b * T + pos) * V, (b * T + pos + 1) * V), b * V);
  return out;
}

function argmax(x: Float32Array, V: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / V; r++) {
    let best = 0;
    for (let i = 1; i < V; i++) if (x[r * V + i] > x[r * V + best]) best = i;
    out.push(best);
  }
  return out;
}

// name, kind, attributes the case must resolve (each case's reason to exist)
const CASES: Array<[string, NodeKind, Record<string, unknown>]> = [
  ['instructblip-vicuna-theta', Llama, { rope_theta: 500000 }], // read from the top level of text_config
  ['instructblip-vicuna-rope-linear', Llama, { rope_type: 'linear', rope_factor: 4 }],
  ['instructblip-vicuna-rope-llama3', Llama, { rope_type: 'llama3', rope_factor: 8, rope_low_freq_factor: 1, rope_high_freq_factor: 4, rope_original_max_positions: 8, rope_theta: 500000 }],
  ['instructblip-vicuna-headdim', Llama, { head_dim: 8, heads: 2, width: 32 }], // head_dim ≠ width / heads: scores scaled by 8^-½
];

for (const [name, kind, wanted] of CASES) {
  const dir = join(DEBUG, name);
  test(`decoder: ${name} prefill and cached steps match transformers`, async (t) => {
    const ck = Checkpoint.open(dir);
    const exp = readTensors(join(dir, 'expected.safetensors'));
    const meta = readJson(join(dir, 'expected.json')) as { greedy: number[][] };
    const a = resolved(kind, ck, 'text_config');
    for (const [k, v] of Object.entries(wanted)) assert.equal(a[k], v, `${name}: ${k}`);
    const lowering = kind.lowering!.decoder!;
    const store = new WeightStore('float32');

    // encode.onnx's part of the LLM: the soft prompt as it enters the input embeddings.
    const enc = new GraphBuilder('encode', store);
    const H = exp.get('projected')!.dims[2];
    const side = lowering.encode(contextFor(enc, ck, 'language_model', a, ['prefix']), { prefix: { type: 'features', hidden: floatInput(enc, 'projected', ['batch', 'queries', H]) } });
    floatOutput(enc, side.prefix!, 'prefix_embeds');
    const dec = new GraphBuilder('decoder', store);
    const dctx = contextFor(dec, ck, 'language_model', a, ['prefix', 'text']);
    const c = lowering.facts(dctx);
    const prefixWidth = (a.embed_width ?? a.width) as number;
    stepOutputs(dec, lowering.step(dctx, stepInputs(dec, c, { prefixWidth })));
    const V = c.vocab;
    const built = await Built.from(store, [enc, dec]);
    try {
      const { prefix_embeds } = await built.run('encode', { projected: new ort.Tensor('float32', exp.get('projected')!.data as Float32Array, exp.get('projected')!.dims) });
      const [B, Q] = prefix_embeds.dims as number[];
      const ids = exp.get('text_input_ids')!;
      const textMask = [...(exp.get('text_attention_mask')!.data as BigInt64Array)];
      const S0 = ids.dims[1];
      let mask: bigint[][] = Array.from({ length: B }, (_, r) => [...Array(Q).fill(1n), ...textMask.slice(r * S0, (r + 1) * S0)]);
      const empty = (n: number) => new ort.Tensor('float32', new Float32Array(0), [B, c.kvHeads, 0, c.headDim].map((d, i) => (i === 2 ? n : d)));
      let past: Record<string, ort.Tensor> = {};
      for (let i = 0; i < c.layers; i++) past = { ...past, [`past.${i}.key`]: empty(0), [`past.${i}.value`]: empty(0) };

      const logits = exp.get('logits')!;
      const cont = exp.get('continuation_ids')!;
      const steps = cont.dims[1];
      const feedMask = () => new ort.Tensor('int64', BigInt64Array.from(mask.flat()), [B, mask[0].length]);
      let worst = 0;
      let feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor('int64', ids.data as BigInt64Array, ids.dims), prefix_embeds, attention_mask: feedMask(), ...past };
      const greedy: number[][] = Array.from({ length: B }, () => []);
      for (let s = 0; s <= steps; s++) {
        const out = await built.run('decoder', feeds);
        worst = Math.max(worst, assertClose(out.logits, at(logits, Q + S0 - 1 + s), `step ${s} logits`));
        argmax(out.logits.data as Float32Array, V).forEach((tok, r) => greedy[r].push(tok));
        if (s === steps) break;
        const next = Array.from({ length: B }, (_, r) => (cont.data as BigInt64Array)[r * steps + s]);
        mask = mask.map((row) => [...row, 1n]);
        past = {};
        for (let i = 0; i < c.layers; i++) past = { ...past, [`past.${i}.key`]: out[`present.${i}.key`], [`past.${i}.value`]: out[`present.${i}.value`] };
        feeds = { input_ids: new ort.Tensor('int64', BigInt64Array.from(next), [B, 1]), prefix_embeds: new ort.Tensor('float32', new Float32Array(0), [B, 0, prefixWidth]), attention_mask: feedMask(), ...past };
      }
      t.diagnostic(`max rel diff over ${steps + 1} steps: ${worst.toExponential(2)}`);
      // Greedy tokens: the reference's continuation (the last argmax predicts one token further).
      const refNew = meta.greedy.map((row) => row.slice(row.length - steps));
      assert.deepEqual(greedy.map((row) => row.slice(0, steps)), refNew);
    } finally {
      await built.close();
      ck.close();
    }
  });
}
