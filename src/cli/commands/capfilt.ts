import type { ParseArgsConfig } from 'node:util';
import { parseOptions } from '../parseOptions.js';
import { nearest } from '../main.js';
import { UsageError, type Command } from '../Command.js';
import { checkDeviceOption, checkThreadsOption } from '../deviceOption.js';
import { checkImageBackendOption } from '../imageBackendOption.js';
import { parseShardSpec } from '../../capfilt/inputs.js';
import type { ModelLoader } from '../../capfilt/model.js';
import { DEFAULTS, runCapfilt, type RunOptions } from '../../capfilt/run.js';
import type { ImageBackend } from '../../../runtime/preprocess/config.js';

// The queue (bullmq, ioredis) and the model loader are imported only by the paths that use them.
const DEFAULT_QUEUE = 'blip-capfilt';

const HELP = `Usage:
  blip capfilt --captioner CAPTION_OUTDIR --filter ITM_OUTDIR --input SRC --output DEST [options]
  blip capfilt enqueue --redis URL --captioner ... --filter ... --input SRC --output DEST [options]
  blip capfilt worker --redis URL [--queue NAME] [--device D] [--threads N] [--exit-when-idle]

CapFilt (BLIP's caption-and-filter): the captioner writes K synthetic captions per image with
nucleus sampling as BLIP's code does (prompt "a picture of ", top-k 50, top-p P, repetition
penalty 1.1, 5 to 30 tokens), and the filter's ITM head (the first 35 tokens of each text) drops
every text, web or synthetic, it judges not to match the image. Output shards mirror the input
shards: each sample keeps its image bytes and gets a .json with the web text, the synthetic
captions, their ITM probabilities and the kept texts.
DEST also gets stats.json and errors.jsonl (unreadable samples, which never stop the run).

Input (--input, repeatable):
  a folder of WebDataset .tar shards (as img2dataset writes them: KEY.jpg|png|webp, KEY.txt, KEY.json),
  a glob (data/*.tar, data/**/*.tar), a brace pattern (data/{00000..00099}.tar), one .tar,
  or a .jsonl file of {"image": path, "text": ...} lines (cut into shards of --samples-per-shard).

Options:
  --captioner DIR          compiled captioning model (blip compile output)
  --filter DIR             compiled retrieval model with an ITM head
  --input SRC              input shards or JSONL (repeatable)
  --output DEST            output folder (created; a re-run resumes, skipping complete shards)
  --captions-per-image K   synthetic captions per image (default ${DEFAULTS.captionsPerImage})
  --top-p P                nucleus sampling threshold (default ${DEFAULTS.topP})
  --min-itm T              keep a text when its ITM probability is >= T (default ${DEFAULTS.minItm})
  --seed S                 sampling seed; each caption's seed is derived from S, the shard and the key (default ${DEFAULTS.seed})
  --batch-size N           images per model call (default ${DEFAULTS.batchSize}); part of the run's settings
  --samples-per-shard N    JSONL input: lines per output shard (default ${DEFAULTS.samplesPerShard})
  --image-backend B        resize images as transformers' pil (default) or torchvision image processor
                           does (docs/api.md); part of the run's settings
  --device D               cpu | cuda | tensorrt | webgpu | auto (default ${DEFAULTS.device})
  --threads N              onnxruntime threads per session (default: one per physical core; with
                           several workers on one machine, give each cores / workers)
  --shard I/N              process only plan entries I, I+N, ... (0 <= I < N); run N of these anywhere
  --quiet                  no progress on stderr (a note that an input was skipped is still written)

Queue (enqueue / worker):
  --redis URL              redis://host:6379 (BullMQ queue)
  --queue NAME             queue name (default ${DEFAULT_QUEUE})
  --exit-when-idle         worker: stop when the queue has no waiting, delayed or active job
  --lock-duration MS       worker: a dead worker's job is retried this long after its last lock renewal (default 60000)
  --stalled-interval MS    worker: how often to look for stalled jobs (default 30000)

Examples:
  blip capfilt --captioner out/blip-caption --filter out/blip-itm --input 'laion/{00000..00099}.tar' --output laion-capfilt
  blip capfilt --captioner out/blip-caption --filter out/blip-itm --input data/ --output clean/ --shard 0/4
  blip capfilt enqueue --redis redis://redis:6379 --captioner /models/cap --filter /models/itm --input /data/shards --output /data/clean
  blip capfilt worker --redis redis://redis:6379

docs/capfilt.md has the output format and the deployment (docs/deploy/).`;

const RUN_OPTS = {
  captioner: { type: 'string' },
  filter: { type: 'string' },
  input: { type: 'string', multiple: true },
  output: { type: 'string' },
  'captions-per-image': { type: 'string' },
  'top-p': { type: 'string' },
  'min-itm': { type: 'string' },
  seed: { type: 'string' },
  'batch-size': { type: 'string' },
  'samples-per-shard': { type: 'string' },
  'image-backend': { type: 'string' },
  device: { type: 'string' },
  threads: { type: 'string' },
  shard: { type: 'string' },
  quiet: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

const ENQUEUE_OPTS = { ...RUN_OPTS, redis: { type: 'string' }, queue: { type: 'string' } } as const satisfies ParseArgsConfig['options'];

const WORKER_OPTS = {
  redis: { type: 'string' },
  queue: { type: 'string' },
  device: { type: 'string' },
  threads: { type: 'string' },
  'exit-when-idle': { type: 'boolean' },
  'lock-duration': { type: 'string' },
  'stalled-interval': { type: 'string' },
  quiet: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

function parse<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  return parseOptions(argv, options, false).values;
}

function num(name: string, v: string | undefined, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  // decimal only: Number() would also read 0x10 and 1e3, which a seed in a shell script should not mean
  const form = integer ? /^\s*[+-]?\d+\s*$/ : /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;
  if (!form.test(v) || !Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new UsageError(`--${name} expects ${integer ? 'an integer' : 'a number'}, got '${v}'`);
  if (integer && !Number.isSafeInteger(n)) throw new UsageError(`--${name} is ${v.trim()}, beyond the integers a double holds exactly (2^53)`);
  return n;
}

/** A duration in milliseconds: at least 1 (Redis refuses a lock of 0 or less, bullmq an interval). */
function positive(name: string, n: number | undefined): number | undefined {
  if (n !== undefined && n < 1) throw new UsageError(`--${name} must be at least 1 (milliseconds), got ${n}`);
  return n;
}

/**
 * --queue, checked before anything is written or connected: BullMQ refuses an empty name, and one
 * with ':' (the separator of its Redis keys), only when it builds the queue.
 */
function queueName(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (v === '') throw new UsageError(`--queue expects a queue name, got ''`);
  if (v.includes(':')) throw new UsageError(`--queue '${v}' contains ':', which BullMQ keeps for its Redis keys; give a name without ':'`);
  return v;
}

function need(name: string, v: string | undefined): string {
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

interface RunValues {
  captioner?: string;
  filter?: string;
  input?: string[];
  output?: string;
  'captions-per-image'?: string;
  'top-p'?: string;
  'min-itm'?: string;
  seed?: string;
  'batch-size'?: string;
  'samples-per-shard'?: string;
  'image-backend'?: string;
  device?: string;
  threads?: string;
  shard?: string;
  quiet?: boolean;
}

function runOptions(v: RunValues, deps: CapfiltDeps): RunOptions {
  const shard = v.shard !== undefined ? parseShardSpec(v.shard) : undefined;
  if (!v.input?.length) throw new UsageError('--input is required');
  return {
    captioner: need('captioner', v.captioner),
    filter: need('filter', v.filter),
    inputs: v.input,
    output: need('output', v.output),
    captionsPerImage: num('captions-per-image', v['captions-per-image'], true),
    topP: num('top-p', v['top-p'], false),
    minItm: num('min-itm', v['min-itm'], false),
    seed: num('seed', v.seed, true),
    batchSize: num('batch-size', v['batch-size'], true),
    samplesPerShard: num('samples-per-shard', v['samples-per-shard'], true),
    imageBackend: checkImageBackendOption(v['image-backend']),
    device: checkDeviceOption(v.device),
    threads: checkThreadsOption(num('threads', v.threads, true)),
    shard,
    log: v.quiet ? undefined : deps.stderr,
    // a skipped input is something to learn of even under --quiet, which quiets progress and the run's messages
    warn: deps.stderr,
    checkModels: deps.checkModels,
  };
}

export interface CapfiltDeps {
  load: ModelLoader;
  stderr: NodeJS.WritableStream;
  /** Checks the two model folders before anything is written (RunOptions.checkModels). */
  checkModels?: RunOptions['checkModels'];
}

/** `blip capfilt ...` with the model loader given (the CLI's loads compiled artifacts). */
export async function capfiltMain(argv: string[], deps: CapfiltDeps): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'enqueue') {
    const v = parse(rest, ENQUEUE_OPTS);
    if (v.shard !== undefined) throw new UsageError('--shard does not apply to enqueue (the queue spreads the shards)');
    const queue = queueName(v.queue);
    const o = runOptions(v, deps);
    const { enqueue } = await import('../../capfilt/queue.js');
    await enqueue({ ...o, redis: need('redis', v.redis), queue });
    return 0;
  }
  if (sub === 'worker') {
    const v = parse(rest, WORKER_OPTS);
    const queue = queueName(v.queue);
    const { runWorker } = await import('../../capfilt/queue.js');
    const handle = await runWorker(
      {
        redis: need('redis', v.redis),
        queue,
        device: checkDeviceOption(v.device),
        threads: checkThreadsOption(num('threads', v.threads, true)),
        exitWhenIdle: v['exit-when-idle'],
        lockDuration: positive('lock-duration', num('lock-duration', v['lock-duration'], true)),
        stalledInterval: positive('stalled-interval', num('stalled-interval', v['stalled-interval'], true)),
        log: v.quiet ? undefined : deps.stderr,
      },
      deps.load,
    );
    let signals = 0;
    const onSignal = (): void => {
      if (++signals > 1) process.exit(130);
      deps.stderr.write('capfilt worker: stopping, after the current job if one runs (signal again to stop now)\n');
      void handle.close();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    try {
      await handle.done;
    } finally {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
    return 0;
  }
  if (sub !== undefined && !sub.startsWith('-')) {
    const hint = nearest(sub, ['enqueue', 'worker']);
    throw new UsageError(`unknown subcommand '${sub}'${hint ? ` (did you mean '${hint}'?)` : ''}; expected enqueue, worker or options`);
  }
  const v = parse(argv, RUN_OPTS);
  const summary = await runCapfilt(runOptions(v, deps), deps.load);
  // a finished run in which no sample could be read is a failure (wrong inputs, say), not a clean dataset
  const stats = summary.final;
  if (stats && (stats.images_seen > 0 || stats.errors > 0) && stats.images_ok === 0) {
    const records = `${stats.errors} error record${stats.errors === 1 ? '' : 's'} in errors.jsonl`;
    deps.stderr.write(stats.images_seen ? `blip capfilt: none of the ${stats.images_seen} samples could be read (${records})\n` : `blip capfilt: no sample could be read from the inputs (${records})\n`);
    return 1;
  }
  return 0;
}

const command: Command = {
  name: 'capfilt',
  summary: 'caption and filter web image-text data (BLIP CapFilt) over WebDataset shards',
  help: HELP,
  run: (argv) =>
    capfiltMain(argv, {
      load: async (spec) => (await import('../../capfilt/loadModels.js')).loadModels(spec),
      stderr: process.stderr,
      checkModels: async (captioner, filter) => {
        const { checkCaptioner, checkFilter } = await import('../../capfilt/loadModels.js');
        checkCaptioner(captioner);
        checkFilter(filter);
      },
    }),
};
export default command;
