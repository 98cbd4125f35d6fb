// Accuracy cost of the fused, float16 and weight-quantized compilations against float32 plain ONNX
// (itself equal to transformers on these fixtures), on every generating fixture's greedy cases:
//
//   max logit error   teacher-forced: every decoder step is fed the float32 model's tokens and the
//                     logits compared with float32's, as max |Δ| and relative to max |float32 logit|
//   token agreement   free greedy run: new tokens equal to float32's at the same position, and
//                     whole sequences identical
//
//   node --import tsx bench/accuracy.ts [--out docs-table.md]
//
// Environment: FIXTURES=a,b (a subset), VARIANTS='name,name' (by name, from ALL below, including the
// WebGPU ones; default: those run on the CPU provider), PER_FIXTURE=1 (one row per fixture and
// variant). WebGPU on lavapipe: XDG_RUNTIME_DIR=/tmp VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.json
// (docs/webgpu.md; the first run compiles shaders for minutes).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadProgram } from '../src/syntax/load.js';
import { compile, type CompileOptions } from '../src/lower/compile.js';
import { readManifest } from '../src/artifact/manifest.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { generate, OnnxDecoderStepModel, type GenerationOptions, type StepModel } from '../runtime/generation/index.js';

const ALL_FIXTURES: Array<[string, string]> = [
  ['blip-caption-a', 'blip-caption'],
  ['blip-caption-b', 'blip-caption'],
  ['blip-vqa-a', 'blip-vqa'],
  ['blip2-opt-a', 'blip2-opt'],
  ['blip2-opt-b', 'blip2-opt'],
  ['blip2-t5-a', 'blip2-t5'],
  ['instructblip-vicuna-a', 'instructblip-vicuna'],
  ['instructblip-vicuna-b', 'instructblip-vicuna'],
  ['instructblip-t5-a', 'instructblip-t5'],
];

const FIXTURES = process.env.FIXTURES ? ALL_FIXTURES.filter(([f]) => process.env.FIXTURES!.split(',').includes(f)) : ALL_FIXTURES;

/** `ep`: the session's execution provider (default the CPU one). */
type Variant = { name: string; opts: Pick<CompileOptions, 'dtype' | 'target' | 'quantize'>; ep?: 'webgpu' };
const ALL: Variant[] = [
  { name: 'fp32 --target cpu', opts: { target: 'cpu' } },
  { name: 'fp16', opts: { dtype: 'float16' } },
  // the fused float16 norms of the GPU targets, run here on the CPU provider (it has their float16 kernels)
  { name: 'fp16 --target webgpu', opts: { dtype: 'float16', target: 'webgpu' } },
  { name: 'int8 --target cpu', opts: { target: 'cpu', quantize: 'int8' } },
  { name: 'int4 --target cpu', opts: { target: 'cpu', quantize: 'int4' } },
  { name: 'fp16 on WebGPU', opts: { dtype: 'float16' }, ep: 'webgpu' },
  { name: 'fp16 --target webgpu on WebGPU', opts: { dtype: 'float16', target: 'webgpu' }, ep: 'webgpu' },
];
const VARIANTS = process.env.VARIANTS ? ALL.filter((v) => process.env.VARIANTS!.split(',').includes(v.name)) : ALL.filter((v) => !v.ep);

const camel = (k: string): string => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const i64 = (rows: number[][]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);

interface Loaded {
  manifest: ReturnType<typeof readManifest>;
  enc: ort.InferenceSession;
  dec: ort.InferenceSession;
}

async function build(fixture: string, graph: string, dir: string, opts: Variant['opts'], ep?: Variant['ep']): Promise<Loaded> {
  const path = join('graphs', `${graph}.blip`);
  const p = loadProgram(path);
  await compile({ model: p.program!.models[0], graphFile: path, graphText: readFileSync(path, 'utf8'), weights: join('test/fixtures', fixture, 'checkpoint'), out: dir, ...opts });
  const so = { graphOptimizationLevel: 'all' as const, intraOpNumThreads: 1, ...(ep ? { executionProviders: [ep] } : {}) };
  return { manifest: readManifest(dir), enc: await ort.InferenceSession.create(join(dir, 'encode.onnx'), so), dec: await ort.InferenceSession.create(join(dir, 'decoder.onnx'), so) };
}

/** A step model that records the logits of every call and, when forced, makes the given tokens win. */
function recording<S>(inner: StepModel<S>, force?: number[][]): { model: StepModel<S>; logits: Float32Array[] } {
  const logits: Float32Array[] = [];
  let step = 0;
  return {
    logits,
    model: {
      reorder: (s, rows) => inner.reorder(s, rows),
      async step(input, state) {
        const out = await inner.step(input, state);
        logits.push(Float32Array.from(out.logits));
        if (force) {
          const l = Float32Array.from(out.logits);
          for (let b = 0; b < input.batch; b++) {
            const t = force[b][step];
            if (t !== undefined) l[b * out.vocab + t] = 1e9;
          }
          step++;
          return { ...out, logits: l };
        }
        return out;
      },
    },
  };
}

interface Stat {
  maxErr: number;
  scale: number;
  tokens: number;
  agree: number;
  sequences: number;
  identical: number;
}

async function main(): Promise<void> {
  const outIdx = process.argv.indexOf('--out');
  const root = mkdtempSync(join(tmpdir(), 'blip-acc-'));
  const stats = new Map<string, Stat>();
  const perFixture: string[] = [];
  try {
    for (const [fixture, graph] of FIXTURES) {
      const exp = JSON.parse(readFileSync(join('test/fixtures', fixture, 'expected.json'), 'utf8'));
      const st = SafetensorsFile.open(join('test/fixtures', fixture, 'expected.safetensors'));
      const pv = st.info('pixel_values')!;
      const pixels = new ort.Tensor('float32', Float32Array.from(st.readFloat32('pixel_values')), pv.shape);
      const ref = await build(fixture, graph, join(root, `${fixture}-ref`), {});
      const variants = await Promise.all(VARIANTS.map(async (v) => ({ v, m: await build(fixture, graph, join(root, `${fixture}-${v.name.replace(/\W+/g, '_')}`), v.opts, v.ep) })));
      const Q: number = exp.num_query_tokens ?? 0;
      const placeholders = typeof exp.image_token_index === 'number' && !fixture.includes('legacy');
      for (const c of exp.cases) {
        const g = c.generation.find((x: { name: string }) => x.name === 'greedy');
        if (!g) continue;
        const run = async (m: Loaded, force?: number[][]) => {
          const feeds: Record<string, ort.Tensor> = { pixel_values: pixels };
          if (m.enc.inputNames.includes('qformer_input_ids')) Object.assign(feeds, { qformer_input_ids: i64(c.qformer_input_ids), qformer_attention_mask: i64(c.qformer_attention_mask) });
          if (m.enc.inputNames.includes('input_ids')) {
            const cut = (rows: number[][]) => (placeholders ? rows.map((r) => r.slice(Q)) : rows);
            Object.assign(feeds, { input_ids: i64(cut(c.input_ids)), attention_mask: i64(cut(c.attention_mask)) });
          }
          const encoded = (await m.enc.run(feeds)) as Record<string, ort.Tensor>;
          const encoderDecoder = !!c.decoder_input_ids;
          const B = g.sequences.length;
          const inner = new OnnxDecoderStepModel({ session: m.dec, decoder: m.manifest.decoder!, encoded, prefix: m.dec.inputNames.includes('prefix_embeds') ? { placeholders } : undefined });
          const rec = recording(inner, force);
          const prompt = encoderDecoder ? { inputIds: c.decoder_input_ids } : { inputIds: c.input_ids, attentionMask: c.attention_mask };
          const o: Record<string, unknown> = {};
          for (const [k, v] of Object.entries(g.kwargs)) if (k !== 'do_sample') o[camel(k)] = v;
          const r = await generate(rec.model, prompt, { ...(o as GenerationOptions), eosTokenId: m.manifest.text.eos_token_id, padTokenId: m.manifest.text.pad_token_id, vocabSize: m.manifest.decoder!.vocab_size });
          void B;
          return { newTokens: r.sequences.map((s) => s.slice(r.promptLength)), logits: rec.logits };
        };
        const base = await run(ref);
        for (const { v, m } of variants) {
          const key = process.env.PER_FIXTURE ? `${fixture} ${v.name}` : v.name;
          const s = stats.get(key) ?? { maxErr: 0, scale: 0, tokens: 0, agree: 0, sequences: 0, identical: 0 };
          const forced = await run(m, base.newTokens);
          forced.logits.slice(0, base.logits.length).forEach((l, i) => {
            const want = base.logits[i];
            for (let j = 0; j < l.length; j++) {
              s.maxErr = Math.max(s.maxErr, Math.abs(l[j] - want[j]));
              s.scale = Math.max(s.scale, Math.abs(want[j]));
            }
          });
          const free = await run(m);
          free.newTokens.forEach((row, b) => {
            const want = base.newTokens[b];
            s.sequences++;
            if (JSON.stringify(row) === JSON.stringify(want)) s.identical++;
            for (let j = 0; j < want.length; j++) {
              s.tokens++;
              if (row[j] === want[j]) s.agree++;
            }
          });
          stats.set(key, s);
        }
      }
      perFixture.push(fixture);
      process.stderr.write(`${fixture} done\n`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const lines = [
    `Against float32 plain ONNX, greedy cases of ${perFixture.length} fixtures (${perFixture.join(', ')}):`,
    '',
    '| compilation | max logit error | relative to max logit | tokens equal | sequences identical |',
    '|---|---:|---:|---:|---:|',
    ...[...stats].map(([n, s]) => `| ${n} | ${s.maxErr.toExponential(2)} | ${(s.maxErr / s.scale).toExponential(2)} | ${s.agree}/${s.tokens} (${((100 * s.agree) / s.tokens).toFixed(1)}%) | ${s.identical}/${s.sequences} |`),
    '',
  ];
  const md = lines.join('\n');
  process.stdout.write(md);
  if (outIdx > 0) writeFileSync(process.argv[outIdx + 1], md);
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
});
