// npm run bench: blip-graph against transformers' PyTorch generate, in one run on this machine, on
// the same full-size random-weight checkpoints, image, prompt, thread count and settings (greedy,
// or beam search in the -beamK cases, exactly --tokens new tokens, --repetition-penalty (default 1),
// float32; both sides get every decoding setting explicitly, bench/decoding.ts).
//
//   npm run bench [-- --cases blip-base-b1,blip-base-b8,blip2-opt-350m-b1,instructblip-llama-small-b1,
//                             blip-base-beam3-b1,blip2-opt-2.7b-b1,blip2-opt-2.7b-fp16-b1 | all]
//                 [--threads 2] [--tokens 20] [--repetition-penalty 1] [--repeat R] [--target cpu]
//                 [--recompile] [--no-torch] [--huge-pages on|off] [--paired 5]
//
// --repeat: timed calls on both sides (each after one warm-up); without it each case's own counts
// (bench/options.ts repeatsOf: the slow layouts make fewer).
//
// For each case: make the checkpoint if it is missing (test/oracle/make_fullsize*.py through the
// reference environment), lay out a bench view of it (the weights linked, config / processor /
// tokenizer files from the fixtures so both sides tokenize the same prompt), compile it with
// `--target`, then run blip-graph (bench/ours.ts, library API, a fresh process) and PyTorch
// (bench/torch_generate.py through ../shared/oracle/py) back to back. Memory read bandwidth is
// measured first and before each case (bench/bandwidth.ts); the decode bounds are the run's highest
// reading over the bytes a token must read, each side's at the dtypes it reads (bench/bound.ts): the
// decoder weights (issue 7's bound), and the weights + KV cache. A second pair of fractions
// uses readings taken beside the decode: just before and after each timed blip-graph call, and
// around the PyTorch process. Then, where both fit in memory at once, the paired rounds: both sides
// resident in their own processes, one end-to-end call each in turn (--paired rounds, the order
// alternating, a pause between calls), so that each ratio compares calls a few seconds apart: this
// VM's speed drifts by a fifth from minute to minute, and the back-to-back blocks above can land in
// different moods. Results: .bench/results/bench-<time>.{json,md}.
// scripts/bench.mjs starts this with GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=2097152
// (--huge-pages on, the default: what bin/blip gives the blip command), which blip-graph's processes
// inherit; PyTorch's get their own (bench/mallocEnv.ts: THP_MEM_ALLOC_ENABLE=1, no tunables), and
// each side's huge pages, page faults and system time are recorded (bench/procMemory.ts).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { loadProgram } from '../src/syntax/load.js';
import { compile } from '../src/lower/compile.js';
import { readManifest, type Manifest } from '../src/artifact/manifest.js';
import { decodeModel } from '../src/lower/emitOnnx.js';
import type { Target } from '../src/rewrite/index.js';
import { readBandwidth, readBandwidthDetail, type BandwidthReading } from './bandwidth.js';
import { besideFractions, boundsOf, DTYPE_BYTES, ofBound, sideStepBytes, type BoundFractions, type KvShape, type ProbedCall, type StepBytes } from './bound.js';
import { oursArgs, torchGenerateArgs, type BenchDecoding } from './decoding.js';
import { mallocSettings, pytorchEnv } from './mallocEnv.js';
import { BenchUsageError, parseBenchArgs, repeatsOf, type BenchOptions } from './options.js';
import { staleDist } from './distFreshness.js';
import { sameNewTokens } from './agreement.js';
import type { MemoryParity } from './procMemory.js';

const ROOT = resolve(import.meta.dirname, '..');
const BENCH = join(ROOT, '.bench');
const ORACLE = resolve(ROOT, '..', 'shared', 'oracle', 'py');
const IMAGE = 'test/fixtures/images/blocks_1000x700.png';

interface Case {
  name: string;
  what: string;
  graph: string;
  /** Checkpoint directory (relative to the repository) and how to make it. */
  checkpoint: string;
  make: string[];
  /** Fixture whose tokenizer / processor files the bench view takes. */
  tokenizerFrom: string;
  /** config.json overrides (written textually: transformers' dataclasses reject 0 for a float 0.0). */
  config: Record<string, number>;
  processor: (p: Record<string, any>) => void;
  prompt: string;
  batch: number;
  /** Cross-attention length the decoder reads every step (BLIP: the image tokens), 0 if none. */
  crossLength: number;
  /** Torch: warm-ups, and timed calls on each side unless --repeat says (bench/options.ts repeatsOf; one
   * warm-up everywhere: a first call pays one-off costs). */
  torchWarmup: number;
  torchRepeat: number;
  oursRepeat?: number;
  /** Beam search with this many beams (default 1: greedy). */
  beams?: number;
  /** blip-graph's `--dtype` (default float32) and PyTorch's dtype (default float32). */
  dtype?: 'float32' | 'float16';
  torchDtype?: 'float32' | 'float16';
}

const blipBase = (batch: number): Case => ({
  name: `blip-base-b${batch}`,
  what: `BLIP-base captioning (ViT-B/16 at 384, BERT-base decoder), batch ${batch}`,
  graph: 'graphs/blip-caption.blip',
  checkpoint: '.bench/blip-base-random/checkpoint',
  make: ['test/oracle/make_fullsize.py'],
  tokenizerFrom: 'test/fixtures/blip-caption-a/checkpoint',
  config: {},
  processor: (p) => (p.image_processor.size = { height: 384, width: 384 }),
  prompt: 'a picture of',
  batch,
  crossLength: 577,
  torchWarmup: 1,
  torchRepeat: batch === 1 ? 3 : 1,
});

const CASES: Case[] = [
  blipBase(1),
  blipBase(8),
  // LAVIS captions with beam search (3 beams); same artifact as blip-base-b1.
  { ...blipBase(1), name: 'blip-base-beam3-b1', what: 'BLIP-base captioning, beam search with 3 beams, batch 1', beams: 3 },
  {
    name: 'blip2-opt-350m-b1',
    what: 'BLIP-2 layout: EVA ViT-g/14 (39 × 1408) + Q-Former (12 × 768, 32 queries) + OPT-350m layout (24 × 1024, post-norm, project_in/out), batch 1',
    graph: 'graphs/blip2-opt.blip',
    checkpoint: '.bench/blip2-opt-350m-layout',
    make: ['test/oracle/make_fullsize_blip2.py', 'blip2-opt-350m-layout'],
    tokenizerFrom: 'test/fixtures/blip2-opt-a/checkpoint',
    config: { image_token_index: 476 }, // the fixture tokenizer's <image>
    processor: (p) => ((p.image_processor.size = { height: 224, width: 224 }), (p.num_query_tokens = 32)),
    prompt: 'Question: what is in the picture? Answer:',
    batch: 1,
    crossLength: 0,
    torchWarmup: 1,
    torchRepeat: 2,
    oursRepeat: 3,
  },
  {
    name: 'instructblip-llama-small-b1',
    what: 'InstructBLIP layout: EVA ViT-g/14 + Q-Former with the instruction + a small LLaMA (16 × 1024, 16 heads), batch 1',
    graph: 'graphs/instructblip-vicuna.blip',
    checkpoint: '.bench/instructblip-llama-small-layout',
    make: ['test/oracle/make_fullsize_blip2.py', 'instructblip-llama-small-layout'],
    tokenizerFrom: 'test/fixtures/instructblip-vicuna-b/checkpoint',
    config: { image_token_index: 600 },
    processor: (p) => ((p.image_processor.size = { height: 224, width: 224 }), (p.num_query_tokens = 32)),
    prompt: 'Describe the picture.',
    batch: 1,
    crossLength: 0,
    torchWarmup: 1,
    torchRepeat: 2,
    oursRepeat: 3,
  },
  // The published BLIP-2 OPT-2.7b, from a float16 checkpoint (7.5 GB). Both sides compute in float32
  // on the CPU (the float16 weights converted exactly): PyTorch's float16 GEMM runs at 0.3 GFLOPS on
  // this machine (an EVA ViT-g encode would take ~30 min), so float16 PyTorch is no peer here; the
  // -fp16 case is blip-graph's `--dtype fp16` artifact against the same float32 PyTorch.
  ...(['float32', 'float16'] as const).map(
    (dtype): Case => ({
      name: dtype === 'float32' ? 'blip2-opt-2.7b-b1' : 'blip2-opt-2.7b-fp16-b1',
      what: `BLIP-2 OPT-2.7b (EVA ViT-g/14 + Q-Former + OPT-2.7b, 32 × 2560), blip-graph ${dtype}, PyTorch float32, batch 1`,
      graph: 'graphs/pinned/blip2-opt-2.7b.blip',
      checkpoint: '.bench/blip2-opt-2.7b-fp16',
      make: ['test/oracle/make_fullsize_blip2.py', 'blip2-opt-2.7b', '--dtype', 'float16', '--out', '.bench/blip2-opt-2.7b-fp16'],
      tokenizerFrom: 'test/fixtures/blip2-opt-a/checkpoint',
      config: { image_token_index: 476 },
      processor: (p) => ((p.image_processor.size = { height: 224, width: 224 }), (p.num_query_tokens = 32)),
      prompt: 'Question: what is in the picture? Answer:',
      batch: 1,
      crossLength: 0,
      torchWarmup: 1,
      torchRepeat: 2,
      oursRepeat: 2,
      dtype,
    }),
  ),
];

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** PyTorch's environment (set in main from --huge-pages): every python process of the run gets it. */
let TORCH_ENV: NodeJS.ProcessEnv = process.env;

function oracle(script: string[]): string {
  const r = spawnSync(ORACLE, script, { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 28, env: TORCH_ENV });
  if (r.status !== 0) throw new Error(`${script.join(' ')} failed (${r.status}):\n${(r.stderr ?? '').slice(-3000)}`);
  return r.stdout;
}

/** The bench view / artifact a case uses: batch sizes and beam counts share one. */
const artifactName = (c: Case): string => c.name.replace(/-b\d+$/, '').replace(/-beam\d+$/, '');

/** The checkpoint's weights linked, config and tokenizer / processor files made to agree. */
function benchView(c: Case): string {
  const src = join(ROOT, c.checkpoint);
  if (!existsSync(join(src, 'config.json'))) {
    log(`making ${c.checkpoint} (${c.make.join(' ')})`);
    oracle(c.make);
  }
  const view = join(BENCH, 'bench', artifactName(c), 'checkpoint');
  rmSync(view, { recursive: true, force: true });
  mkdirSync(view, { recursive: true });
  for (const f of readdirSync(src)) if (f.endsWith('.safetensors') || f === 'model.safetensors.index.json' || f === 'generation_config.json') symlinkSync(relative(view, join(src, f)), join(view, f));
  let cfg = readFileSync(join(src, 'config.json'), 'utf8');
  for (const [k, v] of Object.entries(c.config)) {
    const re = new RegExp(`("${k}"\\s*:\\s*)-?\\d+`);
    if (!re.test(cfg)) throw new Error(`${c.checkpoint}/config.json has no integer "${k}"`);
    cfg = cfg.replace(re, `$1${v}`);
  }
  writeFileSync(join(view, 'config.json'), cfg);
  const from = join(ROOT, c.tokenizerFrom);
  for (const f of readdirSync(from)) {
    if (f === 'processor_config.json') {
      const p = JSON.parse(readFileSync(join(from, f), 'utf8'));
      c.processor(p);
      writeFileSync(join(view, f), JSON.stringify(p, null, 2));
    } else if (f.startsWith('tokenizer') || f === 'special_tokens_map.json') copyFileSync(join(from, f), join(view, f));
    else if (f === 'qformer_tokenizer') cpSync(join(from, f), join(view, f), { recursive: true });
  }
  return view;
}

async function compiled(c: Case, view: string, target: Target, recompile: boolean): Promise<string> {
  const out = join(BENCH, 'bench', artifactName(c), `compiled-${target}`);
  if (!recompile && existsSync(join(out, 'manifest.json'))) return out;
  log(`compiling ${c.graph} --target ${target}${c.dtype === 'float16' ? ' --dtype fp16' : ''} -> ${relative(ROOT, out)}`);
  const graph = join(ROOT, c.graph);
  const p = loadProgram(graph);
  if (!p.program) throw new Error(`${c.graph} does not load`);
  const r = await compile({ model: p.program.models[0], graphFile: c.graph, graphText: readFileSync(graph, 'utf8'), weights: view, out, target, dtype: c.dtype ?? 'float32' });
  log(`compiled in ${r.seconds.toFixed(0)} s: ${r.graphs.map((g) => `${g.file} ${g.nodes} nodes`).join(', ')}`);
  return out;
}

/** blip-graph's decode against the probe readings taken just before and just after each timed call. */
function oursBeside(calls: ProbedCall[], step: StepBytes): Pick<Row, 'of_bound_beside' | 'bandwidth_beside'> {
  const b = besideFractions(calls, step);
  return { of_bound_beside: b.fractions, bandwidth_beside: b.readings };
}

function lastJson(s: string): any {
  const line = s.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`no JSON in output:\n${s.slice(-2000)}`);
  return JSON.parse(line);
}

/** A row's bounds before the run's highest bandwidth reading is known. */
const UNSET: BoundFractions = { weights: NaN, weights_kv: NaN };

interface Row {
  case: string;
  impl: string;
  end_to_end_ms: number;
  /** Image decoding, resizing, normalising and tokenizing (included in end_to_end_ms on both sides). */
  preprocess_ms: number;
  image_encode_ms: number;
  prefill_ms: number;
  decode_tokens_per_s: number;
  /** The bound from the run's highest bandwidth reading: weights only (issue 7's) and weights + KV cache (bench/bound.ts). */
  bound_tokens_per_s: BoundFractions;
  /** decode_tokens_per_s over each bound. */
  of_bound: BoundFractions;
  /** The decode rate over the bounds from probe readings taken beside it (the higher of the one just
   * before and the one just after; blip-graph: per timed call, averaged; PyTorch: around its process). */
  of_bound_beside: BoundFractions;
  /** Those readings, GB/s. */
  bandwidth_beside: number[];
  peak_rss_mb: number;
  rss_over_weights: number;
  /** Peak RSS of `blip run` over the case's images (blip-graph rows only). */
  blip_run_rss_mb?: number;
  blip_run_rss_over_weights?: number;
  same_tokens?: boolean;
  /** Bytes this side reads per output token of a decode step, at the dtypes it reads (bench/bound.ts sideStepBytes). */
  step_bytes: StepBytes;
  /** Its weights' bytes at the dtype it holds them (RSS / weights): blip-graph, its artifact's
   * weights.bin; PyTorch, its parameters as loaded (torch_generate.py weights_bytes). */
  weights_bytes: number;
  /** PyTorch rows: transformers' attention implementation of each sub-model (torch_generate.py). */
  attn_implementation?: Record<string, string>;
  /** The side's memory at the end of its timed calls and their kernel cost (bench/procMemory.ts). */
  memory?: MemoryParity;
}

/** Peak RSS (MB) of `blip run` captioning the case's batch of images, one call, as the command runs. */
function blipRunRss(dir: string, c: Case, threads: number, d: BenchDecoding): number {
  const images = join(BENCH, 'tmp', `images-${c.batch}`);
  rmSync(images, { recursive: true, force: true });
  mkdirSync(images, { recursive: true });
  for (let i = 0; i < c.batch; i++) copyFileSync(join(ROOT, IMAGE), join(images, `image-${i}.png`));
  const argv = ['run', dir, '--image', images, '--prompt', c.prompt, '--threads', String(threads), '--batch-size', String(c.batch), '--max-new-tokens', String(d.tokens), '--min-new-tokens', String(d.tokens), '--beams', String(d.beams), '--repetition-penalty', String(d.repetitionPenalty), '--no-repeat-ngram', '0', '--json'];
  const r = spawnSync(process.execPath, [join(ROOT, 'bench', 'blip_run_rss.mjs'), ...argv], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`blip run failed (${r.status}):\n${r.stderr.slice(-3000)}`);
  return lastJson(r.stderr).max_rss_mb;
}

/** One side of the paired rounds: a process speaking the --rounds-stdin protocol of bench/ours.ts and bench/torch_generate.py. */
class Resident {
  private readonly lines: AsyncIterator<string>;
  private stderr = '';

  constructor(
    readonly name: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {
    child.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-3000)));
    this.lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }

  /** The next JSON line it prints. */
  async next(): Promise<any> {
    for (;;) {
      const r = await this.lines.next();
      if (r.done) throw new Error(`${this.name} ended (exit ${this.child.exitCode}):\n${this.stderr}`);
      if (r.value.startsWith('{')) return JSON.parse(r.value);
    }
  }

  /** One timed call, from image bytes to tokens. */
  call(): Promise<{ wall_ms: number; sequences: number[][] }> {
    this.child.stdin.write('go\n');
    return this.next();
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((res) => this.child.once('exit', res));
    this.child.stdin.end();
    if ((await Promise.race([exited, sleep(60_000, 'timeout')])) === 'timeout') this.child.kill('SIGKILL');
  }
}

interface Paired {
  rounds: number;
  ours_ms: number[];
  torch_ms: number[];
  /** ours / PyTorch per round. */
  ratios: number[];
  same_tokens: boolean;
}

const median = (xs: number[]): number => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

/**
 * Both sides resident (loaded and warmed up one after the other), then `rounds` rounds of one call
 * each, the order alternating and a second's pause before every call (PyTorch's OpenMP threads keep
 * spinning a while after a call; onnxruntime's stop when a run returns).
 */
async function pairedRounds(c: Case, dir: string, view: string, threads: number, decoding: BenchDecoding, rounds: number, tokens: number): Promise<Paired> {
  const ours = new Resident('bench/ours.ts', spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'ours.ts'), '--dir', dir, '--image', IMAGE, '--prompt', c.prompt, '--threads', String(threads), '--batch', String(c.batch), ...oursArgs(decoding), '--rounds-stdin', '1'], { cwd: ROOT }));
  let torch: Resident | undefined;
  try {
    await ours.next();
    torch = new Resident('bench/torch_generate.py', spawn(ORACLE, ['bench/torch_generate.py', '--ckpt', relative(ROOT, view), '--image', IMAGE, '--prompt', c.prompt, '--threads', String(threads), '--batch', String(c.batch), '--dtype', c.torchDtype ?? 'float32', ...torchGenerateArgs(decoding), '--warmup', String(c.torchWarmup), '--rounds-stdin'], { cwd: ROOT, env: TORCH_ENV }));
    await torch.next();
    const p: Paired = { rounds, ours_ms: [], torch_ms: [], ratios: [], same_tokens: true };
    for (let r = 0; r < rounds; r++) {
      const got = new Map<Resident, { wall_ms: number; sequences: number[][] }>();
      for (const side of r % 2 === 0 ? [ours, torch] : [torch, ours]) {
        await sleep(1000);
        got.set(side, await side.call());
      }
      const [a, t] = [got.get(ours)!, got.get(torch)!];
      p.ours_ms.push(a.wall_ms);
      p.torch_ms.push(t.wall_ms);
      p.ratios.push(a.wall_ms / t.wall_ms);
      p.same_tokens &&= sameNewTokens(a.sequences, t.sequences, tokens);
      log(`${c.name}: paired round ${r + 1}: ours ${a.wall_ms.toFixed(0)} ms, torch ${t.wall_ms.toFixed(0)} ms (${(a.wall_ms / t.wall_ms).toFixed(3)})`);
    }
    return p;
  } finally {
    await ours.stop();
    await torch?.stop();
  }
}

async function main(): Promise<void> {
  let o: BenchOptions;
  try {
    o = parseBenchArgs(process.argv.slice(2), CASES.map((c) => c.name));
  } catch (e) {
    if (!(e instanceof BenchUsageError)) throw e;
    process.stderr.write(`npm run bench: ${e.message}\n`);
    process.exit(2);
  }
  const cases = o.cases.map((n) => CASES.find((x) => x.name === n)!);
  const stale = staleDist(ROOT);
  if (stale) {
    process.stderr.write(`npm run bench: ${stale}; the \`blip run\` RSS column runs the built command (dist/src/cli/main.js) while the timings run from source: run npm run build first\n`);
    process.exit(2);
  }
  const started = new Date();
  TORCH_ENV = pytorchEnv(process.env, o.hugePages === 'on');
  log(`malloc settings: blip-graph ${JSON.stringify(mallocSettings(process.env))}, PyTorch ${JSON.stringify(mallocSettings(TORCH_ENV))}`);
  log(`measuring memory read bandwidth (${o.threads} threads)`);
  // This VM's read bandwidth swings by a third from minute to minute (39-58 GB/s measured within
  // ten minutes): it is measured again before each case and the highest value makes every row's
  // bound, the strictest choice.
  // Each before-case reading with both probes' own numbers (bench/bandwidth.ts: the faster counts).
  const probes: BandwidthReading[] = [];
  const probe = async (): Promise<number> => {
    const r = await readBandwidthDetail(o.threads);
    probes.push(r);
    log(`read bandwidth ${r.gbs.toFixed(2)} GB/s (ReduceSum ${r.reduceSum.toFixed(2)}, MatMul by a vector ${r.matMul.toFixed(2)})`);
    return r.gbs;
  };
  const bws = [await probe()];

  const rows: Row[] = [];
  const raw: Record<string, unknown> = {};
  const paired: Record<string, Paired> = {};
  for (const c of cases) {
    const decoding: BenchDecoding = { tokens: o.tokens, repetitionPenalty: o.repetitionPenalty, beams: c.beams ?? 1 };
    const repeats = repeatsOf(c, o.repeat);
    const view = benchView(c);
    const dir = await compiled(c, view, o.target, o.recompile);
    const m: Manifest = readManifest(dir);
    const weightBytes = m.weights.bytes;
    const d = m.decoder!;
    // Bytes one decode step reads (bench/bound.ts): every decoder weight (the tied head reads the whole
    // embedding table), except a table only looked up (an untied input embedding: one row per token
    // row), plus the KV cache at the mean length of the decode (prompt, prefix, half the new tokens),
    // each side at the dtypes it reads. blip-graph runs on onnxruntime's CPU provider here, which
    // computes a float16 artifact's matrix products in float32 on float32 copies of the weights, and
    // keeps the KV cache at the decoder's past.* input type; PyTorch reads both at the dtype it loaded.
    const decoderGraph = decodeModel(readFileSync(join(dir, 'decoder.onnx'))).graph!;
    const kv: KvShape = { layers: d.layers, kvHeads: d.kv_heads, headDim: d.head_dim, batch: c.batch, beams: decoding.beams, meanSelf: 16 + (c.crossLength ? 0 : 32) + o.tokens / 2, crossLength: c.crossLength };
    const oursKvType = m.graphs.decoder!.inputs.find((i) => i.name.startsWith('past.'))?.type === 'float16' ? 'float16' : 'float32';
    const oursStep = sideStepBytes(decoderGraph, kv, DTYPE_BYTES.float32, DTYPE_BYTES[oursKvType]);
    const torchDtype = c.torchDtype ?? 'float32';
    const torchStep = sideStepBytes(decoderGraph, kv, DTYPE_BYTES[torchDtype], DTYPE_BYTES[torchDtype]);
    bws.push(await probe());

    log(`${c.name}: blip-graph (${relative(ROOT, dir)})`);
    const ours = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'ours.ts'), '--dir', dir, '--image', IMAGE, '--prompt', c.prompt, '--threads', String(o.threads), '--batch', String(c.batch), ...oursArgs(decoding), '--repeat', String(repeats.ours), '--probe-threads', String(o.threads)], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 28 });
    if (ours.status !== 0) throw new Error(`bench/ours.ts failed:\n${ours.stderr.slice(-3000)}`);
    const a = lastJson(ours.stdout);
    // The issue's RSS target is for `blip run`: the same generation as a one-shot command
    const runRss = blipRunRss(dir, c, o.threads, decoding);
    let t: any;
    const torchBandwidth: number[] = [];
    if (o.torch) {
      log(`${c.name}: PyTorch (warm-up ${c.torchWarmup}, repeat ${repeats.torch})`);
      torchBandwidth.push(await readBandwidth(o.threads));
      t = lastJson(oracle(['bench/torch_generate.py', '--ckpt', relative(ROOT, view), '--image', IMAGE, '--prompt', c.prompt, '--threads', String(o.threads), '--batch', String(c.batch), '--dtype', torchDtype, ...torchGenerateArgs(decoding), '--repeat', String(repeats.torch), '--warmup', String(c.torchWarmup)]));
      torchBandwidth.push(await readBandwidth(o.threads));
    }
    // Token agreement: transformers' sequences hold the prompt (BLIP) or prefix too; compare the new tokens.
    const same = t ? sameNewTokens(a.sequences, t.sequences, o.tokens) : undefined;
    raw[c.name] = { ours: a, torch: t, weights_bytes: weightBytes, step_bytes: { ours: oursStep, torch: torchStep } };
    rows.push({ case: c.name, impl: `blip-graph (--target ${o.target}${c.dtype === 'float16' ? ' --dtype fp16' : ''})`, end_to_end_ms: a.end_to_end_ms, preprocess_ms: a.preprocess_ms, image_encode_ms: a.image_encode_ms, prefill_ms: a.prefill_ms, decode_tokens_per_s: a.decode_tokens_per_s, bound_tokens_per_s: UNSET, of_bound: UNSET, ...oursBeside(a.runs, oursStep), peak_rss_mb: a.peak_rss_mb, rss_over_weights: (a.peak_rss_mb * 2 ** 20) / weightBytes, step_bytes: oursStep, weights_bytes: weightBytes, blip_run_rss_mb: runRss, blip_run_rss_over_weights: (runRss * 2 ** 20) / weightBytes, same_tokens: same, memory: a.memory });
    if (t) rows.push({ case: c.name, impl: `${t.peer}${c.torchDtype === 'float16' ? ' float16' : ''}`, end_to_end_ms: t.end_to_end_ms, preprocess_ms: t.preprocess_ms ?? NaN, image_encode_ms: t.image_encode_ms, prefill_ms: t.prefill_ms, decode_tokens_per_s: t.decode_tokens_per_s, bound_tokens_per_s: UNSET, of_bound: UNSET, of_bound_beside: ofBound(t.decode_tokens_per_s, Math.max(...torchBandwidth), torchStep), bandwidth_beside: torchBandwidth, peak_rss_mb: t.peak_rss_mb, rss_over_weights: (t.peak_rss_mb * 2 ** 20) / t.weights_bytes, step_bytes: torchStep, weights_bytes: t.weights_bytes, attn_implementation: t.attn_implementation, memory: t.memory });
    log(`${c.name}: ours ${a.end_to_end_ms.toFixed(0)} ms${t ? `, torch ${t.end_to_end_ms.toFixed(0)} ms, same tokens: ${same}` : ''}`);
    for (const [side, m] of [['ours', a.memory], ['torch', t?.memory]] as const) if (m) log(`${c.name}: ${side}: ${parity(m)}`);
    // Paired rounds where both resident sides fit in memory with room to spare
    if (t && o.paired > 0) {
      if ((a.peak_rss_mb + t.peak_rss_mb) * 2 ** 20 < 0.8 * totalmem()) {
        log(`${c.name}: paired rounds (${o.paired}, both resident)`);
        paired[c.name] = await pairedRounds(c, dir, view, o.threads, decoding, o.paired, o.tokens);
        (raw[c.name] as Record<string, unknown>).paired = paired[c.name];
      } else log(`${c.name}: no paired rounds: both sides (${a.peak_rss_mb.toFixed(0)} + ${t.peak_rss_mb.toFixed(0)} MB) do not fit in memory together`);
    }
  }
  // the strict bound: the highest reading of the run, the probes beside the timed calls included
  const beside = rows.flatMap((r) => r.bandwidth_beside).filter((b) => Number.isFinite(b));
  const bw = Math.max(...bws, ...beside);
  for (const r of rows) {
    r.bound_tokens_per_s = boundsOf(bw, r.step_bytes);
    r.of_bound = ofBound(r.decode_tokens_per_s, bw, r.step_bytes);
  }
  const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memory_gb: Math.round(totalmem() / 2 ** 30), node: process.version, threads: o.threads, read_bandwidth_gb_s: bw, read_bandwidth_all_gb_s: bws, read_bandwidth_probes: probes, read_bandwidth_beside_gb_s: beside, malloc_env: { blip_graph: mallocSettings(process.env), pytorch: mallocSettings(TORCH_ENV) } };
  const md = table(rows, machine, o, started, paired);
  const outDir = join(BENCH, 'results');
  mkdirSync(outDir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-').slice(0, 19);
  writeFileSync(join(outDir, `bench-${stamp}.json`), JSON.stringify({ started, machine, options: o, rows, raw }, null, 2));
  writeFileSync(join(outDir, `bench-${stamp}.md`), md);
  process.stdout.write(md);
  log(`results: ${relative(ROOT, join(outDir, `bench-${stamp}.{json,md}`))}`);
}

/** One side's memory parity in a log line. */
function parity(m: MemoryParity): string {
  return `AnonHugePages ${m.anon_huge_pages_mb?.toFixed(0)} MB, RssAnon ${m.rss_anon_mb?.toFixed(0)} MB, RssFile ${m.rss_file_mb?.toFixed(0)} MB, ${m.minor_faults_per_call.toFixed(0)} minor faults and ${m.system_s_per_call.toFixed(2)} s system time per timed call`;
}

/** Malloc settings as the table's header states them. */
const settings = (m: ReturnType<typeof mallocSettings>): string => [m.GLIBC_TUNABLES && `GLIBC_TUNABLES=${m.GLIBC_TUNABLES}`, m.THP_MEM_ALLOC_ENABLE && `THP_MEM_ALLOC_ENABLE=${m.THP_MEM_ALLOC_ENABLE}`].filter(Boolean).join(' ') || 'none';

function table(rows: Row[], machine: { [k: string]: any; malloc_env: { blip_graph: ReturnType<typeof mallocSettings>; pytorch: ReturnType<typeof mallocSettings> } }, o: BenchOptions, started: Date, paired: Record<string, Paired>): string {
  const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '–');
  const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '–');
  const pct = (b: BoundFractions) => [b.weights, b.weights_kv].map((x) => (Number.isFinite(x) ? `${(100 * x).toFixed(0)}%` : '–')).join(' / ');
  const lines = [
    `blip-graph vs PyTorch eager — ${started.toISOString()}, ${machine.cpus} cores (${machine.cpu}), ${machine.memory_gb} GB, ${o.threads} threads each, float32 (unless the row says fp16), greedy${rows.some((r) => /-beam\d+-/.test(r.case)) ? ' (the -beamK cases: beam search with K beams)' : ''}, ${o.tokens} new tokens${o.repetitionPenalty !== 1 ? `, repetition penalty ${o.repetitionPenalty}` : ''}; malloc: blip-graph ${settings(machine.malloc_env.blip_graph)}, PyTorch ${settings(machine.malloc_env.pytorch)} (bench/mallocEnv.ts; the memory table below shows what each side got); read bandwidth ${(machine.read_bandwidth_gb_s as number).toFixed(1)} GB/s (the faster of onnxruntime's ReduceSum and MatMul by a vector over 512 MB, which read ${(machine.read_bandwidth_probes as BandwidthReading[]).map((p) => `${p.reduceSum.toFixed(1)} / ${p.matMul.toFixed(1)}`).join(', ')} before the cases; highest of ${(machine.read_bandwidth_all_gb_s as number[]).map((b) => b.toFixed(1)).join(', ')}: one before each case, and of the ${(machine.read_bandwidth_beside_gb_s as number[]).length} readings beside the timed calls)`,
    '',
    'Bounds and fractions: weights only (the bytes of weights a token reads over the bandwidth) / weights + KV cache.',
    '',
    '| case | implementation | end-to-end ms | preprocess ms | image encode ms | prefill ms | decode tok/s | bound tok/s | of bound | of bound, probes beside it (GB/s) | peak RSS MB | RSS / weights | `blip run` RSS MB (/ weights) | same tokens |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.case} | ${r.impl} | ${f0(r.end_to_end_ms)} | ${f0(r.preprocess_ms)} | ${f0(r.image_encode_ms)} | ${f0(r.prefill_ms)} | ${f1(r.decode_tokens_per_s)} | ${f1(r.bound_tokens_per_s.weights)} / ${f1(r.bound_tokens_per_s.weights_kv)} | ${pct(r.of_bound)} | ${pct(r.of_bound_beside)} (${r.bandwidth_beside.map((b) => b.toFixed(0)).join(', ')}) | ${f0(r.peak_rss_mb)} | ${r.rss_over_weights.toFixed(2)} | ${r.blip_run_rss_mb === undefined ? '' : `${f0(r.blip_run_rss_mb)} (${r.blip_run_rss_over_weights!.toFixed(2)})`} | ${r.same_tokens === undefined ? '' : r.same_tokens ? 'yes' : 'NO'} |`),
    '',
    `PyTorch runs in eager mode (no torch.compile) with transformers' default attention per sub-model: ${rows
      .filter((r) => r.attn_implementation)
      .map((r) => `${r.case} ${Object.entries(r.attn_implementation!).map(([k, v]) => `${k} ${v}`).join(', ')}`)
      .join('; ')}.`,
    '',
    'Memory at the end of each side\'s timed calls (AnonHugePages: on transparent huge pages) and the kernel\'s share of a timed call (getrusage):',
    '',
    '| case | implementation | AnonHugePages MB | RssAnon MB | RssFile MB | minor faults / call | system s / call |',
    '|---|---|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.case} | ${r.impl} | ${r.memory ? [r.memory.anon_huge_pages_mb, r.memory.rss_anon_mb, r.memory.rss_file_mb, r.memory.minor_faults_per_call].map(f0).join(' | ') : '– | – | – | –'} | ${r.memory ? r.memory.system_s_per_call.toFixed(2) : '–'} |`),
    '',
    ...(Object.keys(paired).length
      ? [
          `Paired rounds: both sides resident, one end-to-end call each in turn (order alternating, 1 s pause before each), ${o.paired} rounds; ratio = blip-graph / PyTorch of the same round.`,
          '',
          '| case | blip-graph ms (median) | PyTorch ms (median) | ratio, median | ratio, range | same tokens |',
          '|---|---:|---:|---:|---:|---|',
          ...Object.entries(paired).map(([name, p]) => `| ${name} | ${f0(median(p.ours_ms))} | ${f0(median(p.torch_ms))} | ${median(p.ratios).toFixed(3)} | ${Math.min(...p.ratios).toFixed(3)}–${Math.max(...p.ratios).toFixed(3)} | ${p.same_tokens ? 'yes' : 'NO'} |`),
        ]
      : []),
    '',
  ];
  return lines.join('\n');
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
});
