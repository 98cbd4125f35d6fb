// Decoder-only timing of compiled artifacts that differ in their decoder.onnx (e.g. two --target
// pipelines of the same checkpoint): each artifact's decoder.onnx alone, opened as the runtime
// opens it (runtime/session.ts), runs a prefill (a random visual prefix + a random prompt) and then
// `steps` single-token steps through the KV cache, greedy on its own logits. The artifacts take
// turns for `rounds` rounds so that a loaded machine slows them alike. Prints per artifact the
// decode ms per step (every round) and tokens/s; and, against the first artifact, the largest
// prefill logit difference and whether the greedy tokens agree.
//
// --paired (two artifacts): the two take turns step by step instead of round by round (A B, B A,
// … alternating which goes first), so that a VM whose speed drifts within seconds slows both
// sides of each pair alike, and the paired differences B − A are reported (median, mean, and in
// how many pairs B was faster). Both sessions are opened with thread spinning off: a spinning
// idle pool takes a core from the session that runs.
//
//   node --import tsx bench/decoder_steps.ts DIR [DIR…] [--steps 32] [--prompt 16] [--prefix 32]
//        [--batch 1] [--threads 2] [--rounds 3] [--paired]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readManifest } from '../src/artifact/manifest.js';
import { decodeModel } from '../src/lower/emitOnnx.js';
import { openSession } from '../runtime/session.js';

function parse(argv: string[]): { dirs: string[]; o: Record<string, number> } {
  const o: Record<string, number> = { steps: 32, prompt: 16, prefix: 32, batch: 1, threads: 2, rounds: 3 };
  const dirs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--paired') o.paired = 1;
    else if (argv[i].startsWith('--')) o[argv[i].slice(2)] = Number(argv[++i]);
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

/** Width of the decoder's prefix_embeds input, as the graph declares it (OPT-350m's is 512, not its hidden 1024). */
function prefixWidth(dir: string): number {
  const input = decodeModel(readFileSync(join(dir, 'decoder.onnx'))).graph!.input!.find((i) => i.name === 'prefix_embeds');
  const w = Number(input?.type?.tensorType?.shape?.dim?.[2]?.dimValue ?? 0);
  if (!w) throw new Error(`${dir}/decoder.onnx: no prefix_embeds input of a fixed width (this tool times BLIP-2 / InstructBLIP decoders)`);
  return w;
}

/** What every run of one artifact needs, read once: its manifest's decoder entry and prefix width. */
function describe(dir: string) {
  return { d: readManifest(dir).decoder!, width: prefixWidth(dir) };
}

/** One artifact's greedy decode, a step at a time: `prefill()`, then `step()` `o.steps` times. */
function decoder(session: ort.InferenceSession, { d, width }: ReturnType<typeof describe>, o: Record<string, number>) {
  const [B, S, Q, V] = [o.batch, o.prompt, o.prefix, d.vocab_size];
  const ids = Array.from({ length: B }, (_, b) => Array.from({ length: S }, (_, j) => 3 + ((b * 131 + j * 977) % (V - 3))));
  let mask = ids.map((r) => Array<number>(Q + r.length).fill(1));
  const argmax = (l: Float32Array, b: number) => {
    let k = 0;
    for (let i = 1; i < V; i++) if (l[b * V + i] > l[b * V + k]) k = i;
    return k;
  };
  let out: ort.InferenceSession.OnnxValueMapType;
  const run: Run = { prefillMs: 0, stepMs: [], firstLogits: new Float32Array(0), tokens: ids.map(() => []) };
  return {
    run,
    async prefill(): Promise<void> {
      const feeds: Record<string, ort.Tensor> = { input_ids: i64(ids), attention_mask: i64(mask), prefix_embeds: new ort.Tensor('float32', values(B * Q * width, 7, 0.05), [B, Q, width]) };
      for (const n of d.inputs) if (n.startsWith('past.')) feeds[n] = new ort.Tensor('float32', new Float32Array(0), [B, d.kv_heads, 0, d.head_dim]);
      const t = performance.now();
      out = await session.run(feeds);
      run.prefillMs = performance.now() - t;
      run.firstLogits = (out.logits.data as Float32Array).slice();
    },
    async step(): Promise<number> {
      const logits = out.logits.data as Float32Array;
      const next = ids.map((_, b) => argmax(logits, b));
      next.forEach((x, b) => run.tokens[b].push(x));
      mask = mask.map((r) => [...r, 1]);
      const f: Record<string, ort.Tensor> = { input_ids: i64(next.map((x) => [x])), attention_mask: i64(mask), prefix_embeds: new ort.Tensor('float32', new Float32Array(0), [B, 0, width]) };
      for (const n of d.inputs) if (n.startsWith('past.')) f[n] = out[n.replace(/^past\./, 'present.')] as ort.Tensor;
      const t = performance.now();
      out = await session.run(f);
      const ms = performance.now() - t;
      run.stepMs.push(ms);
      return ms;
    },
  };
}

async function run(session: ort.InferenceSession, info: ReturnType<typeof describe>, o: Record<string, number>): Promise<Run> {
  const dec = decoder(session, info, o);
  await dec.prefill();
  for (let s = 0; s < o.steps; s++) await dec.step();
  return dec.run;
}

/** Two artifacts step by step in turns; the paired differences B − A of every step after the first. */
async function paired(sessions: ort.InferenceSession[], infos: ReturnType<typeof describe>[], o: Record<string, number>): Promise<{ runs: Run[][]; diffs: number[] }> {
  const runs: Run[][] = [[], []];
  const diffs: number[] = [];
  for (let r = 0; r < o.rounds; r++) {
    const decs = [0, 1].map((i) => decoder(sessions[i], infos[i], o));
    for (const i of r % 2 ? [1, 0] : [0, 1]) await decs[i].prefill();
    for (let s = 0; s < o.steps; s++) {
      const ms = [0, 0];
      for (const i of (s + r) % 2 ? [1, 0] : [0, 1]) ms[i] = await decs[i].step();
      if (s > 0) diffs.push(ms[1] - ms[0]); // the first step allocates
    }
    decs.forEach((x, i) => runs[i].push(x.run));
  }
  return { runs, diffs };
}

async function main(): Promise<void> {
  const { dirs, o } = parse(process.argv.slice(2));
  if (o.paired && dirs.length !== 2) throw new Error('--paired compares exactly two artifacts');
  const sessions = [];
  for (const dir of dirs) sessions.push((await openSession(join(dir, 'decoder.onnx'), { threads: o.threads, spinning: o.paired ? false : undefined })).session);
  const infos = dirs.map(describe);
  let runs: Run[][] = dirs.map(() => []);
  let diffs: number[] | undefined;
  if (o.paired) ({ runs, diffs } = await paired(sessions, infos, o));
  else for (let r = 0; r < o.rounds; r++) for (let i = 0; i < dirs.length; i++) runs[i].push(await run(sessions[i], infos[i], o));
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
  if (diffs) {
    const mean = diffs.reduce((a, b) => a + b, 0) / diffs.length;
    console.log(JSON.stringify({ paired_steps: diffs.length, second_minus_first_ms_median: +median(diffs).toFixed(2), second_minus_first_ms_mean: +mean.toFixed(2), second_faster_in: diffs.filter((x) => x < 0).length }));
  }
  for (const s of sessions) await s.release();
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
});
