// --device webgpu against transformers, where a WebGPU adapter exists: a GPU with its Vulkan driver,
// or Mesa's lavapipe (a CPU Vulkan driver, Mesa >= 24; .ci/run installs it) — correctness, not
// speed. Skipped with the reason (BLIP5042's message) where no adapter is found.
//
// Each fixture is compiled plain and --target webgpu; encode.onnx and decoder.onnx run on the WebGPU
// provider, the KV cache kept on the device between steps (present.* as 'gpu-buffer', beam search
// reordering it there): greedy and beam-3 sequences must be transformers' exactly, image features and
// every recorded greedy step's logits within the bar below. The library path (load() with
// device 'webgpu', images from files) is checked on one fixture, with the cache on and off the device,
// and which nodes onnxruntime placed on the CPU provider is read from its profile.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { loadProgram } from '../../../src/syntax/load.js';
import { compile } from '../../../src/lower/compile.js';
import { readManifest, type Manifest } from '../../../src/artifact/manifest.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { generate, OnnxDecoderStepModel, type GenerationOptions, type StepModel } from '../../../runtime/generation/index.js';
import { DeviceRowGather } from '../../../runtime/generation/deviceRows.js';
import { openSession } from '../../../runtime/session.js';
import { load } from '../../../runtime/model.js';
import { providerFailure } from '../../../runtime/providers.js';
import { DeviceError } from '../../../runtime/errors.js';
import { fixturePath, repoRoot, type FixtureCase as Case } from './fixtures.js';
import type { Target } from '../../../src/rewrite/index.js';

/**
 * The bar: max |webgpu - transformers| <= TOL * max(1, max |transformers|), the CPU tests' 1e-4.
 */
const TOL = 1e-4;

const tmp = mkdtempSync(join(tmpdir(), 'blip-webgpu-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Why WebGPU cannot be used here (a BLIP5042 message), or undefined when a session starts. */
async function webgpuUnavailable(): Promise<string | undefined> {
  const { onnx } = onnxProto;
  const f = (name: string) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimValue: 2 }] } } } });
  const path = join(tmp, 'probe.onnx');
  writeFileSync(path, onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph: { name: 'probe', node: [{ opType: 'Relu', input: ['x'], output: ['y'] }], input: [f('x')], output: [f('y')] } })).finish());
  try {
    const s = await openSession(path, { device: 'webgpu' });
    const y = await s.session.run({ x: new ort.Tensor('float32', Float32Array.from([-1, 2]), [2]) });
    assert.deepEqual(Array.from(y.y.data as Float32Array), [0, 2]);
    await s.session.release();
    return undefined;
  } catch (e) {
    return `no WebGPU adapter: ${(e as Error).message}`;
  }
}
const unavailable = await webgpuUnavailable();

test('webgpu: only a failure to get an adapter is reported as one (BLIP5042, with the drivers); a model that fails to load is BLIP5043 naming the file', async (t) => {
  const model = (msg: string) => providerFailure('webgpu', new Error(msg), 'out/m/decoder.onnx');
  for (const msg of [
    'Load model from out/m/decoder.onnx failed:Protobuf parsing failed.',
    '/onnxruntime_src/onnxruntime/contrib_ops/webgpu/bert/group_query_attention.h:40 x was false. Exception during initialization: GroupQueryAttention (WebGPU): causal=0 is not implemented.',
  ]) {
    const e = model(msg);
    assert.equal(e.code, 'BLIP5043', msg);
    assert.match(e.message, /^device webgpu: cannot load out\/m\/decoder\.onnx \(/);
    assert.doesNotMatch(e.message, /adapter|Vulkan|Mesa/);
  }
  for (const msg of ['/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 x was false. Failed to get a WebGPU adapter: No supported adapters', "Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file"]) {
    const e = model(msg);
    assert.equal(e.code, 'BLIP5042', msg);
    assert.match(e.message, /no usable WebGPU adapter/);
  }
  if (unavailable) return t.diagnostic(`a truncated graph on WebGPU not tried: ${unavailable}`);
  const path = join(tmp, 'truncated.onnx');
  writeFileSync(path, readFileSync(join(tmp, 'probe.onnx')).subarray(0, 20));
  await assert.rejects(openSession(path, { device: 'webgpu' }), (e: unknown) => {
    assert.ok(e instanceof DeviceError, String(e));
    assert.equal(e.code, 'BLIP5043');
    assert.match(e.message, new RegExp(`^device webgpu: cannot load ${path} \\(.*Protobuf parsing failed`));
    return true;
  });
});

/** One fixture per decoder family (BLIP BERT + cross-attention, BLIP VQA, OPT, T5, LLaMA with grouped KV heads). */
const GENERATING: Array<[string, string]> = [
  ['blip-caption-a', 'blip-caption'],
  ['blip-vqa-a', 'blip-vqa'],
  ['blip2-opt-a', 'blip2-opt'],
  ['blip2-t5-a', 'blip2-t5'],
  ['instructblip-vicuna-a', 'instructblip-vicuna'],
];
/**
 * On lavapipe every new shader is compiled by LLVM (seconds each on a loaded 2-core machine; Mesa
 * caches them on disk for later runs), so the decomposed (plain) graphs run for one fixture only:
 * their ops are the same few across the families.
 */
const targetsOf = (fixture: string): Target[] => (fixture === 'blip2-opt-a' ? ['webgpu', 'plain'] : ['webgpu']);

const camel = (k: string): string => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const i64 = (rows: number[][]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);

async function compileFixture(fixture: string, graph: string, target: Target): Promise<{ out: Manifest; dir: string }> {
  const dir = join(tmp, `${fixture}-${target}`);
  if (!existsSync(join(dir, 'manifest.json'))) {
    const path = join(repoRoot(), 'graphs', `${graph}.blip`);
    const r = loadProgram(path);
    assert.ok(r.program, `${graph} does not load`);
    await compile({ model: r.program.models[0], graphFile: path, graphText: readFileSync(path, 'utf8'), weights: fixturePath(fixture, 'checkpoint'), out: dir, target });
  }
  return { out: readManifest(dir), dir };
}

/** max |a - e| and the bar TOL * max(1, max |e|). */
function measure(a: ArrayLike<number>, e: ArrayLike<number>): { max: number; bar: number } {
  assert.equal(a.length, e.length);
  let max = 0;
  let scale = 1;
  for (let i = 0; i < e.length; i++) {
    max = Math.max(max, Math.abs(a[i] - e[i]));
    scale = Math.max(scale, Math.abs(e[i]));
  }
  assert.ok(!Number.isNaN(max), 'NaN in the output');
  return { max, bar: TOL * scale };
}

/** Passes each step through, keeping its logits. */
class Recording<S> implements StepModel<S> {
  logits: Float32Array[] = [];
  constructor(private readonly inner: StepModel<S>) {}
  async step(...a: Parameters<StepModel<S>['step']>) {
    const o = await this.inner.step(...a);
    this.logits.push(Float32Array.from(o.logits));
    return o;
  }
  reorder(s: S, rows: number[]) {
    return this.inner.reorder(s, rows);
  }
  dispose(s: S) {
    this.inner.dispose?.(s);
  }
}

for (const [fixture, graph] of GENERATING) {
  for (const target of targetsOf(fixture)) {
    const missing = !existsSync(fixturePath(fixture, 'expected.json')) && `fixture ${fixture} not present`;
    test(`webgpu: ${fixture} [--target ${target}]: greedy and beam-3 tokens == transformers, image features and step logits within ${TOL} x scale`, { skip: unavailable ?? missing }, async (t) => {
      const { out: m, dir } = await compileFixture(fixture, graph, target);
      const exp = JSON.parse(readFileSync(fixturePath(fixture, 'expected.json'), 'utf8'));
      const st = SafetensorsFile.open(fixturePath(fixture, 'expected.safetensors'));
      const arr = (name: string) => ({ data: Float32Array.from(st.readFloat32(name)), shape: st.info(name)!.shape });
      const pixels = arr('pixel_values');
      const present = Object.fromEntries(m.graphs.decoder!.outputs.filter((o) => o.name.startsWith('present.')).map((o) => [o.name, 'gpu-buffer' as const]));
      const enc = await openSession(join(dir, 'encode.onnx'), { device: 'webgpu' });
      const dec = await openSession(join(dir, 'decoder.onnx'), { device: 'webgpu', preferredOutputLocation: present });
      assert.equal(enc.provider, 'webgpu');
      assert.equal(dec.provider, 'webgpu');
      const rows = new DeviceRowGather();
      const worst: Record<string, number> = {};
      const note = (what: string, d: { max: number; bar: number }) => {
        assert.ok(d.max <= d.bar, `${fixture} ${what}: max abs difference ${d.max.toExponential(2)} exceeds ${d.bar.toExponential(2)}`);
        worst[what] = Math.max(worst[what] ?? 0, d.max);
      };
      try {
        const Q: number = exp.num_query_tokens ?? 0;
        const placeholders = typeof exp.image_token_index === 'number';
        let runs = 0;
        for (const c of exp.cases as Case[]) {
          const feeds: Record<string, ort.Tensor> = { pixel_values: new ort.Tensor('float32', pixels.data, pixels.shape) };
          const names = enc.session.inputNames;
          if (names.includes('qformer_input_ids')) Object.assign(feeds, { qformer_input_ids: i64(c.qformer_input_ids!), qformer_attention_mask: i64(c.qformer_attention_mask!) });
          if (names.includes('input_ids')) {
            const cut = (r: number[][]) => (placeholders ? r.map((x) => x.slice(Q)) : r);
            Object.assign(feeds, { input_ids: i64(cut(c.input_ids!)), attention_mask: i64(cut(c.attention_mask!)) });
          }
          const encoded = (await enc.session.run(feeds)) as Record<string, ort.Tensor>;
          note('image_embeds', measure(encoded.image_embeds.data as Float32Array, arr('image_embeds').data));
          const encoderDecoder = !!c.decoder_input_ids;
          for (const g of c.generation.filter((x) => x.name === 'greedy' || x.name === 'beam3')) {
            const model = new Recording(
              new OnnxDecoderStepModel({ session: dec.session, decoder: m.decoder!, encoded, prefix: dec.session.inputNames.includes('prefix_embeds') ? { placeholders } : undefined, deviceRows: rows }),
            );
            const prompt = encoderDecoder ? { inputIds: c.decoder_input_ids!, attentionMask: c.decoder_attention_mask } : { inputIds: c.input_ids!, attentionMask: c.attention_mask! };
            const o: Record<string, unknown> = {};
            for (const [k, v] of Object.entries(g.kwargs)) if (k !== 'do_sample') o[camel(k)] = v;
            const r = await generate(model, prompt, { ...(o as GenerationOptions), eosTokenId: m.text.eos_token_id, padTokenId: m.text.pad_token_id, vocabSize: m.decoder!.vocab_size });
            assert.deepEqual(r.sequences, g.sequences, `${fixture} ${c.name} ${g.name}`);
            runs++;
            const stepName = `${c.name}/greedy/step_logits`;
            if (g.name === 'greedy' && exp.arrays[stepName]) {
              const want = arr(stepName); // (B, n, V): transformers' logits at each greedy step
              const [B, n, V] = want.shape;
              for (let s = 0; s < Math.min(n, model.logits.length); s++) {
                const w = new Float32Array(B * V);
                for (let b = 0; b < B; b++) w.set(want.data.subarray((b * n + s) * V, (b * n + s + 1) * V), b * V);
                note('greedy step logits', measure(model.logits[s], w));
              }
            }
          }
        }
        assert.ok(runs >= 2);
        t.diagnostic(`${runs} generations identical to transformers; max abs differences: ${Object.entries(worst).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);
      } finally {
        st.close();
        await rows.close();
        await enc.session.release();
        await dec.session.release();
      }
    });
  }
}

/**
 * float16 (`--dtype fp16`) on WebGPU, against transformers' float32: logits within TOL16 * scale
 * (float16's precision: measured 6.6e-3 at a logit scale of 2.0 for this fixture on lavapipe, 2.7e-3
 * with onnxruntime's CPU provider), tokens equal up to the first step whose recorded top-2 margin is
 * below twice that bar (where float16 may legitimately pick the other token).
 */
const TOL16 = 1e-2;

test(`webgpu: blip2-opt-a --dtype fp16 [--target webgpu]: greedy step logits within ${TOL16} x scale of transformers, tokens up to the near ties`, { skip: unavailable ?? (!existsSync(fixturePath('blip2-opt-a', 'expected.json')) && 'fixture blip2-opt-a not present') }, async (t) => {
  const dir = join(tmp, 'blip2-opt-a-fp16');
  const path = join(repoRoot(), 'graphs', 'blip2-opt.blip');
  const r = loadProgram(path);
  await compile({ model: r.program!.models[0], graphFile: path, graphText: readFileSync(path, 'utf8'), weights: fixturePath('blip2-opt-a', 'checkpoint'), out: dir, target: 'webgpu', dtype: 'float16' });
  const m = readManifest(dir);
  assert.equal(m.dtype, 'float16');
  const exp = JSON.parse(readFileSync(fixturePath('blip2-opt-a', 'expected.json'), 'utf8'));
  const st = SafetensorsFile.open(fixturePath('blip2-opt-a', 'expected.safetensors'));
  const arr = (name: string) => ({ data: Float32Array.from(st.readFloat32(name)), shape: st.info(name)!.shape });
  const enc = await openSession(join(dir, 'encode.onnx'), { device: 'webgpu' });
  const dec = await openSession(join(dir, 'decoder.onnx'), { device: 'webgpu' });
  let worst = 0;
  let compared = 0;
  try {
    const pixels = arr('pixel_values');
    for (const c of exp.cases as Case[]) {
      const encoded = (await enc.session.run({ pixel_values: new ort.Tensor('float32', pixels.data, pixels.shape) })) as Record<string, ort.Tensor>;
      const g = c.generation.find((x) => x.name === 'greedy')!;
      const model = new Recording(new OnnxDecoderStepModel({ session: dec.session, decoder: m.decoder!, encoded, prefix: { placeholders: true } }));
      const res = await generate(model, { inputIds: c.input_ids!, attentionMask: c.attention_mask! }, { maxNewTokens: g.kwargs.max_new_tokens as number, eosTokenId: m.text.eos_token_id, padTokenId: m.text.pad_token_id, vocabSize: m.decoder!.vocab_size });
      const P = c.input_ids![0].length;
      const stepName = `${c.name}/greedy/step_logits`;
      const want = exp.arrays[stepName] ? arr(stepName) : undefined;
      const scale = want ? want.data.reduce((a, x) => Math.max(a, Math.abs(x)), 1) : 1;
      // steps whose token is certain at this precision, in every row
      const certain = Math.min(...g.margins!.map((row) => { const i = row.findIndex((x) => x < 2 * TOL16 * scale); return i < 0 ? row.length : i; }));
      res.sequences.forEach((sq, b) => assert.deepEqual(sq.slice(P, P + certain), g.sequences[b].slice(P, P + certain), `${c.name} row ${b}: tokens before the first near tie`));
      if (!want) continue;
      const [B, n, V] = want.shape;
      for (let s = 0; s <= Math.min(certain, n - 1, model.logits.length - 1); s++) {
        const w = new Float32Array(B * V);
        for (let b = 0; b < B; b++) w.set(want.data.subarray((b * n + s) * V, (b * n + s + 1) * V), b * V);
        const d = measure(model.logits[s], w);
        assert.ok(d.max <= (TOL16 / TOL) * d.bar, `${c.name} step ${s}: max abs difference ${d.max.toExponential(2)} exceeds ${((TOL16 / TOL) * d.bar).toExponential(2)}`);
        worst = Math.max(worst, d.max);
        compared++;
      }
    }
    assert.ok(compared > 0);
    t.diagnostic(`${compared} greedy steps compared; max abs difference ${worst.toExponential(2)}`);
  } finally {
    st.close();
    await enc.session.release();
    await dec.session.release();
  }
});

test('webgpu: load(dir, { device: "webgpu" }) captions image files as transformers does, the KV cache on or off the device; what runs on the CPU provider', { skip: unavailable ?? (!existsSync(fixturePath('blip2-opt-a', 'expected.json')) && 'fixture blip2-opt-a not present') }, async (t) => {
  const { dir } = await compileFixture('blip2-opt-a', 'blip2-opt', 'webgpu');
  const exp = JSON.parse(readFileSync(fixturePath('blip2-opt-a', 'expected.json'), 'utf8'));
  const images = (exp.images as string[]).map((n) => fixturePath('images', n));
  const c = (exp.cases as Array<{ name: string; prompt?: string | null; generation: Array<{ name: string; new_tokens: number[][] }> }>).find((x) => x.name === 'question')!;
  const eos = 2;
  const cut = (r: number[]) => (r.includes(eos) ? r.slice(0, r.indexOf(eos) + 1) : r);
  const tokens: Record<string, number[][]> = {};
  for (const kvOnDevice of [true, false]) {
    const model = await load(dir, { device: 'webgpu', kvOnDevice });
    try {
      assert.deepEqual(model.providers, { encode: 'webgpu', decoder: 'webgpu' });
      for (const g of c.generation.filter((x) => x.name === 'greedy' || x.name === 'beam3')) {
        const res = await model.generate(images, { prompt: c.prompt ?? undefined, numBeams: g.name === 'beam3' ? 3 : 1, maxNewTokens: g.new_tokens[0].length, earlyStopping: false, minNewTokens: 0, repetitionPenalty: 1, noRepeatNgramSize: 0, lengthPenalty: 1 });
        tokens[`${g.name} ${kvOnDevice}`] = res.map((r) => r.tokenIds);
        res.forEach((r, b) => assert.deepEqual(r.tokenIds, cut(g.new_tokens[b]), `${g.name} row ${b} (KV cache on the device: ${kvOnDevice})`));
      }
    } finally {
      await model.close();
    }
  }
  assert.deepEqual(tokens['greedy true'], tokens['greedy false']);

  // Node placement, from onnxruntime's profile of the encode and the prefill of this case (the
  // shapes just run, so no new shaders): only shape arithmetic may fall back to the CPU.
  const m = readManifest(dir);
  const st = SafetensorsFile.open(fixturePath('blip2-opt-a', 'expected.safetensors'));
  const pv = st.info('pixel_values')!;
  const pixels = new ort.Tensor('float32', Float32Array.from(st.readFloat32('pixel_values')), pv.shape);
  st.close();
  const qc = (exp.cases as Array<{ name: string; input_ids: number[][]; attention_mask: number[][] }>).find((x) => x.name === 'question')!;
  const Q: number = exp.num_query_tokens;
  const placed: Record<string, Record<string, number>> = {};
  let prefix: ort.Tensor | undefined;
  for (const graph of ['encode', 'decoder'] as const) {
    const profilePrefix = join(tmp, `profile-${graph}`);
    const s = await ort.InferenceSession.create(join(dir, `${graph}.onnx`), { executionProviders: ['webgpu'], enableProfiling: true, profileFilePrefix: profilePrefix, logSeverityLevel: 3 });
    if (graph === 'encode') prefix = (await s.run({ pixel_values: pixels })).prefix_embeds as ort.Tensor;
    else {
      const feeds: Record<string, ort.Tensor> = { input_ids: i64(qc.input_ids.map((r) => r.slice(Q))), attention_mask: i64(qc.attention_mask), prefix_embeds: prefix! };
      for (const n of m.decoder!.inputs) if (n.startsWith('past.')) feeds[n] = new ort.Tensor('float32', new Float32Array(0), [2, m.decoder!.kv_heads, 0, m.decoder!.head_dim]);
      await s.run(feeds);
    }
    s.endProfiling();
    await s.release();
    const file = readdirSync(tmp).find((f) => f.startsWith(`profile-${graph}`) && f.endsWith('.json'));
    assert.ok(file, `no profile written for ${graph}`);
    const events = JSON.parse(readFileSync(join(tmp, file), 'utf8')) as Array<{ cat: string; name: string; args?: { op_name?: string; provider?: string } }>;
    for (const e of events) {
      if (e.cat !== 'Node' || !e.args?.provider || !e.name.endsWith('_kernel_time')) continue;
      const p = e.args.provider.replace('ExecutionProvider', '');
      (placed[p] ??= {})[e.args.op_name ?? '?'] = ((placed[p] ??= {})[e.args.op_name ?? '?'] ?? 0) + 1;
    }
  }
  t.diagnostic(`kernels run per provider: ${JSON.stringify(placed)}`);
  const heavy = ['MatMul', 'Gemm', 'MultiHeadAttention', 'SkipLayerNormalization', 'LayerNormalization', 'BiasGelu', 'Softmax', 'Conv', 'SimplifiedLayerNormalization', 'SkipSimplifiedLayerNormalization'];
  for (const op of heavy) assert.equal(placed.CPU?.[op], undefined, `${op} ran on the CPU provider`);
  assert.ok(Object.keys(placed.WebGpu ?? {}).length > 0);
});
