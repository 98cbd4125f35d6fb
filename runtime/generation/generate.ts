// The host generation loop, step for step as transformers 5.12 GenerationMixin.generate:
// greedy and multinomial sampling (_sample) and beam search / beam sampling (_beam_search, the
// vectorised implementation with its float32 arithmetic, -1e9 masks, early-stopping heuristic and
// output padding). Sampling uses a seeded PRNG: reproducible for a seed, not torch's stream.
import { GenerationConfigError, BlipRuntimeError } from '../errors.js';
import { topk } from './topk.js';
import { buildProcessors, logSoftmaxRow, softmaxRow, type LogitsProcessor } from './processors.js';
import { createRandom } from './random.js';
import type { GenerationOptions, GenerationResult, StepModel, StepOutput, TokenLogprob } from './types.js';

/** Beams (or sampled sequences) one prompt may ask for. */
export const MAX_ROWS_PER_PROMPT = 256;
/** The most alternatives a logprobs entry lists (OpenAI's top_logprobs limit). */
export const MAX_TOP_LOGPROBS = 20;

const f = Math.fround;
const NEG = -1.0e9;

export interface Prompt {
  /**
   * Prompt rows, all the same length (pad them as the family's processor does). Rows may be empty
   * when the model feeds its own prefill (transformers generating from inputs_embeds only): the
   * sequences then hold the new tokens alone.
   */
  inputIds: number[][];
  /** 1 = token, 0 = padding; default all ones. */
  attentionMask?: number[][];
}

interface Resolved {
  maxLength: number;
  minLength: number;
  minNewTokens: number;
  numBeams: number;
  numReturnSequences: number;
  doSample: boolean;
  eos: number[];
  pad: number | undefined;
  lengthPenalty: number;
  earlyStopping: boolean | 'never';
  random: () => number;
  processors: LogitsProcessor[];
}

const int = (v: number | undefined, name: string, min: number): number | undefined => {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < min) throw new GenerationConfigError(`${name} must be an integer >= ${min}, found ${v}`);
  return v;
};

/**
 * The whole sequence's length limit for a prompt of `promptLength` tokens, as the loop resolves it;
 * throws where the prompt leaves no new token room (checkSettings runs it for a caller that checks
 * every batch before the first runs).
 */
function resolveMaxLength(opts: GenerationOptions, promptLength: number): number {
  const maxNew = int(opts.maxNewTokens, 'maxNewTokens', 1);
  let maxLength = int(opts.maxLength, 'maxLength', 1);
  if (maxNew !== undefined) maxLength = maxNew + promptLength;
  else if (maxLength === undefined) {
    // transformers' model-agnostic default: 20 new tokens, the whole sequence capped at the model's
    // max_position_embeddings (an explicit length is not capped)
    maxLength = 20 + promptLength;
    const positions = opts.maxPositionEmbeddings;
    if (positions !== undefined && maxLength > positions) {
      maxLength = positions;
      // (transformers: "Input length of input_ids is N, but `max_length` is set to N", a ValueError)
      if (promptLength >= maxLength) {
        throw new BlipRuntimeError('BLIP5032', `the input (start tokens, any image prefix and the prompt) takes ${promptLength} of the model's ${positions} positions, where the default length (20 new tokens, capped at the positions as in transformers) ends: no new token fits; shorten the prompt or set maxNewTokens`);
      }
    }
  }
  if (promptLength >= maxLength) {
    // (maxLength counts what the decoder is given before the first new token, not the prompt's text alone: BLIP5032's words)
    const input = `the input (start tokens, any image prefix and the prompt) is ${promptLength} token${promptLength === 1 ? '' : 's'}`;
    throw new GenerationConfigError(
      opts.maxLengthFrom !== undefined
        ? `${input} but the model's default max_length ${maxLength} (from ${opts.maxLengthFrom}) counts them: set a larger maxLength or set maxNewTokens`
        : `${input} but maxLength is ${maxLength}, which counts them: raise maxLength or set maxNewTokens`,
    );
  }
  return maxLength;
}

/**
 * Refuses the settings the loop would refuse for a prompt of `promptLength` tokens (length, beams
 * and returned sequences, penalties, sampling), so a caller can check them before any model runs.
 */
export function checkSettings(opts: GenerationOptions, promptLength: number): void {
  resolve(opts, promptLength);
}

function resolve(opts: GenerationOptions, promptLength: number): Resolved {
  const maxLength = resolveMaxLength(opts, promptLength);
  const numBeams = int(opts.numBeams, 'numBeams', 1) ?? 1;
  const numReturnSequences = int(opts.numReturnSequences, 'numReturnSequences', 1) ?? 1;
  // every beam and returned sequence is a batch row with its own logits and cache (100000 beams
  // took 10 GB before the first step); LAVIS captions with 3, transformers' examples use up to 10
  for (const [name, v] of [['numBeams', numBeams], ['numReturnSequences', numReturnSequences]] as const) {
    if (v > MAX_ROWS_PER_PROMPT) throw new GenerationConfigError(`${name} is ${v}, more than the ${MAX_ROWS_PER_PROMPT} rows per prompt this runtime takes`);
  }
  const doSample = opts.doSample ?? false;
  if (opts.logprobs) {
    const top = opts.logprobs.top;
    if (!Number.isInteger(top) || top < 0 || top > MAX_TOP_LOGPROBS) throw new GenerationConfigError(`topLogprobs must be an integer from 0 to ${MAX_TOP_LOGPROBS}, found ${top}`);
    if (numBeams > 1) throw new GenerationConfigError('logprobs are given for greedy decoding and sampling, not beam search (numBeams > 1)');
  }
  if (numReturnSequences > 1 && numBeams === 1 && !doSample) {
    throw new GenerationConfigError(`greedy decoding returns one sequence per prompt; numReturnSequences ${numReturnSequences} needs numBeams >= it or doSample: true`);
  }
  if (numBeams > 1 && numReturnSequences > numBeams) {
    throw new GenerationConfigError(`numReturnSequences (${numReturnSequences}) must not exceed numBeams (${numBeams})`);
  }
  const eos = opts.eosTokenId === null || opts.eosTokenId === undefined ? [] : Array.isArray(opts.eosTokenId) ? opts.eosTokenId : [opts.eosTokenId];
  const pad = opts.padTokenId ?? (eos.length ? eos[0] : undefined);
  const es = opts.earlyStopping ?? false;
  if (es !== true && es !== false && es !== 'never') throw new GenerationConfigError(`earlyStopping must be true, false or "never", found ${JSON.stringify(es)}`);
  for (const [name, v] of [
    ['temperature', opts.temperature],
    ['repetitionPenalty', opts.repetitionPenalty],
  ] as const) {
    if (v !== undefined && !(v > 0)) throw new GenerationConfigError(`${name} must be > 0, found ${v}`);
  }
  if (opts.topP !== undefined && !(opts.topP >= 0 && opts.topP <= 1)) throw new GenerationConfigError(`topP must be in [0, 1], found ${opts.topP}`);
  // (transformers' MinPLogitsWarper and TypicalLogitsWarper refuse these; typical_p 1 is off)
  if (opts.minP !== undefined && !(opts.minP >= 0 && opts.minP <= 1)) throw new GenerationConfigError(`minP must be in [0, 1], found ${opts.minP}`);
  if (opts.typicalP !== undefined && !(opts.typicalP > 0 && opts.typicalP <= 1)) throw new GenerationConfigError(`typicalP must be in (0, 1], found ${opts.typicalP}`);
  if (opts.topK !== undefined && !(Number.isInteger(opts.topK) && opts.topK >= 0)) throw new GenerationConfigError(`topK must be an integer >= 0, found ${opts.topK}`);
  int(opts.noRepeatNgramSize, 'noRepeatNgramSize', 0);
  if (opts.lengthPenalty !== undefined && !Number.isFinite(opts.lengthPenalty)) throw new GenerationConfigError(`lengthPenalty must be a number, found ${opts.lengthPenalty}`);
  if (opts.doSample !== undefined && typeof opts.doSample !== 'boolean') throw new GenerationConfigError(`doSample must be true or false, found ${JSON.stringify(opts.doSample)}`);
  let minLength = int(opts.minLength, 'minLength', 0) ?? 0;
  const minNewTokens = int(opts.minNewTokens, 'minNewTokens', 0) ?? 0;
  if (minNewTokens > 0) minLength = 0; // min_new_tokens takes precedence (transformers sets min_length from it)
  const minTokensToKeep = numBeams > 1 ? (eos.length ? eos.length + 1 : 2) : 1;
  const processors = buildProcessors({
    promptLength,
    eos,
    repetitionPenalty: opts.repetitionPenalty,
    noRepeatNgramSize: opts.noRepeatNgramSize,
    minLength: minNewTokens > 0 ? minNewTokens + promptLength : minLength,
    minNewTokens,
    doSample,
    temperature: opts.temperature,
    topK: doSample ? (opts.topK ?? 50) : undefined,
    topP: opts.topP,
    minP: opts.minP,
    typicalP: opts.typicalP,
    minTokensToKeep,
  });
  return {
    maxLength,
    minLength,
    minNewTokens,
    numBeams,
    numReturnSequences,
    doSample,
    eos,
    pad,
    lengthPenalty: opts.lengthPenalty ?? 1.0,
    earlyStopping: es,
    random: opts.random ?? createRandom(opts.seed ?? 0),
    processors,
  };
}

function mask2d(rows: number[][]): BigInt64Array {
  const s = rows[0]?.length ?? 0;
  const out = new BigInt64Array(rows.length * s);
  rows.forEach((r, i) => r.forEach((v, j) => (out[i * s + j] = BigInt(v))));
  return out;
}

function checkStep<S>(out: StepOutput<S>, rows: number, what: string): void {
  if (!(out.logits instanceof Float32Array) || out.vocab < 1 || out.logits.length !== rows * out.vocab) {
    throw new BlipRuntimeError('BLIP5031', `${what}: the model returned ${out.logits?.length} logits for ${rows} rows of vocabulary ${out.vocab}`);
  }
}

function argmax(scores: Float32Array, off: number, V: number): number {
  let best = 0;
  let bv = scores[off];
  for (let i = 1; i < V; i++) {
    const v = scores[off + i];
    if (v > bv || (Number.isNaN(bv) && !Number.isNaN(v))) {
      bv = v;
      best = i;
    }
  }
  return best;
}

/** Whether any token outside `exclude` has probability above 0. */
function hasMass(probs: Float32Array, exclude: Set<number>): boolean {
  for (let i = 0; i < probs.length; i++) if (probs[i] > 0 && !exclude.has(i)) return true;
  return false;
}

/** Draw one index from probabilities (float32 softmax output); `exclude` are not drawable. */
function draw(probs: Float32Array, random: () => number, exclude?: Set<number>): number {
  let total = 0;
  for (let i = 0; i < probs.length; i++) if (!exclude?.has(i) && probs[i] > 0) total += probs[i];
  if (!(total > 0)) throw new BlipRuntimeError('BLIP5031', 'sampling: every token has probability 0 (all scores are -inf or NaN)');
  let u = random() * total;
  let last = -1;
  for (let i = 0; i < probs.length; i++) {
    if (exclude?.has(i) || !(probs[i] > 0)) continue;
    last = i;
    u -= probs[i];
    if (u < 0) return i;
  }
  return last;
}

/**
 * Generate continuations of `prompt` with `model`, as transformers' generate() does for the same
 * settings (greedy, sampling, beam search, beam sampling).
 */
export async function generate<S>(model: StepModel<S>, prompt: Prompt, opts: GenerationOptions = {}): Promise<GenerationResult> {
  const B = prompt.inputIds.length;
  if (B === 0) throw new GenerationConfigError('no prompts to generate from');
  const P = prompt.inputIds[0].length;
  if (prompt.inputIds.some((r) => r.length !== P)) throw new GenerationConfigError('prompt rows must all have the same length (pad them)');
  const mask = prompt.attentionMask ?? prompt.inputIds.map((r) => r.map(() => 1));
  if (mask.length !== B || mask.some((r) => r.length !== P)) throw new GenerationConfigError('attention mask shape differs from the prompt');
  const cfg = resolve(opts, P);
  return cfg.numBeams > 1 ? beamSearch(model, prompt.inputIds, mask, cfg, opts) : sampleOrGreedy(model, prompt.inputIds, mask, cfg, opts);
}

async function sampleOrGreedy<S>(model: StepModel<S>, ids: number[][], mask0: number[][], cfg: Resolved, opts: GenerationOptions): Promise<GenerationResult> {
  const B0 = ids.length;
  const P = ids[0].length;
  const expand = cfg.doSample ? cfg.numReturnSequences : 1;
  const expandIdx: number[] = [];
  for (let b = 0; b < B0; b++) for (let r = 0; r < expand; r++) expandIdx.push(b);
  const B = expandIdx.length;
  const seqs = expandIdx.map((b) => ids[b].slice());
  const mask = expandIdx.map((b) => mask0[b].slice());
  let calls = 1;
  // The state the model holds now (the last step's, or what reorder() made of it; reorder() takes
  // over its input's resources, so that one is not disposed): released when the loop ends, by a
  // return or by anything thrown inside it (an onToken that stops it, a failed step). On WebGPU it
  // holds the KV cache's device buffers, kept until close() where a throw skipped its release.
  let state!: S;
  let holding = false;
  const signal = opts.signal;
  try {
    signal?.throwIfAborted();
    let out = await model.step({ inputIds: mask2d(ids.map((r) => r)), batch: B0, seqLen: P, attentionMask: mask2d(mask0), pastLength: 0, prefill: true }, undefined);
    state = out.state;
    holding = true;
    checkStep(out, B0, 'prefill');
    let V = out.vocab;
    let logits = out.logits;
    if (expand > 1) {
      state = await model.reorder(state, expandIdx);
      const e = new Float32Array(B * V);
      expandIdx.forEach((b, i) => e.set(logits.subarray(b * V, (b + 1) * V), i * V));
      logits = e;
    }
    const unfinished = new Array<boolean>(B).fill(true);
    const hasEos = cfg.eos.length > 0;
    // greedy decoding runs in the model when it can (StepModel.greedy): its only logits processors
    // may be minimum lengths, which ban EOS below a length
    const inGraph = !cfg.doSample && cfg.processors.every((p) => p.eosBannedBelow !== undefined) && model.greedy !== undefined && opts.greedyChunk !== 0 && !opts.logprobs;
    const logprobs = opts.logprobs ? seqs.map(() => [] as TokenLogprob[]) : undefined;
    const logp = opts.logprobs ? new Float32Array(logits.length / B) : undefined;
    const eosBannedBelow = Math.max(0, ...cfg.processors.map((p) => p.eosBannedBelow ?? 0));
    let step = 0;
    let stopped = false;
    /** Appends one token per row, marks the rows it finishes and reports it. */
    const record = (tokens: number[]): void => {
      if (tokens.length !== B) throw new BlipRuntimeError('BLIP5031', `step ${step}: ${tokens.length} tokens for ${B} rows`);
      // a row that a stopRow finished inside an in-graph chunk is padded here, as the model pads the rows it finished
      if (stopped && hasEos) tokens = tokens.map((t, r) => (unfinished[r] ? t : cfg.pad!));
      for (let r = 0; r < B; r++) {
        seqs[r].push(tokens[r]);
        mask[r].push(1);
      }
      const len = seqs[0].length;
      // asked of every row this token extends, the one that ends it by length or EOS too
      if (opts.stopRow) {
        for (let r = 0; r < B; r++) {
          if (unfinished[r] && opts.stopRow(r, seqs[r].slice(P))) {
            unfinished[r] = false;
            stopped = true;
          }
        }
      }
      for (let r = 0; r < B; r++) if (len >= cfg.maxLength || (hasEos && cfg.eos.includes(tokens[r]))) unfinished[r] = false;
      opts.onToken?.({ step, tokens, finished: unfinished.map((u) => !u) });
      step++;
    };
    for (;;) {
      const scores = new Float32Array(logits);
      for (const p of cfg.processors) p(seqs, scores, V);
      const next: number[] = [];
      for (let r = 0; r < B; r++) {
        let t = cfg.doSample ? draw(softmaxRow(scores.subarray(r * V, (r + 1) * V)), cfg.random) : argmax(scores, r * V, V);
        if (hasEos && !unfinished[r]) t = cfg.pad!;
        next.push(t);
        if (logprobs && unfinished[r]) {
          logSoftmaxRow(logits.subarray(r * V, (r + 1) * V), logp!);
          logprobs[r].push({ token: t, logprob: logp![t], top: topk(logp!, opts.logprobs!.top).map((k) => ({ token: k, logprob: logp![k] })) });
        }
      }
      record(next);
      const len = seqs[0].length;
      if (!unfinished.some(Boolean)) break;
      if (inGraph) {
        // the rest in the model (greedy): the tokens it chooses are recorded as the host's are
        let feed = next;
        while (unfinished.some(Boolean)) {
          signal?.throwIfAborted();
          const steps = Math.min(cfg.maxLength - seqs[0].length, opts.greedyChunk ?? Infinity);
          // the first token chosen makes the rows seqs[0].length + 1 long; EOS is banned while they are shorter than the minimum
          const g = await model.greedy!(feed, state, steps, cfg.eos, cfg.pad ?? 0, unfinished.map((u) => !u), eosBannedBelow - seqs[0].length);
          calls++;
          const used = state;
          state = g.state;
          model.dispose?.(used);
          // (a chunk may go on past the step where stop strings finished every row: not recorded, as the host loop records nothing after)
          for (const t of g.tokens) {
            if (!unfinished.some(Boolean)) break;
            record(t);
          }
          feed = g.tokens[g.tokens.length - 1];
        }
        break;
      }
      signal?.throwIfAborted();
      const inp = new BigInt64Array(B);
      next.forEach((t, i) => (inp[i] = BigInt(t)));
      out = await model.step({ inputIds: inp, batch: B, seqLen: 1, attentionMask: mask2d(mask), pastLength: len - 1, prefill: false }, state);
      calls++;
      const used = state;
      state = out.state;
      model.dispose?.(used);
      checkStep(out, B, `step ${step}`);
      if (out.vocab !== V) throw new BlipRuntimeError('BLIP5031', `step ${step}: vocabulary changed from ${V} to ${out.vocab}`);
      logits = out.logits;
      V = out.vocab;
    }
    holding = false;
    model.dispose?.(state);
    return { sequences: seqs, promptLength: P, modelCalls: calls, ...(logprobs ? { logprobs } : {}) };
  } catch (e) {
    if (holding) disposeAfterFailure(model, state);
    throw e;
  }
}

/** Releases the state a loop held when something thrown ended it; a failure to release does not hide what ended it. */
function disposeAfterFailure<S>(model: StepModel<S>, state: S): void {
  try {
    model.dispose?.(state);
  } catch {
    // (the loop's own error is the one the caller gets)
  }
}

async function beamSearch<S>(model: StepModel<S>, ids: number[][], mask0: number[][], cfg: Resolved, opts: GenerationOptions): Promise<GenerationResult> {
  const B = ids.length;
  const P = ids[0].length;
  const K = cfg.numBeams;
  const mask = ids.flatMap((_, b) => Array.from({ length: K }, () => mask0[b].slice()));

  // The prefill runs once per prompt row (B rows, not B x K as transformers runs it: its K rows of a
  // prompt are identical, and so are their logits); the model then expands its state to the beams
  // (reorder), and the -1e9 initial scores of beams 1..K-1 keep the first step's candidates on beam 0.
  let calls = 1;
  // the state the model holds now, released however the loop ends (as in sampleOrGreedy)
  let state!: S;
  let holding = false;
  let beams: Beams;
  const signal = opts.signal;
  try {
    signal?.throwIfAborted();
    const out = await model.step({ inputIds: mask2d(ids), batch: B, seqLen: P, attentionMask: mask2d(mask0), pastLength: 0, prefill: true }, undefined);
    state = out.state;
    holding = true;
    checkStep(out, B, 'prefill');
    const Vl = out.vocab;
    const V = opts.vocabSize ?? Vl;
    if (V !== Vl) throw new BlipRuntimeError('BLIP5031', `the model returns ${Vl} logits per row but its vocabulary is ${V}`);
    const expandIdx = ids.flatMap((_, b) => Array.from({ length: K }, () => b));
    state = await model.reorder(state, expandIdx);
    let logits: Float32Array = new Float32Array(B * K * V);
    expandIdx.forEach((b, i) => logits.set(out.logits.subarray(b * V, (b + 1) * V), i * V));

    beams = new Beams(ids, cfg, opts, V);
    for (;;) {
      const rows = beams.advance(logits);
      if (!rows) break;
      signal?.throwIfAborted();
      state = await model.reorder(state, rows);
      const inp = new BigInt64Array(B * K);
      for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) inp[b * K + k] = BigInt(beams.running[b][k][beams.cur - 1]);
      for (const m of mask) m.push(1);
      const o = await model.step({ inputIds: inp, batch: B * K, seqLen: 1, attentionMask: mask2d(mask), pastLength: beams.cur - 1, prefill: false }, state);
      calls++;
      const used = state;
      state = o.state;
      model.dispose?.(used);
      checkStep(o, B * K, `step ${beams.cur - P}`);
      logits = o.logits;
    }
    holding = false;
    model.dispose?.(state);
  } catch (e) {
    if (holding) disposeAfterFailure(model, state);
    throw e;
  }
  const { sequences, beamScores, beamIdx } = beams;

  // 5. best beams of each prompt, cropped to the longest generated
  const n = cfg.numReturnSequences;
  const outSeqs: Int32Array[] = [];
  const outScores: number[] = [];
  let maxGen = 0;
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < n; j++) {
      outSeqs.push(sequences[b][j]);
      outScores.push(beamScores[b][j]);
      let g = 0;
      for (const x of beamIdx[b][j]) if (x !== -1) g++;
      maxGen = Math.max(maxGen, g);
    }
  }
  return {
    sequences: outSeqs.map((s) => Array.from(s.subarray(0, P + maxGen))),
    sequenceScores: outScores,
    promptLength: P,
    modelCalls: calls,
  };
}

/** acc[k·V + v] = logp[from + k·V + v] + scores[k] (float32), for the K beams of one prompt. */
function accumulate(acc: Float32Array, logp: Float32Array, from: number, scores: Float32Array, V: number): void {
  for (let k = 0; k < scores.length; k++) {
    const s = scores[k];
    const o = k * V;
    for (let v = 0; v < V; v++) acc[o + v] = logp[from + o + v] + s;
  }
}

/**
 * The beam search's bookkeeping, one step at a time (transformers' _beam_search, steps b-g, per
 * prompt row b). Synchronous and over typed arrays on purpose: as one long async function with
 * arrays whose element kinds changed (small integers, then doubles) V8 re-optimized the loop
 * again and again (100-700 ms TurboFan compiles on a background thread), which took a core from
 * onnxruntime's two-thread steps and made a BLIP-base beam step 2-3x slower than the step alone.
 * Every score is a float32 value (Math.fround), so Float32Array holds them exactly.
 */
class Beams {
  /** Running beams: the sequences (length max_length), their scores and beam indices per step. */
  running: Int32Array[][];
  runningScores: Float32Array[];
  runningBeamIdx: Int32Array[][];
  /** Finished hypotheses. */
  sequences: Int32Array[][];
  beamScores: Float32Array[];
  beamIdx: Int32Array[][];
  isFinished: Uint8Array[];
  private readonly heuristicOpen: Uint8Array;
  cur: number;
  private readonly B: number;
  private readonly K: number;
  private readonly P: number;
  private readonly L: number;
  private readonly keep: number;
  private readonly logp: Float32Array;
  private readonly acc: Float32Array;

  constructor(
    ids: number[][],
    private readonly cfg: Resolved,
    opts: GenerationOptions,
    private readonly V: number,
  ) {
    const B = (this.B = ids.length);
    const P = (this.P = ids[0].length);
    const K = (this.K = cfg.numBeams);
    const L = (this.L = cfg.maxLength);
    const eos = cfg.eos;
    this.keep = Math.max(2, 1 + eos.length) * K;
    // `pad_token_id or eos_token_id[0] if eos_token_id is not None else -1` (a pad id of 0 is falsy)
    const fill = eos.length ? (opts.padTokenId ? opts.padTokenId : eos[0]) : -1;
    const newSeq = (row: number[]): Int32Array => {
      const s = new Int32Array(L).fill(fill);
      s.set(row);
      return s;
    };
    const G = L - P;
    this.running = ids.map((r) => Array.from({ length: K }, () => newSeq(r)));
    this.runningScores = ids.map(() => Float32Array.from({ length: K }, (_, k) => (k === 0 ? 0 : f(NEG))));
    this.runningBeamIdx = ids.map(() => Array.from({ length: K }, () => new Int32Array(G).fill(-1)));
    this.sequences = this.running.map((bs) => bs.map((s) => s.slice()));
    this.beamScores = ids.map(() => new Float32Array(K).fill(f(NEG)));
    this.beamIdx = this.runningBeamIdx.map((bs) => bs.map((s) => s.slice()));
    this.isFinished = ids.map(() => new Uint8Array(K));
    this.heuristicOpen = new Uint8Array(B).fill(1);
    this.cur = P;
    this.logp = new Float32Array(B * K * this.V);
    this.acc = new Float32Array(K * this.V);
  }

  /**
   * One step on the logits of the B x K running rows: returns the rows the cache must be reordered
   * to (row i of the next step continues row rows[i]), or undefined when the search is done.
   */
  advance(logits: Float32Array): number[] | undefined {
    const { B, K, P, L, V, cfg, logp, acc } = this;
    const eos = cfg.eos;
    const lp = cfg.lengthPenalty;
    const es = cfg.earlyStopping;
    const cur = this.cur;
    // b. log-probabilities, processed, accumulated
    const flat: number[][] = [];
    for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) flat.push(Array.from(this.running[b][k].subarray(0, cur)));
    for (let r = 0; r < B * K; r++) logSoftmaxRow(logits.subarray(r * V, (r + 1) * V), logp, r * V);
    for (const p of cfg.processors) p(flat, logp, V);

    let anyContinues = false;
    const nextRunning: Int32Array[][] = [];
    const nextScores: Float32Array[] = [];
    const nextRbi: Int32Array[][] = [];
    for (let b = 0; b < B; b++) {
      const scores = this.runningScores[b];
      accumulate(acc, logp, b * K * V, scores, V);
      // c. top-K continuations (or K samples without replacement)
      let chosen: number[];
      if (cfg.doSample) {
        const probs = softmaxRow(acc);
        const taken = new Set<number>();
        chosen = [];
        for (let j = 0; j < this.keep; j++) {
          if (j > 0 && !hasMass(probs, taken)) {
            // fewer live candidates than draws (top-k 5 over 3 beams on the first step, where only
            // beam 0 is live): torch.multinomial without replacement goes on with zero-probability
            // ones, here the best-scored of the rest. With probability 0 beside the live ones, their
            // scores (-inf or far below) never win a hypothesis over a live one.
            const rest = Float32Array.from(acc);
            for (const t of taken) rest[t] = -Infinity;
            chosen.push(...topk(rest, this.keep - j));
            break;
          }
          const i = draw(probs, cfg.random, taken);
          taken.add(i);
          chosen.push(i);
        }
      } else chosen = topk(acc, this.keep);
      const n = chosen.length;
      const topVals = new Float32Array(n);
      const topSeq: Int32Array[] = [];
      const topRbi: Int32Array[] = [];
      const hits = new Uint8Array(n);
      for (let j = 0; j < n; j++) {
        const i = chosen[j];
        topVals[j] = acc[i];
        const beam = Math.floor(i / V);
        const tok = i % V;
        const s = this.running[b][beam].slice();
        s[cur] = tok;
        const bi = this.runningBeamIdx[b][beam].slice();
        bi[cur - P] = beam + b * K;
        topSeq.push(s);
        topRbi.push(bi);
        // d. stopping criteria on the K candidates: max length, EOS
        hits[j] = cur + 1 >= L || eos.includes(tok) ? 1 : 0;
        if (!hits[j]) anyContinues = true;
      }
      // e. running beams for the next step: best K candidates that did not stop
      const trl = new Float32Array(n);
      for (let j = 0; j < n; j++) trl[j] = f(topVals[j] + (hits[j] ? NEG : 0));
      const nx = topk(trl, K);
      nextRunning.push(nx.map((j) => topSeq[j]));
      nextScores.push(Float32Array.from(nx, (j) => trl[j]));
      nextRbi.push(nx.map((j) => topRbi[j]));
      // f. finished hypotheses: merge the new ones (top K candidates that stopped) with the kept ones
      const denom = f((cur + 1 - P) ** lp);
      const full = this.isFinished[b].every((x) => x === 1) && es === true;
      const m = K + n;
      const mScores = new Float32Array(m);
      mScores.set(this.beamScores[b]);
      for (let j = 0; j < n; j++) {
        let s = f(topVals[j] / denom);
        if (full) s = f(s + NEG);
        if (!this.heuristicOpen[b]) s = f(s + NEG);
        const did = hits[j] && j < K;
        if (!did) s = f(s + NEG);
        mScores[K + j] = s;
      }
      const mSeq = [...this.sequences[b], ...topSeq];
      const mIdx = [...this.beamIdx[b], ...topRbi];
      const mFin = new Uint8Array(m);
      mFin.set(this.isFinished[b]);
      for (let j = 0; j < n; j++) mFin[K + j] = hits[j] && j < K ? 1 : 0;
      const sel = topk(mScores, K);
      this.sequences[b] = sel.map((j) => mSeq[j]);
      this.beamScores[b] = Float32Array.from(sel, (j) => mScores[j]);
      this.beamIdx[b] = sel.map((j) => mIdx[j]);
      this.isFinished[b] = Uint8Array.from(sel, (j) => mFin[j]);
    }
    this.running = nextRunning;
    this.runningScores = nextScores;
    this.runningBeamIdx = nextRbi;

    // g. reorder the cache to the surviving beams, advance
    const rows: number[] = [];
    for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) rows.push(this.runningBeamIdx[b][k][cur - P]);
    this.cur = cur + 1;
    for (let b = 0; b < B; b++) {
      const hyp = es === 'never' && lp > 0.0 ? L - P : this.cur - P;
      const best = f(this.runningScores[b][0] / f(hyp ** lp));
      let minFinished = Infinity;
      for (const x of this.beamScores[b]) minFinished = Math.min(minFinished, x);
      let any = false;
      for (let k = 0; k < K; k++) if (best > (this.isFinished[b][k] ? minFinished : f(NEG))) any = true;
      if (!any) this.heuristicOpen[b] = 0;
    }
    const improvementPossible = this.heuristicOpen.some((x) => x === 1);
    const existsOpenBeam = !(this.isFinished.every((r) => r.every((x) => x === 1)) && es === true);
    if (!(improvementPossible && existsOpenBeam && anyContinues)) return undefined;
    return rows;
  }
}
