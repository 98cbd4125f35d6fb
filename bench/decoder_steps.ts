// Decoder-only timing of compiled artifacts that differ in their decoder.onnx (e.g. two --target
// pipelines of the same checkpoint): each artifact's decoder.onnx alone, opened as the runtime
// opens it (runtime/session.ts), runs a prefill (a random visual prefix + a random prompt) and then
// `steps` single-token steps through the KV cache, greedy on its own logits. The artifacts take
// turns for `rounds` rounds so that a loaded machine slows them alike. Prints per artifact the
// decode ms per step (every round) and tokens/s; and, against the first artifact, the largest
// prefill logit difference and whether the greedy tokens agree.
//
//   node --import tsx bench/decoder_steps.ts DIR [DIR…] [--steps 32] [--prompt 16] [--prefix 32]
//        [--batch 1] [--threads 2] [--rounds 3]
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readManifest } from '../src/artifact/manifest.js';
import { openSession } from '../runtime/session.js';

function parse(argv: string[]): { dirs: string[]; o: Record<string, number> } {
  const o: Record<string, number> = { steps: 32, prompt: 16, prefix: 32, batch: 1, threads: 2, rounds: 3 };
  const dirs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) o[argv[i].slice(2)] = Number(argv[++i]);
    else dirs.push(argv[i]);
  }
  return { dirs, o };
}

/** Deterministic values in [-a, a). */
function values(n: number, seed: number, a: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 2 * a);
}

const i64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);

interface Run {
  prefillMs: number;
  stepMs: number[];
  firstLogits: Float32Array;
  tokens: number[][];
}

async function run(session: ort.InferenceSession, dir: string, o: Record<string, number>): Promise<Run> {
  const m = readManifest(dir);
  const d = m.decoder!;
  const [B, S, Q, V, width] = [o.batch, o.prompt, o.prefix, d.vocab_size, d.hidden_size];
  const ids = Array.from({ length: B }, (_, b) => Array.from({ length: S }, (_, j) => 3 + ((b * 131 + j * 977) % (V - 3))));
  let mask = ids.map((r) => Array<number>(Q + r.length).fill(1));
  const feeds: Record<string, ort.Tensor> = { input_ids: i64(ids), attention_mask: i64(mask), prefix_embeds: new ort.Tensor('float32', values(B * Q * width, 7, 0.05), [B, Q, width]) };
  for (const n of d.inputs) if (n.startsWith('past.')) feeds[n] = new ort.Tensor('float32', new Float32Array(0), [B, d.kv_heads, 0, d.head_dim]);
  const argmax = (l: Float32Array, b: number) => {
    let k = 0;
    for (let i = 1; i < V; i++) if (l[b * V + i] > l[b * V + k]) k = i;
    return k;
  };
  let t = performance.now();
  let out = await session.run(feeds);
  const prefillMs = performance.now() - t;
  const firstLogits = (out.logits.data as Float32Array).slice();
  const tokens: number[][] = ids.map(() => []);
  const stepMs: number[] = [];
  for (let s = 0; s < o.steps; s++) {
    const logits = out.logits.data as Float32Array;
    const next = ids.map((_, b) => argmax(logits, b));
    next.forEach((x, b) => tokens[b].push(x));
    mask = mask.map((r) => [...r, 1]);
    const f: Record<string, ort.Tensor> = { input_ids: i64(next.map((x) => [x])), attention_mask: i64(mask), prefix_embeds: new ort.Tensor('float32', new Float32Array(0), [B, 0, width]) };
    for (const n of d.inputs) if (n.startsWith('past.')) f[n] = out[n.replace(/^past\./, 'present.')];
    t = performance.now();
    out = await session.run(f);
    stepMs.push(performance.now() - t);
  }
  return { prefillMs, stepMs, firstLogits, tokens };
}

async function main(): Promise<void> {
  const { dirs, o } = parse(process.argv.slice(2));
  const sessions = [];
  for (const dir of dirs) sessions.push((await openSession(join(dir, 'decoder.onnx'), { threads: o.threads })).session);
  const runs: Run[][] = dirs.map(() => []);
  for (let r = 0; r < o.rounds; r++) for (let i = 0; i < dirs.length; i++) runs[i].push(await run(sessions[i], dirs[i], o));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const ref = runs[0][0];
  dirs.forEach((dir, i) => {
    const perRound = runs[i].map((x) => median(x.stepMs.slice(1))); // the first step allocates
    const first = runs[i][0];
    let maxDiff = 0;
    for (let k = 0; k < ref.firstLogits.length; k++) maxDiff = Math.max(maxDiff, Math.abs(first.firstLogits[k] - ref.firstLogits[k]));
    const same = JSON.stringify(first.tokens) === JSON.stringify(ref.tokens);
    const best = Math.min(...perRound);
    console.log(
      JSON.stringify({ dir, decode_ms_per_step_median_by_round: perRound.map((x) => +x.toFixed(1)), tokens_per_s_best_round: +((o.batch * 1000) / best).toFixed(2), prefill_ms: runs[i].map((x) => +x.prefillMs.toFixed(0)), max_prefill_logit_diff_vs_first: maxDiff, same_greedy_tokens_as_first: same }),
    );
  });
  for (const s of sessions) await s.release();
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
});
