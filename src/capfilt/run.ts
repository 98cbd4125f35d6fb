// A CapFilt run in one process: plan the shards, record (or check) the run's settings in
// DEST/_capfilt/run.json, process this process's share of the shards that are not complete yet,
// and write stats.json and errors.jsonl once every planned shard is complete (whichever process
// completes the last one writes them; their content depends only on the shards).
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BlipError, UsageError } from '../cli/Command.js';
import { planShards, selectShards, taskWeight, type ShardSpec, type ShardTask } from './inputs.js';
import type { ModelLoader } from './model.js';
import { META_DIR, OutputDir } from './output.js';
import { isSystemError, systemErrorMeaning } from '../filesystem.js';
import { Progress } from './progress.js';
import { addStats, emptyStats, processShard, type CapfiltSettings, type CapfiltStats, type ErrorRecord, type ShardSidecar } from './shard.js';
import type { ImageBackend } from '../../runtime/preprocess/config.js';

export const DEFAULTS = {
  captionsPerImage: 1,
  topP: 0.9,
  minItm: 0.5,
  seed: 0,
  batchSize: 16,
  maxLength: 30,
  minLength: 5,
  samplesPerShard: 1000,
  device: 'cpu',
} as const;

export interface RunOptions {
  captioner: string;
  filter: string;
  inputs: string[];
  output: string;
  captionsPerImage?: number;
  topP?: number;
  minItm?: number;
  seed?: number;
  batchSize?: number;
  maxLength?: number;
  minLength?: number;
  samplesPerShard?: number;
  device?: string;
  /** onnxruntime intra-op threads per session (not part of the run's settings). */
  threads?: number;
  /** load()'s imageBackend (default 'pil'); recorded in run.json as image_backend. */
  imageBackend?: ImageBackend;
  shard?: ShardSpec;
  /** Where messages and progress go (stderr in the CLI); nothing is printed when undefined. */
  log?: NodeJS.WritableStream;
  /**
   * Where notes the user must see go, --quiet or not (an input skipped: a pipe named *.tar); stderr
   * in the CLI, `log` when undefined.
   */
  warn?: NodeJS.WritableStream;
  /**
   * Refuses a captioner or filter folder that is not such a model (the CLI's: manifest checks),
   * before anything is written: a run.json naming a wrong folder would bar the corrected rerun.
   */
  checkModels?: (captioner: string, filter: string) => void | Promise<void>;
}

/** DEST/_capfilt/run.json */
export interface RunFile {
  format: 'blip-capfilt-run';
  /**
   * 2 since CapFilt took BLIP's caption settings (repetition penalty 1.1, its cut of the prompt)
   * and cut texts for the filter by token: a folder written by version 1 holds other captions and
   * scores, so it is not resumed.
   */
  version: typeof RUN_VERSION;
  settings: Record<string, string | number>;
  shards: string[];
}

/**
 * The settings as run.json records them (model identities, not paths). `samples_per_shard` only
 * where the plan has JSONL shards (`jsonl`): a tar's shard is the tar whatever it says.
 */
export function recordedSettings(s: CapfiltSettings, jsonl: boolean): Record<string, string | number> {
  const recorded: Record<string, string | number> = {
    captioner: s.captionerId,
    filter: s.filterId,
    captions_per_image: s.captionsPerImage,
    top_p: s.topP,
    min_itm: s.minItm,
    seed: s.seed,
    batch_size: s.batchSize,
    max_length: s.maxLength,
    min_length: s.minLength,
    image_backend: s.imageBackend ?? 'pil',
  };
  if (jsonl) recorded.samples_per_shard = s.samplesPerShard;
  return recorded;
}

/** Whether run.json records samples_per_shard for this plan: only a JSONL shard depends on it. */
export function planHasJsonl(plan: ShardTask[]): boolean {
  return plan.some((t) => t.source.kind === 'jsonl');
}

/**
 * The first setting a run must share with run.json and does not: `now` is the run's
 * recordedSettings, and only its keys are compared, so the samples_per_shard an earlier version
 * recorded for a plan without JSONL shards does not bar a resume (recordRun and the queue's
 * workers both check with this).
 */
export function settingMismatch(recorded: Record<string, string | number>, now: Record<string, string | number>): string | undefined {
  return Object.keys(now).find((k) => (recorded[k] ?? RECORDED_BEFORE[k]) !== now[k]);
}

/** Settings a run.json written before they were recorded ran with. */
const RECORDED_BEFORE: Record<string, string | number> = { image_backend: 'pil' };

/**
 * A compiled model's identity: its checkpoint fingerprint and graph hash from manifest.json, so
 * the same model mounted at another path on another machine is the same model; the resolved
 * path when there is no readable manifest.
 */
export async function modelIdentity(dir: string): Promise<string> {
  try {
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as {
      model?: string;
      compiler?: { version?: string };
      dtype?: string;
      target?: string;
      quantize?: string;
      source?: { checkpoint?: { fingerprint?: string }; graph?: { sha256?: string } };
    };
    const fp = m.source?.checkpoint?.fingerprint;
    // what the outputs depend on: the weights, the graph, the compiler, and how it was compiled
    const build = [m.dtype ?? 'float32', m.target ?? 'plain', m.quantize ?? 'none'].join(',');
    if (typeof fp === 'string') return `${m.model ?? 'model'}@${fp}/${m.source?.graph?.sha256 ?? ''}/${m.compiler?.version ?? ''}/${build}`;
  } catch {
    // no manifest: fall back to the path
  }
  return resolve(dir);
}

function checkRange(name: string, v: number, ok: boolean, want: string): void {
  if (!Number.isFinite(v) || !ok) throw new UsageError(`${name} must be ${want}, got ${v}`);
}

export async function resolveSettings(o: RunOptions): Promise<CapfiltSettings> {
  const s: CapfiltSettings = {
    captioner: resolve(o.captioner),
    filter: resolve(o.filter),
    captionerId: await modelIdentity(o.captioner),
    filterId: await modelIdentity(o.filter),
    captionsPerImage: o.captionsPerImage ?? DEFAULTS.captionsPerImage,
    topP: o.topP ?? DEFAULTS.topP,
    minItm: o.minItm ?? DEFAULTS.minItm,
    seed: o.seed ?? DEFAULTS.seed,
    batchSize: o.batchSize ?? DEFAULTS.batchSize,
    maxLength: o.maxLength ?? DEFAULTS.maxLength,
    minLength: o.minLength ?? DEFAULTS.minLength,
    samplesPerShard: o.samplesPerShard ?? DEFAULTS.samplesPerShard,
    imageBackend: o.imageBackend ?? 'pil',
  };
  checkRange('--captions-per-image', s.captionsPerImage, Number.isInteger(s.captionsPerImage) && s.captionsPerImage >= 0 && s.captionsPerImage <= 100, 'an integer from 0 to 100');
  checkRange('--top-p', s.topP, s.topP > 0 && s.topP <= 1, 'in (0, 1]');
  checkRange('--min-itm', s.minItm, s.minItm >= 0 && s.minItm <= 1, 'in [0, 1]');
  // any integer, as blip run, blip serve and generate() take: the seed is hashed as its decimal text
  checkRange('--seed', s.seed, Number.isSafeInteger(s.seed), 'an integer below 2^53 in size');
  checkRange('--batch-size', s.batchSize, Number.isInteger(s.batchSize) && s.batchSize >= 1 && s.batchSize <= 4096, 'an integer from 1 to 4096');
  checkRange('--samples-per-shard', s.samplesPerShard, Number.isInteger(s.samplesPerShard) && s.samplesPerShard >= 1, 'a positive integer');
  checkRange('max length', s.maxLength, Number.isInteger(s.maxLength) && s.maxLength >= 1, 'a positive integer');
  checkRange('min length', s.minLength, Number.isInteger(s.minLength) && s.minLength >= 0 && s.minLength <= s.maxLength, 'an integer from 0 to the max length');
  return s;
}

const RUN_FILE = 'run.json';
const RUN_VERSION = 2;

/** Write run.json, or check that the one there was written with the same settings and plan (BLIP5803). */
export async function recordRun(out: OutputDir, s: CapfiltSettings, plan: ShardTask[]): Promise<void> {
  const run: RunFile = { format: 'blip-capfilt-run', version: RUN_VERSION, settings: recordedSettings(s, planHasJsonl(plan)), shards: plan.map((t) => t.id) };
  const path = join(out.metaDir, RUN_FILE);
  let prev: RunFile | undefined;
  try {
    prev = await out.readJson<RunFile>(path);
  } catch (e) {
    // never overwritten: the shards there were written with the settings it held
    throw new BlipError('BLIP5803', `cannot read ${path} (${isSystemError(e) ? systemErrorMeaning(e) : (e as Error).message.split('\n')[0]}): it records the settings of the shards in ${out.root}; restore it, or write to a new --output`);
  }
  if (prev !== undefined && (prev === null || typeof prev !== 'object' || prev.format !== 'blip-capfilt-run' || typeof prev.settings !== 'object' || prev.settings === null || !Array.isArray(prev.shards))) {
    throw new BlipError('BLIP5803', `${path} is not a CapFilt run file: it records the settings of the shards in ${out.root}; restore it, or write to a new --output`);
  }
  if (prev && prev.version !== RUN_VERSION) {
    throw new BlipError('BLIP5803', `${out.root} was written by an earlier blip capfilt (run.json version ${JSON.stringify(prev.version)}, this one writes ${RUN_VERSION}), whose captions and ITM scores differ from this one's: write to a new --output`);
  }
  if (!prev && (await readdir(join(out.metaDir, 'shards')).catch(() => [])).length > 0) {
    throw new BlipError('BLIP5803', `${out.root} holds shards of a run but no ${join(META_DIR, RUN_FILE)} saying with which settings; write to a new --output`);
  }
  if (prev) {
    const k = settingMismatch(prev.settings, run.settings);
    if (k !== undefined) {
      throw new BlipError('BLIP5803', `${out.root} was written by a run with ${k} = ${JSON.stringify(prev.settings?.[k] ?? RECORDED_BEFORE[k])}, this run has ${JSON.stringify(run.settings[k])}: resume with the same settings, or write to a new --output`);
    }
    if (JSON.stringify(prev.shards) !== JSON.stringify(run.shards)) {
      const missing = run.shards.find((id) => !prev.shards?.includes(id)) ?? prev.shards?.find((id) => !run.shards.includes(id));
      throw new BlipError('BLIP5803', `${out.root} was written by a run over other inputs (${prev.shards?.length ?? 0} shards, this run has ${run.shards.length}; ${missing ?? 'order'} differs): resume with the same --input, or write to a new --output`);
    }
    return;
  }
  await out.writeAtomic(path, JSON.stringify(run, null, 2) + '\n');
}

export async function readRunFile(out: OutputDir): Promise<RunFile | undefined> {
  return out.readJson<RunFile>(join(out.metaDir, RUN_FILE));
}

export interface FinalStats extends CapfiltStats {
  format: 'blip-capfilt-stats';
  version: 1;
  shards: number;
  settings: Record<string, string | number>;
}

/**
 * When every shard run.json plans is complete, write DEST/stats.json and DEST/errors.jsonl (merged
 * from the per-shard sidecars in plan order) and clear dead temp files. Returns whether it did.
 */
export async function finalize(out: OutputDir): Promise<FinalStats | undefined> {
  const run = await readRunFile(out);
  if (!run) return undefined;
  for (const id of run.shards) if (!(await out.isComplete(id))) return undefined;
  let stats = emptyStats();
  const errors: ErrorRecord[] = [];
  for (const id of run.shards) {
    const sc = await out.readJson<ShardSidecar>(out.sidecarPath(id));
    if (!sc) return undefined;
    stats = addStats(stats, sc.stats);
    errors.push(...sc.errors);
  }
  const final: FinalStats = { format: 'blip-capfilt-stats', version: 1, shards: run.shards.length, ...stats, settings: run.settings };
  await out.writeAtomic(join(out.root, 'errors.jsonl'), errors.map((e) => JSON.stringify(e) + '\n').join(''));
  await out.writeAtomic(join(out.root, 'stats.json'), JSON.stringify(final, null, 2) + '\n');
  await out.removeDeadTemps();
  return final;
}

export interface Prepared {
  out: OutputDir;
  settings: CapfiltSettings;
  plan: ShardTask[];
}

/** Validate options, create the output folder, plan the shards and record the run. */
export async function prepareRun(o: RunOptions): Promise<Prepared> {
  const settings = await resolveSettings(o);
  if (o.inputs.length === 0) throw new UsageError('--input is required');
  const out = new OutputDir(o.output);
  await out.checkNotFile();
  const plan = await planShards(o.inputs, { output: out.root, samplesPerShard: settings.samplesPerShard, note: (line) => (o.warn ?? o.log)?.write(`capfilt: ${line}\n`) });
  await o.checkModels?.(o.captioner, o.filter);
  await out.prepare();
  await recordRun(out, settings, plan);
  return { out, settings, plan };
}

export interface RunSummary {
  planned: number;
  selected: number;
  skipped: number;
  processed: number;
  /** stats.json, when every planned shard is complete after this process's share. */
  final?: FinalStats;
}

/** `blip capfilt`: process this process's share (all, or `--shard I/N`) of the shards not yet complete. */
export async function runCapfilt(o: RunOptions, load: ModelLoader): Promise<RunSummary> {
  const { out, settings, plan } = await prepareRun(o);
  const log = o.log;
  const mine = selectShards(plan, o.shard);
  await out.removeDeadTemps();
  const pending: ShardTask[] = [];
  for (const t of mine) if (!(await out.isComplete(t.id))) pending.push(t);
  log?.write(
    `capfilt: ${plan.length} shard${plan.length === 1 ? '' : 's'} planned${o.shard ? `, ${mine.length} for --shard ${o.shard.index}/${o.shard.count}` : ''}, ${mine.length - pending.length} already complete, ${pending.length} to process\n`,
  );
  if (pending.length) {
    const models = await load({ captioner: settings.captioner, filter: settings.filter, device: o.device ?? DEFAULTS.device, threads: o.threads, imageBackend: settings.imageBackend });
    const progress = new Progress(log, pending.reduce((a, t) => a + taskWeight(t), 0), pending.length);
    try {
      for (const t of pending) {
        await processShard(out, t, settings, models, progress);
        progress.shardDone();
      }
    } finally {
      progress.finish();
      await models.close?.();
    }
  }
  const final = await finalize(out);
  if (final) log?.write(`capfilt: all ${plan.length} shards complete: ${final.images_ok} of ${final.images_seen} samples written, ${final.errors} errors; ${join(out.root, 'stats.json')}\n`);
  else log?.write(`capfilt: this process's shards are complete; stats.json is written when all ${plan.length} are\n`);
  return { planned: plan.length, selected: mine.length, skipped: mine.length - pending.length, processed: pending.length, final };
}
