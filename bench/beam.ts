// Beam search through the library API in a fresh process (its peak RSS is its own): load a compiled
// model, caption the same image `batch` times with `beams` beams and exactly `tokens` new tokens,
// one warm-up then `repeat` timed calls. Also times the decoder state's host reorders (the beam
// expansion after the prefill and the per-step gathers) by wrapping OnnxDecoderStepModel.reorder.
// Prints one JSON line.
//
//   node --import tsx bench/beam.ts --dir ART --image IMG [--prompt P] --threads 2 --batch 1 --beams 3 --tokens 20 --repeat 3
import { readFileSync } from 'node:fs';
import { load } from '../runtime/model.js';
import { OnnxDecoderStepModel } from '../runtime/generation/onnx.js';

function args(argv: string[]): Record<string, string> {
  const o: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 2) o[argv[i].replace(/^--/, '')] = argv[i + 1];
  return o;
}

async function main(): Promise<void> {
  const a = args(process.argv.slice(2));
  const [batch, beams, tokens, repeat, threads] = [Number(a.batch ?? 1), Number(a.beams ?? 3), Number(a.tokens ?? 20), Number(a.repeat ?? 3), Number(a.threads ?? 2)];
  let reorderMs = 0;
  let reorders = 0;
  const inner = OnnxDecoderStepModel.prototype.reorder;
  OnnxDecoderStepModel.prototype.reorder = function (this: OnnxDecoderStepModel, ...xs: Parameters<typeof inner>) {
    const t = performance.now();
    const r = inner.apply(this, xs);
    reorderMs += performance.now() - t;
    reorders++;
    return r;
  };
  const model = await load(a.dir, { threads });
  const bytes = new Uint8Array(readFileSync(a.image));
  const images = Array.from({ length: batch }, (_, i) => ({ name: `image ${i}`, bytes }));
  const opts = { prompt: a.prompt, maxNewTokens: tokens, minNewTokens: tokens, numBeams: beams, doSample: false, batchSize: batch, earlyStopping: false };
  await model.generate(images, opts); // warm-up
  const runs: Array<{ wall: number; reorderMs: number; reorders: number; t: { preprocess: number; encode: number; prefill: number; decode: number; total: number } }> = [];
  let last: Awaited<ReturnType<typeof model.generate>> = [];
  for (let r = 0; r < repeat; r++) {
    reorderMs = 0;
    reorders = 0;
    const t = performance.now();
    last = await model.generate(images, opts);
    runs.push({ wall: performance.now() - t, reorderMs, reorders, t: last[0].timingsMs });
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
    reorder_ms: mean((r) => r.reorderMs),
    reorders: mean((r) => r.reorders),
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    sequences: last.map((r) => r.tokenIds),
    scores: last.map((r) => r.score),
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
});
