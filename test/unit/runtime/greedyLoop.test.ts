// runtime/generation/greedyLoop.ts: decoder.onnx wrapped in an ONNX Loop for greedy decoding on
// the CPU. The wrapped graph is the step graph (one Loop whose body holds every step node); with
// loop.max_steps = 1 its logits and present K/V are the step's bit for bit; generation through it
// gives the host loop's tokens (which the other tests hold to transformers') in 2 decoder calls
// instead of one per token — four tokens a call when the caller streams — minimum lengths included
// (EOS banned in the graph); sampling, beams and the other logits processors keep the host loop.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, linkSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { readManifest } from '../../../src/artifact/manifest.js';
import { load } from '../../../runtime/model.js';
import { openSession } from '../../../runtime/session.js';
import { LOOP, externalWeightBytes, wrapInGreedyLoop } from '../../../runtime/generation/greedyLoop.js';
import { compileFixture, expected, imagesOf, tempDir } from '../tasks/harness.js';
import { fixturePath } from './fixtures.js';

const { onnx } = onnxProto;
const tmp = tempDir('blip-greedy-loop-');
after(() => tmp.remove());

// decoder families: BERT with cross-attention K/V, OPT with a visual prefix, T5 with cross-attention, LLaMA
const CASES: Array<{ fixture: string; prompt?: string }> = [
  { fixture: 'blip-caption-a' },
  { fixture: 'blip2-opt-a', prompt: 'Question: what is it? Answer:' },
  { fixture: 'blip2-t5-a', prompt: 'Question: what is it? Answer:' },
  { fixture: 'instructblip-vicuna-a', prompt: 'Describe the image.' },
];

/** Counts decoder.onnx runs (the session with a logits output) while `fn` runs. */
async function decoderRuns<T>(fn: () => Promise<T>): Promise<{ result: T; runs: number }> {
  const proto = (ort.InferenceSession as unknown as { prototype: unknown }).prototype as { run: (...a: unknown[]) => Promise<unknown> };
  const run = proto.run;
  let runs = 0;
  proto.run = function (this: ort.InferenceSession, ...a: unknown[]) {
    if (this.outputNames.includes('logits')) runs++;
    return run.apply(this, a);
  };
  try {
    return { result: await fn(), runs };
  } finally {
    proto.run = run;
  }
}

/** Whether each fixture's default load used the Loop (both kinds should occur), resident and staged. */
const defaults: boolean[] = [];
const stagedDefaults: boolean[] = [];

/** Fixtures where a row stops before 11 tokens unless EOS is banned (the ban is exercised). */
const banMattered: string[] = [];

const opTypes = (nodes: onnxProto.onnx.INodeProto[]): string[] => nodes.map((n) => `${n.domain ?? ''}:${n.opType}`).sort();

for (const { fixture, prompt } of CASES) {
  test(`${fixture}: the wrapped decoder is one Loop over the step's nodes, and with max_steps 1 it is the step, bit for bit`, async () => {
    const dir = await compileFixture(fixture, tmp.dir);
    const m = readManifest(dir);
    const file = join(dir, m.graphs.decoder!.file);
    const bytes = new Uint8Array(readFileSync(file));
    const wrapped = wrapInGreedyLoop(bytes);
    assert.ok(wrapped, 'wrapped');
    const before = onnx.ModelProto.decode(bytes).graph!;
    const after_ = onnx.ModelProto.decode(wrapped).graph!;
    assert.deepEqual(opTypes(after_.node ?? []), [':Constant', ':Constant', ':Loop']);
    const body = (after_.node ?? []).find((n) => n.opType === 'Loop')!.attribute!.find((a) => a.name === 'body')!.g!;
    const stepOps = opTypes(before.node ?? []);
    const bodyOps = opTypes(body.node ?? []);
    for (const op of new Set(stepOps)) assert.equal(bodyOps.filter((o) => o === op).length >= stepOps.filter((o) => o === op).length, true, op);
    assert.ok(bodyOps.includes(':ArgMax') && bodyOps.includes(':Where'));
    // the weights go with the nodes into the body (onnxruntime's NCHWc pass rewrites only a graph's own)
    assert.equal((body.initializer ?? []).length, (before.initializer ?? []).length, 'initializers move into the body, once');
    assert.equal((after_.initializer ?? []).length, 0);
    const outer = onnx.ModelProto.decode(wrapInGreedyLoop(bytes, { weightsInBody: false })!).graph!;
    assert.equal((outer.initializer ?? []).length, (before.initializer ?? []).length, 'weightsInBody false: they stay in the main graph');

    // one prefill step through both, same feeds
    const plain = (await openSession(file, { threads: 1 })).session;
    const loop = (await openSession(file, { threads: 1, greedyLoop: true })).session;
    assert.ok(loop.inputNames.includes(LOOP.maxSteps) && loop.outputNames.includes(LOOP.tokens));
    const d = m.decoder!;
    const B = 2;
    const S = 3;
    const feeds: Record<string, ort.Tensor> = {};
    for (const io of m.graphs.decoder!.inputs) {
      const dims = io.shape.map((x, i) => (i === 0 ? B : typeof x === 'number' ? x : x === 'past_sequence' ? 0 : x === 'prefix_sequence' ? 2 : x === 'total_sequence' ? S + (m.graphs.decoder!.inputs.some((i2) => i2.name === 'prefix_embeds') ? 2 : 0) : x === 'sequence' || x === 'position_sequence' ? S : 5));
      const n = dims.reduce((a, b) => a * b, 1);
      const value = (i: number): bigint => (io.name.includes('mask') ? 1n : io.name === 'position_ids' ? BigInt(i % S) : BigInt((i * 7) % Math.min(d.vocab_size, 50)));
      feeds[io.name] =
        io.type === 'int64'
          ? new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => value(i)), dims)
          : new ort.Tensor('float32', Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 0.5), dims);
    }
    const a = await plain.run(feeds);
    const b = await loop.run({
      ...feeds,
      [LOOP.maxSteps]: new ort.Tensor('int64', BigInt64Array.from([1n]), []),
      [LOOP.eosIds]: new ort.Tensor('int64', BigInt64Array.from([-1n]), [1]),
      [LOOP.padId]: new ort.Tensor('int64', BigInt64Array.from([0n]), []),
      [LOOP.finished]: new ort.Tensor('bool', new Uint8Array(B), [B]),
      [LOOP.eosBan]: new ort.Tensor('float32', new Float32Array(1), [1]),
      [LOOP.banSteps]: new ort.Tensor('int64', BigInt64Array.from([0n]), []),
    });
    for (const name of plain.outputNames) {
      const x = a[name].data as Float32Array;
      const y = b[name].data as Float32Array;
      assert.deepEqual(b[name].dims, a[name].dims, name);
      assert.ok(Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength)), name);
    }
    assert.deepEqual(b[LOOP.tokens].dims, [1, B]);
    await plain.release();
    await loop.release();
  });

  test(`${fixture}: greedy in the graph gives the host loop's tokens in two decoder calls (four tokens a call when streaming)`, async () => {
    const dir = await compileFixture(fixture, tmp.dir);
    const images = imagesOf(expected(fixture)).slice(0, 2);
    const opts = { prompt, maxNewTokens: 10, numBeams: 1, repetitionPenalty: 1, batchSize: 2 };
    const minimum = { ...opts, maxNewTokens: 14, minNewTokens: 11 };
    const host = await load(dir, { threads: 1, greedyLoop: false });
    const want = await decoderRuns(() => host.generate(images, opts));
    const wantMin = await host.generate(images, minimum);
    const free = await host.generate(images, { ...minimum, minNewTokens: 0 });
    if (free.some((r) => r.tokenIds.length < 11)) banMattered.push(fixture);
    await host.close();
    const inGraph = await load(dir, { threads: 1, greedyLoop: true });
    const got = await decoderRuns(() => inGraph.generate(images, opts));
    const streamed: Record<number, string> = {};
    const chunked = await decoderRuns(() => inGraph.generate(images, { ...opts, onToken: (row, text) => void (streamed[row] = (streamed[row] ?? '') + text) }));
    // a minimum length: EOS banned in the graph for the first iterations
    const gotMin = await decoderRuns(() => inGraph.generate(images, minimum));
    // another logits processor (here a repetition penalty) keeps the host loop
    const penalised = await decoderRuns(() => inGraph.generate(images, { ...opts, repetitionPenalty: 1.3 }));
    await inGraph.close();
    assert.deepEqual(
      got.result.map((r) => r.tokenIds),
      want.result.map((r) => r.tokenIds),
    );
    assert.deepEqual(
      chunked.result.map((r) => r.tokenIds),
      want.result.map((r) => r.tokenIds),
    );
    assert.deepEqual(
      got.result.map((r) => r.text),
      want.result.map((r) => r.text),
    );
    const longest = Math.max(...want.result.map((r) => r.tokenIds.length));
    assert.equal(want.runs, longest, 'host: one run per token');
    assert.equal(got.runs, longest > 1 ? 2 : 1, 'in the graph: the prefill and one loop');
    assert.equal(chunked.runs, 1 + Math.ceil((longest - 1) / 4), 'streaming: four tokens a call');
    assert.deepEqual(
      [0, 1].map((r) => (streamed[r] ?? '').trim()),
      want.result.map((r) => r.text),
    );
    assert.ok(penalised.runs > 2, `a repetition penalty runs on the host (${penalised.runs} runs)`);
    // the default: in the graph only where the decoder's weights are at most 1.5 x the encoder's
    const m = readManifest(dir);
    const bytes = (f: string) => externalWeightBytes(new Uint8Array(readFileSync(join(dir, f))));
    const [dec, enc] = [bytes(m.graphs.decoder!.file), bytes(m.graphs.encode!.file)];
    assert.ok(dec > 0 && enc > 0);
    const byDefault = await load(dir, { threads: 1 });
    const dflt = await decoderRuns(() => byDefault.generate(images, opts));
    await byDefault.close();
    assert.equal(dflt.runs, dec <= 1.5 * enc ? got.runs : want.runs, `decoder ${dec} B, encoder ${enc} B`);
    defaults.push(dec <= 1.5 * enc);
    // staged loads: only where the decoder's doubled moment stays under the encoder's weights
    const staged = await load(dir, { threads: 1, staged: true });
    const stagedRuns = await decoderRuns(() => staged.generate(images, opts));
    await staged.close();
    assert.deepEqual(
      stagedRuns.result.map((r) => r.tokenIds),
      want.result.map((r) => r.tokenIds),
    );
    assert.equal(stagedRuns.runs, 2 * dec <= enc ? got.runs : want.runs, `staged: decoder ${dec} B, encoder ${enc} B`);
    stagedDefaults.push(2 * dec <= enc);
    assert.deepEqual(
      gotMin.result.map((r) => r.tokenIds),
      wantMin.map((r) => r.tokenIds),
    );
    assert.ok(wantMin.every((r) => r.tokenIds.length >= 11));
    assert.equal(gotMin.runs, 2);
  });
}

for (const { fixture, prompt } of CASES) {
  test(`${fixture}: stop strings in the graph: four tokens a call, the host loop's tokens and text, no call after every row stopped`, async () => {
    const dir = await compileFixture(fixture, tmp.dir);
    const images = imagesOf(expected(fixture)).slice(0, 2);
    const opts = { prompt, maxNewTokens: 14, numBeams: 1, repetitionPenalty: 1, batchSize: 2 };
    const host = await load(dir, { threads: 1, greedyLoop: false });
    const full = await host.generate(images, opts);
    // a stop from the middle of row 0's text (characters, so byte-level texts are cut whole)
    const chars = [...full[0].text];
    const stop = chars.slice(Math.floor(chars.length / 2), Math.floor(chars.length / 2) + 2).join('');
    const want = await decoderRuns(() => host.generate(images, { ...opts, stop }));
    await host.close();
    const inGraph = await load(dir, { threads: 1, greedyLoop: true });
    const got = await decoderRuns(() => inGraph.generate(images, { ...opts, stop }));
    await inGraph.close();
    assert.ok(want.result[0].stop === stop && want.result[0].tokenIds.length < full[0].tokenIds.length, `${JSON.stringify(stop)} in ${JSON.stringify(full[0].text)}`);
    assert.deepEqual(
      got.result.map((r) => [r.tokenIds, r.text, r.stop]),
      want.result.map((r) => [r.tokenIds, r.text, r.stop]),
    );
    const longest = Math.max(...want.result.map((r) => r.tokenIds.length));
    assert.equal(want.runs, longest, 'host: one run per token, none after the rows stopped');
    assert.equal(got.runs, 1 + Math.ceil((longest - 1) / 4), 'in the graph: four tokens a call');
  });
}

test('the EOS ban was exercised: some fixture stops early without it', () => {
  assert.ok(banMattered.length > 0, 'no fixture row stopped before 11 tokens');
});

test('the default was exercised both ways: a fixture with the Loop, one without', () => {
  assert.deepEqual([...new Set(defaults)].sort(), [false, true]);
  assert.ok(stagedDefaults.length === CASES.length, 'every case ran a staged load');
});

test('graphs it cannot wrap are left alone: subgraphs, no logits, a past without its present; position_ids are carried', () => {
  const mk = (inputs: string[], outputs: string[], nodes: onnxProto.onnx.INodeProto[] = []) =>
    onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: { name: 'g', node: nodes, input: inputs.map((name) => ({ name, type: { tensorType: { elemType: 7 } } })), output: outputs.map((name) => ({ name, type: { tensorType: { elemType: 1 } } })) },
    }).finish();
  const id = (i: string, o: string): onnxProto.onnx.INodeProto => ({ opType: 'Identity', input: [i], output: [o] });
  assert.ok(wrapInGreedyLoop(mk(['input_ids'], ['logits'], [id('input_ids', 'logits')])));
  assert.ok(wrapInGreedyLoop(mk(['input_ids', 'position_ids'], ['logits'], [id('input_ids', 'logits')])));
  assert.equal(wrapInGreedyLoop(mk(['input_ids'], ['scores'], [id('input_ids', 'scores')])), undefined);
  assert.equal(wrapInGreedyLoop(mk(['input_ids', 'past.0.key'], ['logits'], [id('input_ids', 'logits')])), undefined, 'a past without its present');
  const withSubgraph: onnxProto.onnx.INodeProto = { opType: 'If', input: ['input_ids'], output: ['logits'], attribute: [{ name: 'then_branch', type: onnx.AttributeProto.AttributeType.GRAPH, g: { name: 't' } }] };
  assert.equal(wrapInGreedyLoop(mk(['input_ids'], ['logits'], [withSubgraph])), undefined);
  assert.equal(wrapInGreedyLoop(new Uint8Array([1, 2, 3])), undefined);
});

test('a tie for the highest score: the Loop\'s ArgMax takes the first index, as torch.argmax and the host loop (ties.json)', async () => {
  // a step graph whose logits are the same tied row (ids 1 and 3) for every row, every step: the
  // tokens transformers generates over it (test/oracle/greedy_ties.py), EOS ban included
  const ties = JSON.parse(readFileSync(fixturePath('generation', 'ties.json'), 'utf8')) as { row: number[]; cases: Array<{ name: string; input_ids: number[][]; eos: number; kwargs: Record<string, number>; sequences: number[][] }> };
  const V = ties.row.length;
  const INT64 = onnx.TensorProto.DataType.INT64;
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const io = (name: string, elemType: number, dims: Array<number | string>) => ({ name, type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } } });
  const constant = (name: string, t: onnxProto.onnx.ITensorProto): onnxProto.onnx.INodeProto => ({ opType: 'Constant', output: [name], attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t }] });
  const step = onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'tied',
      node: [
        constant('row', { dataType: FLOAT, dims: [1, V], floatData: ties.row }),
        constant('zero', { dataType: INT64, dims: [1], int64Data: [0] }),
        constant('one', { dataType: INT64, dims: [1], int64Data: [1] }),
        constant('width', { dataType: INT64, dims: [1], int64Data: [V] }),
        { opType: 'Shape', input: ['input_ids'], output: ['ids_shape'] },
        { opType: 'Slice', input: ['ids_shape', 'zero', 'one'], output: ['batch'] },
        { opType: 'Concat', input: ['batch', 'width'], output: ['logits_shape'], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] },
        { opType: 'Expand', input: ['row', 'logits_shape'], output: ['logits'] },
      ],
      input: [io('input_ids', INT64, ['batch', 'sequence']), io('attention_mask', INT64, ['batch', 'total_sequence'])],
      output: [io('logits', FLOAT, ['batch', V])],
    },
  }).finish();
  const file = join(tmp.dir, 'tied-step.onnx');
  writeFileSync(file, step);
  const loop = (await openSession(file, { threads: 1, greedyLoop: true })).session;
  assert.ok(loop.inputNames.includes(LOOP.maxSteps), 'wrapped');
  const checked: string[] = [];
  for (const c of ties.cases.filter((x) => !x.kwargs.repetition_penalty)) {
    const P = c.input_ids[0].length;
    const B = c.input_ids.length;
    const ban = c.kwargs.min_new_tokens ?? 0;
    const out = await loop.run({
      input_ids: new ort.Tensor('int64', BigInt64Array.from(c.input_ids.flat(), BigInt), [B, P]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(B * P).fill(1n), [B, P]),
      [LOOP.maxSteps]: new ort.Tensor('int64', BigInt64Array.from([BigInt(c.kwargs.max_new_tokens)]), []),
      [LOOP.eosIds]: new ort.Tensor('int64', BigInt64Array.from([BigInt(c.eos)]), [1]),
      [LOOP.padId]: new ort.Tensor('int64', BigInt64Array.from([0n]), []),
      [LOOP.finished]: new ort.Tensor('bool', new Uint8Array(B), [B]),
      [LOOP.eosBan]: new ort.Tensor('float32', Float32Array.from({ length: V }, (_, v) => (v === c.eos ? -Infinity : 0)), [V]),
      [LOOP.banSteps]: new ort.Tensor('int64', BigInt64Array.from([BigInt(ban)]), []),
    });
    const t = out[LOOP.tokens];
    const steps = Number(t.dims[0]);
    const tokens = Array.from(t.data as BigInt64Array, Number);
    const rows = c.input_ids.map((ids, r) => [...ids, ...Array.from({ length: steps }, (_, i) => tokens[i * B + r])]);
    assert.deepEqual(rows, c.sequences, c.name);
    checked.push(c.name);
  }
  assert.deepEqual(checked, ['tie', 'tie_eos_first_min_new_2']);
  await loop.release();
});

test('an artifact whose weights.bin is hard-linked (cp -al) still loads with greedy in the graph, its tokens the same', async () => {
  // onnxruntime refuses a Loop body's initializer in a file with two links; the weights then stay outer
  const dir = await compileFixture('blip2-opt-a', tmp.dir);
  const linked = join(tmp.dir, 'hard-linked');
  mkdirSync(linked, { recursive: true });
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    if (f.name === 'weights.bin') linkSync(join(dir, f.name), join(linked, f.name));
    else if (f.isFile()) copyFileSync(join(dir, f.name), join(linked, f.name));
    else {
      mkdirSync(join(linked, f.name), { recursive: true });
      for (const g of readdirSync(join(dir, f.name))) copyFileSync(join(dir, f.name, g), join(linked, f.name, g));
    }
  }
  const images = imagesOf(expected('blip2-opt-a')).slice(0, 1);
  const opts = { prompt: 'Question: what is it? Answer:', maxNewTokens: 6, numBeams: 1, repetitionPenalty: 1 };
  const own = await load(dir, { threads: 1, greedyLoop: true });
  const want = await own.generate(images, opts);
  await own.close();
  const shared = await load(linked, { threads: 1, greedyLoop: true });
  const got = await shared.generate(images, opts);
  await shared.close();
  assert.deepEqual(got.map((r) => r.tokenIds), want.map((r) => r.tokenIds));
});
