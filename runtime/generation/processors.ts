// transformers' logits processors and warpers, in float32 as torch computes them, applied in place
// to a (rows, vocab) Float32Array. Order (GenerationMixin._get_logits_processor): repetition
// penalty, no-repeat n-gram, min length, min new tokens; when sampling, then temperature, top-k,
// top-p, min-p, typical-p.
import { topk } from './topk.js';
import { GenerationConfigError } from '../errors.js';

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
    for (let i = 0; i < scores.length; i++) {
      const x = scores[i]!;
      scores[i] = f(x / tf);
      // a finite score the division overflows upwards: the softmax would be NaN (torch's
      // multinomial refuses the same); the settings' fault, said as such (-inf is a 0 probability)
      if (Number.isFinite(x) && !(scores[i]! < Infinity)) {
        throw new GenerationConfigError(`temperature ${t} is too small: the scores divided by it overflow float32 (for the most likely tokens use greedy decoding, without sampling)`);
      }
    }
  };
}

/**
 * Indices of a row sorted by value (descending or ascending), ties by lower index; NaN sorts above
 * +Infinity, -0 as +0. A stable LSD radix sort of the float32 values' order-preserving bits (four
 * byte passes), not a comparator sort: top-p sorts the whole vocabulary every sampled token, which
 * took ~10 ms a token for BLIP's 30524 with a comparator (0.5 ms so).
 */
export function order(row: Float32Array, descending: boolean): Int32Array {
  const n = row.length;
  const bits = new Uint32Array(row.buffer, row.byteOffset, n); // the same floats, read as bits
  let keys = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const x = row[i];
    let u: number;
    if (x !== x) u = 0xffffffff; // NaN: above +Infinity (0xff800000)
    else if (x === 0) u = 0x80000000; // -0 and +0 alike
    else u = bits[i] & 0x80000000 ? ~bits[i] >>> 0 : (bits[i] | 0x80000000) >>> 0;
    keys[i] = descending ? 0xffffffff - u : u;
  }
  let idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  let keys2 = new Uint32Array(n);
  let idx2 = new Int32Array(n);
  const count = new Int32Array(256);
  for (let shift = 0; shift < 32; shift += 8) {
    count.fill(0);
    for (let i = 0; i < n; i++) count[(keys[i] >>> shift) & 255]++;
    if (count.some((c) => c === n)) continue; // one bucket: this byte changes no order
    let sum = 0;
    for (let b = 0; b < 256; b++) {
      const c = count[b];
      count[b] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const pos = count[(keys[i] >>> shift) & 255]++;
      keys2[pos] = keys[i];
      idx2[pos] = idx[i];
    }
    [keys, keys2] = [keys2, keys];
    [idx, idx2] = [idx2, idx];
  }
  return idx;
}

/** row[idx[0]], row[idx[1]], ... */
function gathered(row: Float32Array, idx: Int32Array): Float32Array {
  const out = new Float32Array(idx.length);
  for (let j = 0; j < idx.length; j++) out[j] = row[idx[j]];
  return out;
}

/** float32 softmax of a row (max-subtracted, float64 accumulation, float32 results). */
export function softmaxRow(row: ArrayLike<number>): Float32Array {
  let max = NEG_INF;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  const out = new Float32Array(row.length);
  if (max === NEG_INF) return out.fill(NaN);
  // each exp once, kept in float64 until divided (the same values as computing it twice); a
  // filtered token's is 0 without the call
  const e = new Float64Array(row.length);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += e[i] = row[i] === NEG_INF ? 0 : Math.exp(row[i] - max);
  for (let i = 0; i < row.length; i++) out[i] = e[i] / sum;
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
      // Only the tokens still in play are sorted and weighed: those an earlier filter (top-k) set
      // to -inf lead the ascending order with probability exactly 0, so they fall in the cut
      // whatever p is, and leave the others' order (the sort is stable), softmax and running sum
      // as they were — the same tokens are removed as with the whole row, at a fraction of the
      // cost (top-k 50 then top-p over 30524 tokens: 1.7 ms a row sorting everything).
      let live = 0;
      for (let i = 0; i < V; i++) if (row[i] !== NEG_INF) live++;
      if (live === 0) continue; // every probability NaN: nothing is removed
      let at: Int32Array | undefined;
      if (live < V) {
        at = new Int32Array(live);
        for (let i = 0, k = 0; i < V; i++) if (row[i] !== NEG_INF) at[k++] = i;
      }
      const vals = at ? gathered(row, at) : row;
      const idx = order(vals, false);
      const probs = softmaxRow(gathered(vals, idx));
      // the cumulative mass only grows, so the tokens removed are a prefix of the ascending order
      let cum = 0;
      let cut = 0;
      for (let j = 0; j < live - minTokensToKeep; j++) {
        cum += probs[j];
        if (!(f(cum) <= limit)) break;
        cut = j + 1;
      }
      for (let j = 0; j < cut; j++) row[at ? at[idx[j]] : idx[j]] = NEG_INF;
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
      const probs = softmaxRow(gathered(row, idx));
      let cum = 0;
      let lastInd = 0;
      for (let j = 0; j < V; j++) {
        cum += probs[j];
        if (f(cum) < f(mass)) lastInd++; // torch compares in float32: f(0.9) < 0.9 is false there
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
