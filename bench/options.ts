// The command line of `npm run bench` (bench/run.ts), and how many timed calls each side makes.
import { TARGETS, type Target } from '../src/rewrite/index.js';

/** A mistake on the bench's command line: bench/run.ts prints its message as one line and exits 2. */
export class BenchUsageError extends Error {}

export interface BenchOptions {
  cases: string[];
  threads: number;
  tokens: number;
  repetitionPenalty: number;
  /** Timed calls on both sides; absent: each case's own counts (repeatsOf). */
  repeat?: number;
  target: Target;
  recompile: boolean;
  torch: boolean;
  hugePages: string;
  paired: number;
}

const positiveInteger = (flag: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new BenchUsageError(`${flag} must be a positive integer, got ${v ?? 'nothing'}`);
  return n;
};

/** --paired: 0 runs no paired rounds. */
const roundCount = (v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new BenchUsageError(`--paired must be an integer of at least 0 (0: no paired rounds), got ${v ?? 'nothing'}`);
  return n;
};

/** --repetition-penalty: transformers' repetition_penalty, a positive number. */
const penalty = (v: string | undefined): number => {
  const n = Number(v);
  if (v === undefined || v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new BenchUsageError(`--repetition-penalty must be a positive number, got ${v ?? 'nothing'}`);
  return n;
};

/** --tokens: decode tokens/s is over the tokens after the first, so at least 2. */
const tokenCount = (v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 2) throw new BenchUsageError(`--tokens must be an integer of at least 2 (the decode is the tokens after the first), got ${v ?? 'nothing'}`);
  return n;
};

/** `caseNames`: every case the bench knows, in order (`--cases all`). */
export function parseBenchArgs(argv: string[], caseNames: string[]): BenchOptions {
  const o: BenchOptions = { cases: ['blip-base-b1', 'blip-base-b8', 'blip2-opt-350m-b1'], threads: 2, tokens: 20, repetitionPenalty: 1, target: 'cpu', recompile: false, torch: true, hugePages: 'on', paired: 5 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--cases') o.cases = argv[++i] === 'all' ? [...caseNames] : (argv[i] ?? '').split(',');
    else if (a === '--threads') o.threads = positiveInteger('--threads', argv[++i]);
    else if (a === '--tokens') o.tokens = tokenCount(argv[++i]);
    else if (a === '--repetition-penalty') o.repetitionPenalty = penalty(argv[++i]);
    else if (a === '--repeat') o.repeat = positiveInteger('--repeat', argv[++i]);
    else if (a === '--target') {
      const t = argv[++i];
      if (!(TARGETS as readonly string[]).includes(t ?? '')) throw new BenchUsageError(`--target must be one of ${TARGETS.join(', ')}, got ${t ?? 'nothing'}`);
      o.target = t as Target;
    }
    else if (a === '--recompile') o.recompile = true;
    else if (a === '--no-torch') o.torch = false;
    else if (a === '--huge-pages') o.hugePages = argv[++i];
    else if (a === '--paired') o.paired = roundCount(argv[++i]);
    else throw new BenchUsageError(`unknown option ${a}`);
  }
  const unknown = o.cases.find((n) => !caseNames.includes(n));
  if (unknown !== undefined) throw new BenchUsageError(`unknown case ${unknown} (${caseNames.join(', ')}, or all)`);
  return o;
}

/** Per-case default counts of timed calls (the slow layouts make fewer). */
export interface CaseRepeats {
  oursRepeat?: number;
  torchRepeat: number;
}

/** Timed calls per side: --repeat where given, for both sides alike; otherwise the case's own (blip-graph: 3 unless the case says). */
export function repeatsOf(c: CaseRepeats, repeat: number | undefined): { ours: number; torch: number } {
  return repeat === undefined ? { ours: c.oursRepeat ?? 3, torch: c.torchRepeat } : { ours: repeat, torch: repeat };
}
