// transformers' logits processors and warpers, in float32 as torch computes them, applied in place
// to a (rows, vocab) Float32Array. Order (GenerationMixin._get_logits_processor): repetition
// penalty, no-repeat n-gram, min length, min new tokens; when sampling, then temperature, top-k,
// top-p, min-p, typical-p.
import { topk } from './topk.js';

const f = Math.fround;
const NEG_INF = -Infinity;

/** Modifies `scores` (rows x vocab) in place; `ids` are the rows' full token sequences. */
export type LogitsProcessor = ((ids: number[][], scores: Float32Array, vocab: number) => void) & {
  /**
   * Set on the processors that only ban the EOS ids while a row is shorter than this many ids
   * (min_length, min_new_tokens): greedy decoding in the graph applies them itself (greedyLoop.ts).
   */
  eosBannedBelow?: number;
};

export function repetitionPenalty(penalty: number): LogitsProcessor {
  const p = f(penalty);
  return (ids, scores, V) => {
    ids.forEach((row, r) => {
      const base = r * V;
      const seen = new Set(row);
      // gather, then scatter: every occurrence of a token gets the same new value
      const upd = new Map<number, number>();
      for (const t of seen) {
        const s = scores[base + t];
        upd.set(t, s < 0 ? f(s * p) : f(s / p));
      }
      for (const [t, v] of upd) scores[base + t] = v;
    });
  };
}

/** Tokens that would repeat an n-gram of `row` (fairseq / transformers _calc_banned_ngram_tokens). */
export function bannedNgramTokens(row: number[], n: number): number[] {
  const len = row.length;
  if (len + 1 < n) return [];
  const key = (a: number[]): string => a.join(',');
  const ngrams = new Map<string, number[]>();
  for (let i = 0; i + n <= len; i++) {
    const k = key(row.slice(i, i + n - 1));
    const list = ngrams.get(k);
    if (list) list.push(row[i + n - 1]);
    else ngrams.set(k, [row[i + n - 1]]);
  }
  return ngrams.get(key(row.slice(len + 1 - n, len))) ?? [];
}

export function noRepeatNgram(n: number): LogitsProcessor {
  return (ids, scores, V) => {
    ids.forEach((row, r) => {
      for (const t of bannedNgramTokens(row, n)) scores[r * V + t] = NEG_INF;
    });
  };
}

export function minLength(min: number, eos: number[]): LogitsProcessor {
  const p: LogitsProcessor = (ids, scores, V) => {
    if (ids.length === 0 || ids[0].length >= min) return;
    for (let r = 0; r < ids.length; r++) for (const e of eos) if (e >= 0 && e < V) scores[r * V + e] = NEG_INF;
  };
  p.eosBannedBelow = min;
  return p;
}

export function minNewTokens(promptLength: number, min: number, eos: number[]): LogitsProcessor {
  const p: LogitsProcessor = (ids, scores, V) => {
    if (ids.length === 0 || ids[0].length - promptLength >= min) return;
    for (let r = 0; r < ids.length; r++) for (const e of eos) if (e >= 0 && e < V) scores[r * V + e] = NEG_INF;
  };
  p.eosBannedBelow = promptLength + min;
  return p;
}

export function temperature(t: number): LogitsProcessor {
  const tf = f(t);
  return (_ids, scores) => {
    for (let i = 0; i < scores.length; i++) scores[i] = f(scores[i] / tf);
  };
}

/** Indices of a row sorted by value (descending or ascending), ties by index. */
function order(row: Float32Array, descending: boolean): number[] {
  const idx = Array.from({ length: row.length }, (_, i) => i);
  idx.sort((a, b) => {
    const d = descending ? row[b] - row[a] : row[a] - row[b];
    if (d !== 0 && !Number.isNaN(d)) return d;
    if (row[a] === row[b]) return a - b;
    // infinities of the same sign give NaN differences above
    return descending ? (row[a] > row[b] ? -1 : 1) : row[a] < row[b] ? -1 : 1;
  });
  return idx;
}

/** float32 softmax of a row (max-subtracted, float64 accumulation, float32 results). */
export function softmaxRow(row: ArrayLike<number>): Float32Array {
  let max = NEG_INF;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  const out = new Float32Array(row.length);
  if (max === NEG_INF) return out.fill(NaN);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  for (let i = 0; i < row.length; i++) out[i] = Math.exp(row[i] - max) / sum;
  return out;
}

/** float32 log-softmax of a row. */
export function logSoftmaxRow(row: ArrayLike<number>, out: Float32Array, offset = 0): void {
  let max = NEG_INF;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = Math.log(sum);
  for (let i = 0; i < row.length; i++) out[offset + i] = f(row[i] - max) - lse;
}

export function topK(k: number, minTokensToKeep = 1): LogitsProcessor {
  const kk = Math.max(k, minTokensToKeep);
  return (_ids, scores, V) => {
    const K = Math.min(kk, V);
    for (let r = 0; r * V < scores.length; r++) {
      const row = scores.subarray(r * V, (r + 1) * V);
      const thr = row[topk(row, K)[K - 1]]; // the K-th largest value
      for (let i = 0; i < V; i++) if (row[i] < thr) row[i] = NEG_INF;
    }
  };
}

export function topP(p: number, minTokensToKeep = 1): LogitsProcessor {
  const limit = f(1 - p);
  return (_ids, scores, V) => {
    for (let r = 0; r * V < scores.length; r++) {
      const row = scores.subarray(r * V, (r + 1) * V);
      const idx = order(row, false);
      const probs = softmaxRow(idx.map((i) => row[i]));
      let cum = 0;
      const remove: number[] = [];
      for (let j = 0; j < V; j++) {
        cum += probs[j];
        if (f(cum) <= limit && j < V - minTokensToKeep) remove.push(idx[j]);
      }
      for (const i of remove) row[i] = NEG_INF;
    }
  };
}

export function minP(p: number, minTokensToKeep = 1): LogitsProcessor {
  return (_ids, scores, V) => {
    for (let r = 0; r * V < scores.length; r++) {
      const row = scores.subarray(r * V, (r + 1) * V);
      const probs = softmaxRow(row);
      let top = 0;
      for (const x of probs) if (x > top) top = x;
      const scaled = f(f(p) * top);
      const keep = new Set(order(probs, true).slice(0, Math.min(minTokensToKeep, V)));
      for (let i = 0; i < V; i++) if (probs[i] < scaled && !keep.has(i)) row[i] = NEG_INF;
    }
  };
}

export function typicalP(mass: number, minTokensToKeep = 1): LogitsProcessor {
  return (_ids, scores, V) => {
    for (let r = 0; r * V < scores.length; r++) {
      const row = scores.subarray(r * V, (r + 1) * V);
      const logp = new Float32Array(V);
      logSoftmaxRow(row, logp);
      let ent = 0;
      for (let i = 0; i < V; i++) {
        const term = logp[i] * Math.exp(logp[i]);
        if (!Number.isNaN(term)) ent += term;
      }
      ent = f(-ent);
      const shifted = new Float32Array(V);
      for (let i = 0; i < V; i++) shifted[i] = Math.abs(-logp[i] - ent);
      const idx = order(shifted, false);
      const probs = softmaxRow(idx.map((i) => row[i]));
      let cum = 0;
      let lastInd = 0;
      for (let j = 0; j < V; j++) {
        cum += probs[j];
        if (f(cum) < mass) lastInd++;
      }
      lastInd = Math.min(lastInd, V - 1);
      const thr = shifted[idx[lastInd]];
      for (let j = minTokensToKeep; j < V; j++) if (shifted[idx[j]] > thr) row[idx[j]] = NEG_INF;
    }
  };
}

export interface ProcessorSettings {
  promptLength: number;
  eos: number[];
  repetitionPenalty?: number;
  noRepeatNgramSize?: number;
  minLength?: number;
  minNewTokens?: number;
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  typicalP?: number;
  /** Sampling with beams keeps at least (#eos + 1) tokens (transformers). */
  minTokensToKeep?: number;
}

/** The processor list transformers builds for these settings, in its order. */
export function buildProcessors(s: ProcessorSettings): LogitsProcessor[] {
  const list: LogitsProcessor[] = [];
  if (s.repetitionPenalty !== undefined && s.repetitionPenalty !== 1.0) list.push(repetitionPenalty(s.repetitionPenalty));
  if (s.noRepeatNgramSize && s.noRepeatNgramSize > 0) list.push(noRepeatNgram(s.noRepeatNgramSize));
  // a min_length the prompt already reaches never acts (transformers compares the whole length)
  if (s.eos.length && s.minLength && s.minLength > s.promptLength) list.push(minLength(s.minLength, s.eos));
  if (s.eos.length && s.minNewTokens && s.minNewTokens > 0) list.push(minNewTokens(s.promptLength, s.minNewTokens, s.eos));
  if (s.doSample) {
    const keep = s.minTokensToKeep ?? 1;
    if (s.temperature !== undefined && s.temperature !== 1.0) list.push(temperature(s.temperature));
    if (s.topK !== undefined && s.topK !== 0) list.push(topK(s.topK, keep));
    if (s.topP !== undefined && s.topP < 1.0) list.push(topP(s.topP, keep));
    if (s.minP !== undefined) list.push(minP(s.minP, keep));
    if (s.typicalP !== undefined && s.typicalP < 1.0) list.push(typicalP(s.typicalP, keep));
  }
  return list;
}
