// Dynamic scale-out on BullMQ (Redis): `enqueue` puts one job per input shard that is not complete
// yet; `worker`s on any number of machines take jobs one at a time. A worker killed mid-shard
// leaves only a temp file; BullMQ's stalled-job check hands its job to another worker when the
// lock expires, which rewrites the shard from the start. Jobs are idempotent (a complete shard is
// skipped), so a job run twice never duplicates anything. Workers and the enqueuer must see the
// input and output folders at the same paths (a shared filesystem).
import { createHash } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { BlipError } from '../cli/Command.js';
import type { ShardTask } from './inputs.js';
import type { CapfiltModels, ModelLoader } from './model.js';
import { OutputDir } from './output.js';
import { finalize, planHasJsonl, prepareRun, readRunFile, recordedSettings, settingMismatch, type RunOptions } from './run.js';
import { processShard, type CapfiltSettings } from './shard.js';

/** The default queue name (also in src/cli/commands/capfilt.ts, which does not import this module up front). */
export const DEFAULT_QUEUE = 'blip-capfilt';

export interface CapfiltJobData {
  /** The output folder, absolute. */
  output: string;
  settings: CapfiltSettings;
  task: ShardTask;
  /** Whether the run's plan has JSONL shards (samples_per_shard is then one of its settings); absent in jobs of earlier versions. */
  jsonl?: boolean;
}

export interface CapfiltJobResult {
  shard: string;
  skipped: boolean;
  samples: number;
  errors: number;
}

/** Connect, failing fast (BLIP5804) when Redis cannot be reached; the client then reconnects forever. */
export async function connectRedis(url: string): Promise<Redis> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new BlipError('BLIP5804', `--redis expects a URL such as redis://host:6379, got '${url}'`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new BlipError('BLIP5804', `--redis expects a redis:// or rediss:// URL, got '${url}'`);
  const probe = new Redis(url, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true, connectTimeout: 5000 });
  // connect() rejects with "Connection is closed."; the cause (ECONNREFUSED, ENOTFOUND, a timeout)
  // comes in the last 'error' event before it
  let cause: Error | undefined;
  probe.on('error', (e: Error) => (cause = e));
  try {
    await probe.connect();
    await probe.ping();
  } catch (e) {
    throw new BlipError('BLIP5804', `cannot reach Redis at ${url}: ${(cause ?? (e as Error)).message.split('\n')[0]}`);
  } finally {
    probe.disconnect();
  }
  const client = new Redis(url, { maxRetriesPerRequest: null });
  client.on('error', () => undefined); // reconnects; BullMQ reports what fails
  return client;
}

/** The job id of a shard of a run: stable, so enqueueing twice adds each job once. */
export function jobId(output: string, shard: string): string {
  return `capfilt-${createHash('sha256').update(`${output}\0${shard}`).digest('hex').slice(0, 32)}`;
}

export interface EnqueueOptions extends RunOptions {
  redis: string;
  queue?: string;
  /** Attempts per job for failures that throw (a stalled job is retried without using one). */
  attempts?: number;
}

export interface EnqueueSummary {
  planned: number;
  enqueued: number;
  complete: number;
}

/** `blip capfilt enqueue`: plan, record run.json, and add one job per shard that is not complete. */
export async function enqueue(o: EnqueueOptions): Promise<EnqueueSummary> {
  // Redis and the queue first: an enqueue that cannot reach it, or whose queue name BullMQ refuses,
  // records no run (and leaves no connection open to keep the process alive)
  const connection = await connectRedis(o.redis);
  let queue: Queue<CapfiltJobData, CapfiltJobResult>;
  try {
    queue = new Queue<CapfiltJobData, CapfiltJobResult>(o.queue ?? DEFAULT_QUEUE, { connection });
  } catch (e) {
    connection.disconnect();
    throw e;
  }
  try {
    const { out, settings, plan } = await prepareRun(o);
    const jsonl = planHasJsonl(plan);
    const todo: ShardTask[] = [];
    for (const t of plan) if (!(await out.isComplete(t.id))) todo.push(t);
    for (const t of todo) {
      // A finished or failed job with this id would make add() a no-op: clear it first.
      const old = await queue.getJob(jobId(out.root, t.id));
      if (old) {
        const state = await old.getState();
        if (state === 'completed' || state === 'failed') await old.remove();
      }
    }
    for (let i = 0; i < todo.length; i += 1000) {
      await queue.addBulk(
        todo.slice(i, i + 1000).map((task) => ({
          name: 'shard',
          data: { output: out.root, settings, task, jsonl },
          opts: { jobId: jobId(out.root, task.id), attempts: o.attempts ?? 5, backoff: { type: 'exponential', delay: 5000 }, removeOnComplete: { count: 10000 }, removeOnFail: false },
        })),
      );
    }
    if (todo.length === 0) await finalize(out);
    o.log?.write(`capfilt enqueue: ${plan.length} shards planned, ${plan.length - todo.length} already complete, ${todo.length} jobs on queue '${o.queue ?? DEFAULT_QUEUE}'\n`);
    return { planned: plan.length, enqueued: todo.length, complete: plan.length - todo.length };
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

export interface WorkerOptions {
  redis: string;
  queue?: string;
  device?: string;
  /** onnxruntime intra-op threads per session. */
  threads?: number;
  /** BullMQ lock duration (ms): a job whose worker died is retried this long after its last lock renewal. */
  lockDuration?: number;
  /** How often (ms) workers look for stalled jobs. */
  stalledInterval?: number;
  /** Stop when the queue has no waiting, delayed or active job (checked every second; enqueue first). */
  exitWhenIdle?: boolean;
  log?: NodeJS.WritableStream;
}

export interface WorkerHandle {
  /** Resolves when the worker has stopped (rejects with the error that stopped it). */
  done: Promise<void>;
  /** Finish the current job, if one runs, then stop; an idle worker stops at once. */
  close(): Promise<void>;
}

/** How long a stopping worker waits for BullMQ to record its last job's result in Redis. */
const RECORD_WAIT_MS = 5000;

/** `blip capfilt worker`: process shard jobs until closed (or, with exitWhenIdle, until the queue is empty). */
export async function runWorker(o: WorkerOptions, load: ModelLoader): Promise<WorkerHandle> {
  const connection = await connectRedis(o.redis);
  const name = o.queue ?? DEFAULT_QUEUE;
  const log = o.log;
  const lockDuration = o.lockDuration ?? 60_000;
  const stalledInterval = o.stalledInterval ?? 30_000;
  const models = new Map<string, Promise<CapfiltModels>>();
  let fatal: Error | undefined;
  let busy = 0;
  /** The last job's processing, settled when it has finished (close() waits for it). */
  let running: Promise<void> = Promise.resolve();

  const getModels = (s: CapfiltSettings): Promise<CapfiltModels> => {
    const key = `${s.captioner}\0${s.filter}\0${s.imageBackend ?? 'pil'}`;
    let m = models.get(key);
    if (!m) {
      m = load({ captioner: s.captioner, filter: s.filter, device: o.device ?? 'cpu', threads: o.threads, imageBackend: s.imageBackend });
      models.set(key, m);
    }
    return m;
  };

  const processor = (job: Job<CapfiltJobData, CapfiltJobResult>): Promise<CapfiltJobResult> => {
    const p = processJob(job);
    running = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  };
  const processJob = async (job: Job<CapfiltJobData, CapfiltJobResult>): Promise<CapfiltJobResult> => {
    busy++;
    try {
      const { output, settings, task } = job.data;
      const out = new OutputDir(output);
      const run = await readRunFile(out);
      if (!run) throw new BlipError('BLIP5803', `${output} has no _capfilt/run.json: enqueue the run again`);
      // the settings enqueue's recordRun compared (a job of an earlier version does not say whether
      // the plan has JSONL shards: its own shard's kind decides whether samples_per_shard matters)
      const mismatch = settingMismatch(run.settings, recordedSettings(settings, job.data.jsonl ?? task.source.kind === 'jsonl'));
      if (mismatch !== undefined) {
        throw new BlipError('BLIP5803', `job for ${task.id} does not match ${output}/_capfilt/run.json (the run was re-planned with other settings: ${mismatch})`);
      }
      const t0 = Date.now();
      if (await out.isComplete(task.id)) {
        log?.write(`capfilt worker: ${task.id} already complete\n`);
        await finalize(out);
        return { shard: task.id, skipped: true, samples: 0, errors: 0 };
      }
      let m: CapfiltModels;
      try {
        m = await getModels(settings);
      } catch (e) {
        // This worker cannot load the models: give the job back (it is retried with backoff) and stop.
        fatal = e as Error;
        void worker.close();
        throw e;
      }
      log?.write(`capfilt worker: ${task.id} started (attempt ${job.attemptsMade + 1}, pid ${process.pid})\n`);
      const sc = await processShard(out, task, settings, m);
      const secs = (Date.now() - t0) / 1000;
      log?.write(`capfilt worker: ${task.id} done: ${sc.stats.images_seen} samples in ${secs.toFixed(1)}s (${(sc.stats.images_seen / Math.max(secs, 1e-3)).toFixed(1)} samples/s)\n`);
      const final = await finalize(out);
      if (final) log?.write(`capfilt worker: all ${final.shards} shards of ${output} complete; stats.json written\n`);
      return { shard: task.id, skipped: false, samples: sc.stats.images_seen, errors: sc.stats.errors };
    } finally {
      busy--;
    }
  };

  let worker: Worker<CapfiltJobData, CapfiltJobResult>;
  try {
    worker = new Worker<CapfiltJobData, CapfiltJobResult>(name, processor, {
      connection,
      concurrency: 1,
      lockDuration,
      stalledInterval,
      maxStalledCount: 10,
    });
  } catch (e) {
    // (a name BullMQ refuses, say): the open connection would keep the process alive
    connection.disconnect();
    throw e;
  }
  worker.on('failed', (job, err) => log?.write(`capfilt worker: ${job?.data.task.id ?? '?'} failed: ${err.message}\n`));
  worker.on('error', (err) => log?.write(`capfilt worker: ${err.message}\n`));
  log?.write(`capfilt worker: pid ${process.pid} waiting for jobs on '${name}'\n`);

  let idleTimer: NodeJS.Timeout | undefined;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      if (idleTimer) clearInterval(idleTimer);
      // BullMQ's graceful close first waits for its blocking connection to end, which after Redis
      // was away 8 s or more it waits for forever (bullmq 6.7), idle or not: finish the running job
      // here, then close forced. Paused, the worker takes no further job.
      const wasBusy = busy > 0;
      await worker.pause(true);
      while (busy > 0) await running;
      if (wasBusy) {
        // BullMQ records the job's result after the processor returns; paused, its loop then ends.
        // (Bounded: with Redis away it retries that until Redis is back, and an unrecorded job is
        // only retried later and found complete.)
        for (const t0 = Date.now(); worker.isRunning() && Date.now() - t0 < RECORD_WAIT_MS; ) await new Promise((r) => setTimeout(r, 50));
      }
      await worker.close(true);
      for (const m of models.values()) await m.then((x) => x.close?.(), () => undefined);
      connection.disconnect();
    })();
    return closing;
  };
  const done = new Promise<void>((res, rej) => {
    worker.on('closed', () => {
      void close().then(() => (fatal ? rej(fatal) : res()), rej);
    });
  });
  if (o.exitWhenIdle) {
    const queue = new Queue(name, { connection });
    let checking = false;
    idleTimer = setInterval(() => {
      if (checking || busy > 0) return;
      checking = true;
      queue
        .getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children')
        .then(async (c) => {
          if (busy === 0 && Object.values(c).every((n) => n === 0)) {
            log?.write('capfilt worker: queue is empty, stopping\n');
            await queue.close();
            await close();
          }
        })
        .catch(() => undefined)
        .finally(() => (checking = false));
    }, Math.min(1000, stalledInterval));
  }
  return { done, close };
}
