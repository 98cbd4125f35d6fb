// Beam search through the library API in a fresh process (its peak RSS is its own): load a compiled
// model, caption the same image `batch` times with `beams` beams and exactly `tokens` new tokens,
// one warm-up then `repeat` timed calls. Also times the decoder state's host reorders (the beam
// expansion after the prefill and the per-step gathers) by wrapping OnnxDecoderStepModel.reorder,
// in wall-clock and in process CPU time (the reorders run on the main thread while onnxruntime is
// idle, so on a loaded machine their CPU time is the steadier number).
// Prints one JSON line. With `--prefill-compare 1` it times instead, on the same encoded image, the
// decoder prefill of one row per image (what generate() runs) against transformers' prefill of
// batch x beams identical rows (the encoded rows repeated first), `repeat` times each.
//
//   node --import tsx bench/beam.ts --dir ART --image IMG [--prompt P] --threads 2 --batch 1 --beams 3 --tokens 20 --repeat 3 [--prefill-compare 1]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { load } from '../runtime/model.js';
import { OnnxDecoderStepModel } from '../runtime/generation/onnx.js';
import { readManifest } from '../src/artifact/manifest.js';
import { openSession } from '../runtime/session.js';
import { preprocessFromManifest } from '../runtime/preprocess/config.js';
import { loadTokenizer } from '../runtime/tokenizers/hf.js';
import { buildInputs } from '../runtime/tasks/generate.js';
import { pixelBatch } from '../runtime/tasks/images.js';
import { flags } from './flags.js';

async function main(): Promise<void> {
  const a = flags(process.argv.slice(2));
  const [batch, beams, tokens, repeat, threads] = [Number(a.batch ?? 1), Number(a.beams ?? 3), Number(a.tokens ?? 20), Number(a.repeat ?? 3), Number(a.threads ?? 2)];
  if (a['prefill-compare']) return prefillCompare(a.dir, a.image, a.prompt, batch, beams, repeat, threads);
  let reorderMs = 0;
  let reorderCpuMs = 0;
  let firstReorderMs = 0;
  let reorders = 0;
  const inner = OnnxDecoderStepModel.prototype.reorder;
  OnnxDecoderStepModel.prototype.reorder = function (this: OnnxDecoderStepModel, ...xs: Parameters<typeof inner>) {
    const t = performance.now();
    const c = process.cpuUsage();
    const r = inner.apply(this, xs);
    const dt = performance.now() - t;
    const cpu = process.cpuUsage(c);
    reorderCpuMs += (cpu.user + cpu.system) / 1000;
    if (reorders === 0) firstReorderMs = dt;
    reorderMs += dt;
    reorders++;
    return r;
  };
  const model = await load(a.dir, { threads });
  const bytes = new Uint8Array(readFileSync(a.image));
  const images = Array.from({ length: batch }, (_, i) => ({ name: `image ${i}`, bytes }));
  const opts = { prompt: a.prompt, maxNewTokens: tokens, minNewTokens: tokens, numBeams: beams, doSample: false, batchSize: batch, earlyStopping: false };
  await model.generate(images, opts); // warm-up
  const runs: Array<{ wall: number; cpu: number; reorderMs: number; reorderCpuMs: number; firstReorderMs: number; reorders: number; t: { preprocess: number; encode: number; prefill: number; decode: number; total: number } }> = [];
  let last: Awaited<ReturnType<typeof model.generate>> = [];
  for (let r = 0; r < repeat; r++) {
    reorderMs = 0;
    reorderCpuMs = 0;
    reorders = 0;
    const t = performance.now();
    const c = process.cpuUsage();
    last = await model.generate(images, opts);
    const cpu = process.cpuUsage(c);
    runs.push({ wall: performance.now() - t, cpu: (cpu.user + cpu.system) / 1000, reorderMs, reorderCpuMs, firstReorderMs, reorders, t: last[0].timingsMs });
  }
  const mean = (f: (r: (typeof runs)[number]) => number) => runs.reduce((s, r) => s + f(r), 0) / runs.length;
  await model.close();
  const out = {
    beams,
    batch,
    tokens,
    end_to_end_ms: mean((r) => r.wall),
    end_to_end_min_ms: Math.min(...runs.map((r) => r.wall)),
    image_encode_ms: mean((r) => r.t.encode),
    prefill_ms: mean((r) => r.t.prefill),
    decode_ms: mean((r) => r.t.decode),
    cpu_ms: mean((r) => r.cpu),
    reorder_ms: mean((r) => r.reorderMs),
    reorder_cpu_ms: mean((r) => r.reorderCpuMs),
    expansion_ms: mean((r) => r.firstReorderMs),
    reorders: mean((r) => r.reorders),
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    sequences: last.map((r) => r.tokenIds),
    scores: last.map((r) => r.score),
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

/** The decoder prefill of `batch` rows against `batch` x `beams` identical rows, on one encode.onnx output. */
async function prefillCompare(dir: string, image: string, prompt: string | undefined, batch: number, beams: number, repeat: number, threads: number): Promise<void> {
  const m = readManifest(dir);
  const encode = (await openSession(join(dir, m.graphs.encode!.file), { threads })).session;
  const decoder = (await openSession(join(dir, m.graphs.decoder!.file), { threads })).session;
  const ctx = { manifest: m, preprocess: preprocessFromManifest(m.preprocess), tokenizer: loadTokenizer(join(dir, m.tokenizer!.dir)), encode, decoder };
  const bytes = new Uint8Array(readFileSync(image));
  const imgs = Array.from({ length: batch }, (_, i) => ({ name: `image ${i}`, bytes }));
  const built = buildInputs(ctx, prompt === undefined ? null : new Array<string>(batch).fill(prompt), batch);
  const encoded = (await encode.run({ pixel_values: await pixelBatch(imgs, ctx.preprocess, 0), ...built.encodeFeeds })) as Record<string, ort.Tensor>;
  const repeatRows = (t: ort.Tensor, k: number): ort.Tensor => {
    const d = t.data as Float32Array;
    const per = d.length / t.dims[0];
    const out = new (d.constructor as new (n: number) => Float32Array)(d.length * k);
    for (let b = 0; b < t.dims[0]; b++) for (let j = 0; j < k; j++) out.set(d.subarray(b * per, (b + 1) * per), (b * k + j) * per);
    return new ort.Tensor(t.type as 'float32', out, [t.dims[0] * k, ...t.dims.slice(1)]);
  };
  const flat = (rows: number[][]) => BigInt64Array.from(rows.flat().map(BigInt));
  const ids = built.prompt.inputIds;
  const mask = built.prompt.attentionMask ?? ids.map((r) => r.map(() => 1));
  const time = async (k: number): Promise<number[]> => {
    const enc = k === 1 ? encoded : Object.fromEntries(Object.entries(encoded).map(([n, t]) => [n, repeatRows(t, k)]));
    const x = (rows: number[][]) => rows.flatMap((r) => Array.from({ length: k }, () => r));
    const model = new OnnxDecoderStepModel({ session: decoder, decoder: m.decoder!, encoded: enc, prefix: built.prefix, prefillText: built.prefillText && { inputIds: x(built.prefillText.inputIds), attentionMask: x(built.prefillText.attentionMask) } });
    const ms: number[] = [];
    for (let r = 0; r <= repeat; r++) {
      const t = performance.now();
      await model.step({ inputIds: flat(x(ids)), batch: batch * k, seqLen: ids[0].length, attentionMask: flat(x(mask)), pastLength: 0, prefill: true }, undefined);
      if (r > 0) ms.push(performance.now() - t); // the first is a warm-up
    }
    return ms;
  };
  const shared = await time(1);
  const expanded = await time(beams);
  const mean = (xs: number[]) => xs.reduce((s, v) => s + v, 0) / xs.length;
  process.stdout.write(JSON.stringify({ batch, beams, prefill_rows_ms: shared, prefill_rows_x_beams_ms: expanded, prefill_mean_ms: mean(shared), prefill_x_beams_mean_ms: mean(expanded) }) + '\n');
  await encode.release();
  await decoder.release();
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
});
