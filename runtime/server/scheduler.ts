// The bounded queue, the dynamic batcher and the worker pool.
//
// Requests wait in one queue per model (all queues together hold at most --max-queue requests;
// past that submit() refuses with 429 and a Retry-After estimate). Whenever a worker of a model is
// idle, it takes the oldest waiting request of that model together with every later one that can
// share its model call (same task and settings, and for generation the same prompt shape, so no
// row is padded and results do not depend on the batch) up to --max-batch rows. While a batch
// runs, new requests accumulate and form the next one: the batch size follows the load.
//
// A request past its deadline (or whose client went away) is cancelled: removed from the queue,
// or, when its batch is running, flagged in the batch's shared cancel array and the worker told
// (a 'cancel' message, read between two decoding steps); a generation batch whose requests are
// all cancelled then stops before its next decoding step — greedy, sampling and beam search — and
// frees its worker. (ITM and embedding batches, one model call per batch of inputs, run to their end.)
//
// WebGPU takes turns: onnxruntime-node 1.30 crashes the process (SIGSEGV / SIGABRT) when two
// threads create or run WebGPU sessions at the same time (two bare worker_threads creating a WebGPU
// InferenceSession at once, or running theirs at once; sessions open in both threads but used in
// turn are fine; docs/webgpu.md). So where the device may be WebGPU, the workers load their
// models one after another, a worker on WebGPU runs a batch only while no other worker is loading
// or running a WebGPU batch (one WebGPU batch at a time in the process, across models and --workers,
// the oldest waiting request's model first), and they close one after another. The turn is a whole
// batch, not each session.run: a batch also creates sessions (the beam search's row gather) and
// releases device tensors between runs, all of which touch the one device.
import { Worker } from 'node:worker_threads';
import { candidates, parseDevice } from '../providers.js';
import type { ImageBackend } from '../preprocess/config.js';
import { ApiError } from './errors.js';
import type { ServerMetrics } from './metrics.js';
import type { BatchMessage, EmbedJob, FromWorker, GenJob, GenSettings, ItmJob, JobResult, ToWorker, WorkerInit } from './protocol.js';

export type Task = 'generate' | 'itm' | 'embed';

export interface JobSpec {
  model: string;
  task: Task;
  /** Requests with the same key can share one model call. */
  key: string;
  /** Rows this request adds to a batch (images x sequences, pairs, items). */
  rows: number;
  payload: GenJob | ItmJob | EmbedJob;
  settings?: GenSettings;
  /** Streaming: released text of sequence `choice`. */
  onToken?: (choice: number, text: string) => void;
  /** Bytes to transfer to the worker (image buffers). */
  transfer?: ArrayBuffer[];
}

export interface JobHandle<T> {
  promise: Promise<T>;
  cancel(reason: ApiError, metricReason?: string): void;
}

interface Job {
  spec: JobSpec;
  /** Order of arrival (the WebGPU turn goes to the model whose oldest request came first). */
  seq: number;
  state: 'queued' | 'running' | 'settled';
  resolve(v: unknown): void;
  reject(e: ApiError): void;
  timer?: NodeJS.Timeout;
  flags?: Int32Array;
  index?: number;
  /** Set while its batch runs: tells the worker that a request of the batch was cancelled. */
  cancelRunning?: () => void;
}

interface Batch {
  id: number;
  task: Task;
  model: string;
  jobs: Job[];
  started: number;
}

export interface PoolOptions {
  maxBatch: number;
  maxQueue: number;
  timeoutMs: number;
  /** Workers per model. */
  workers: number;
  device?: string;
  threads?: number;
  deviceId?: number;
  imageBackend?: ImageBackend;
  /** See WorkerInit.maxImagePixels. */
  maxImagePixels: number;
  backendModule?: string;
  backendOptions?: unknown;
}

class WorkerHandle {
  worker!: Worker;
  busy: Batch | null = null;
  ready = false;
  /** From its start until 'ready', or its failure to load. */
  loading = false;
  /** Waiting for the WebGPU turn to be started again (after a crash). */
  relaunch = false;
  closing = false;
  providers: Record<string, string> = {};
  constructor(
    readonly model: string,
    readonly init: WorkerInit,
  ) {}

  /** Its model's sessions run on WebGPU (known once it is ready). */
  get onWebgpu(): boolean {
    return Object.values(this.providers).includes('webgpu');
  }
}

/** Whether `device` may put sessions on WebGPU (webgpu; auto where it tries WebGPU here). */
export function mayUseWebgpu(device: string | undefined): boolean {
  try {
    return candidates(parseDevice(device ?? 'cpu')).includes('webgpu');
  } catch {
    return false; // an unknown device fails at load
  }
}

/**
 * Start a worker thread from the built dist/ (plain .js), or from source under tsx: a worker does
 * not inherit tsx's loader hooks, so the eval'd entry registers them before importing worker.ts.
 */
function spawnWorker(init: WorkerInit): Worker {
  // the parent's flags minus those that only apply to its entry point (node --input-type=module -e ...)
  let execArgv = workerFlags ?? process.execArgv.filter((a) => !a.startsWith('--input-type'));
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(fromSource ? './worker.ts' : './worker.js', import.meta.url);
  const tsx = fromSource ? import.meta.resolve('tsx/esm/api') : '';
  const code = `import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(url.href)}); })`;
  for (;;) {
    try {
      const worker = fromSource ? new Worker(code, { eval: true, workerData: init, execArgv }) : new Worker(url, { workerData: init, execArgv });
      workerFlags = execArgv;
      return worker;
    } catch (e) {
      const rest = withoutRefusedFlags(e, execArgv);
      if (!rest) throw e;
      execArgv = rest;
    }
  }
}

/** The flags worker threads took, once one has started: the next workers are given those. */
let workerFlags: string[] | undefined;

/**
 * `flags` without those the Worker constructor refused. Process-wide flags (`node
 * --max-old-space-size=4096`, `--expose-gc`, `--title=…`) make it throw ERR_WORKER_INVALID_EXEC_ARGV
 * with a message that lists them; they already apply to the whole process. Undefined when the
 * error is another, or names none of `flags`.
 */
export function withoutRefusedFlags(e: unknown, flags: string[]): string[] | undefined {
  const err = e as Error & { code?: string };
  if (err?.code !== 'ERR_WORKER_INVALID_EXEC_ARGV') return undefined;
  // "Initiated Worker with invalid execArgv flags: --title=blip serve, --expose-gc": a flag's
  // value may hold spaces (and ', '), so each flag is looked for in the list whole
  const list = `${err.message.slice(err.message.indexOf(':') + 1).trim()}, `;
  const refused = (f: string): boolean => list.startsWith(`${f}, `) || list.includes(`, ${f}, `);
  const rest = flags.filter((f) => !refused(f));
  return rest.length < flags.length ? rest : undefined;
}

export class Scheduler {
  private readonly queues = new Map<string, Job[]>();
  private readonly workers = new Map<string, WorkerHandle[]>();
  private readonly batchMs = new Map<string, number>();
  private nextBatch = 1;
  private nextJob = 1;
  private queued = 0;
  private running = new Set<Batch>();
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  metrics?: ServerMetrics;

  /** Loads and WebGPU batches take turns (see the header). */
  private readonly webgpuTurns: boolean;

  constructor(private readonly o: PoolOptions) {
    this.webgpuTurns = mayUseWebgpu(o.device);
  }

  private handles(): WorkerHandle[] {
    return [...this.workers.values()].flat();
  }

  /** A worker is loading, or one on WebGPU is running a batch: no WebGPU work may start. */
  private webgpuInUse(): boolean {
    return this.handles().some((h) => h.loading || (h.busy && h.onWebgpu));
  }

  /** Start the workers of every model; resolves when all have loaded their model. */
  async start(models: Array<{ id: string; dir: string }>): Promise<void> {
    const starts: Array<Promise<void>> = [];
    for (const m of models) {
      this.queues.set(m.id, []);
      const hs: WorkerHandle[] = [];
      this.workers.set(m.id, hs);
      for (let i = 0; i < this.o.workers; i++) {
        const h = new WorkerHandle(m.id, {
          id: m.id,
          dir: m.dir,
          device: this.o.device,
          threads: this.o.threads,
          deviceId: this.o.deviceId,
          imageBackend: this.o.imageBackend,
          maxBatch: this.o.maxBatch,
          maxImagePixels: this.o.maxImagePixels,
          backendModule: this.o.backendModule,
          backendOptions: this.o.backendOptions,
        });
        hs.push(h);
        if (!this.webgpuTurns) starts.push(this.launch(h));
      }
    }
    if (this.webgpuTurns) {
      // one load at a time (each waits for the one before; the first failure ends the start)
      let chain = Promise.resolve();
      for (const h of this.handles()) chain = chain.then(() => this.launch(h));
      starts.push(chain);
    }
    const r = await Promise.allSettled(starts);
    const bad = r.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (bad) {
      await this.close();
      throw bad.reason;
    }
  }

  private launch(h: WorkerHandle): Promise<void> {
    return new Promise((resolve, reject) => {
      const w = spawnWorker(h.init);
      h.worker = w;
      h.ready = false;
      h.loading = true;
      const loaded = () => {
        h.loading = false;
        this.dispatch(); // the next load or batch may take the WebGPU turn
      };
      w.on('message', (m: FromWorker) => {
        if (h.worker !== w) return;
        switch (m.type) {
          case 'ready':
            h.ready = true;
            h.providers = m.providers;
            resolve();
            loaded();
            break;
          case 'fatal':
            reject(new ApiError(500, `cannot load model ${h.model}: ${m.error.message}`, 'server_error', m.error.code));
            loaded();
            break;
          case 'token':
            this.onToken(h, m);
            break;
          case 'result':
            this.onResult(h, m);
            break;
          case 'closed':
            break;
        }
      });
      // (events of a worker already replaced are ignored: 'error' and 'exit' both follow a crash)
      w.on('error', (e) => {
        if (h.worker !== w) return;
        if (!h.ready) reject(new ApiError(500, `cannot start the worker of ${h.model}: ${e.message}`));
        h.loading = false;
        this.onCrash(h, e);
      });
      w.on('exit', (code) => {
        if (h.worker !== w) return;
        if (!h.ready) {
          reject(new ApiError(500, `the worker of ${h.model} exited (code ${code}) while loading`));
          if (h.loading) loaded();
        } else if (!h.closing) this.onCrash(h, new Error(`exit code ${code}`));
      });
    });
  }

  private onCrash(h: WorkerHandle, e: Error): void {
    if (h.busy) {
      const b = h.busy;
      h.busy = null;
      this.running.delete(b);
      for (const j of b.jobs) this.settle(j, undefined, new ApiError(500, `the inference worker of ${h.model} failed (${e.message})`, 'server_error', 'worker_failed'));
    }
    const wasReady = h.ready;
    h.ready = false;
    if (wasReady && !h.closing && !this.closed) {
      // replace it; requests keep queueing meanwhile (with WebGPU turns, once the device is free)
      if (this.webgpuTurns) h.relaunch = true;
      else this.launch(h).catch(() => undefined);
    }
    this.dispatch();
    this.checkIdle();
  }

  /** Requests waiting, per model. */
  depth(): Array<[Record<string, string>, number]> {
    return [...this.queues].map(([model, q]) => [{ model }, q.length]);
  }
  inFlight(): Array<[Record<string, string>, number]> {
    const by = new Map<string, number>([...this.queues.keys()].map((k) => [k, 0]));
    for (const b of this.running) by.set(b.model, (by.get(b.model) ?? 0) + b.jobs.filter((j) => j.state === 'running').length);
    return [...by].map(([model, n]) => [{ model }, n]);
  }
  busyWorkers(): Array<[Record<string, string>, number]> {
    return [...this.workers].map(([model, hs]) => [{ model }, hs.filter((h) => h.busy).length]);
  }
  get totalQueued(): number {
    return this.queued;
  }
  get totalRunning(): number {
    let n = 0;
    for (const b of this.running) n += b.jobs.filter((j) => j.state === 'running').length;
    return n;
  }
  providers(model: string): Record<string, string> {
    return this.workers.get(model)?.[0]?.providers ?? {};
  }

  /** Seconds a client should wait before retrying when the queue is full. */
  retryAfter(model: string): number {
    const ms = this.batchMs.get(model) ?? 1000;
    const parallel = this.webgpuTurns ? 1 : Math.max(1, this.o.workers);
    const waves = Math.ceil((this.queues.get(model)?.length ?? 0) / Math.max(1, this.o.maxBatch) / parallel);
    return Math.max(1, Math.ceil((ms * Math.max(1, waves)) / 1000));
  }

  submit<T>(spec: JobSpec): JobHandle<T> {
    if (this.closed) throw new ApiError(503, 'the server is shutting down', 'service_unavailable', 'draining');
    const q = this.queues.get(spec.model);
    if (!q) throw new ApiError(404, `no model ${spec.model}`, 'not_found_error', 'model_not_found', 'model');
    if (this.queued >= this.o.maxQueue) {
      this.metrics?.rejected.inc({ reason: 'queue_full' });
      const s = this.retryAfter(spec.model);
      throw new ApiError(429, `the server is busy: ${this.queued} requests are waiting (--max-queue ${this.o.maxQueue}); retry in ${s} s`, 'rate_limit_error', 'queue_full', null, {
        'Retry-After': String(s),
      });
    }
    let job!: Job;
    const promise = new Promise<T>((resolve, reject) => {
      job = { spec, seq: this.nextJob++, state: 'queued', resolve: resolve as (v: unknown) => void, reject };
    });
    job.timer = setTimeout(() => {
      this.metrics?.rejected.inc({ reason: 'timeout' });
      this.settle(job, undefined, new ApiError(408, `the request did not finish within ${this.o.timeoutMs} ms (--timeout-ms) and was cancelled`, 'timeout_error', 'timeout'));
    }, this.o.timeoutMs);
    q.push(job);
    this.queued++;
    // let requests arriving in the same tick join the batch
    setImmediate(() => this.dispatch());
    return {
      promise,
      cancel: (reason, metricReason) => {
        if (job.state === 'settled') return;
        if (metricReason) this.metrics?.rejected.inc({ reason: metricReason });
        this.settle(job, undefined, reason);
      },
    };
  }

  private settle(job: Job, value: unknown, error?: ApiError): void {
    if (job.state === 'settled') return;
    if (job.state === 'queued') {
      const q = this.queues.get(job.spec.model)!;
      const i = q.indexOf(job);
      if (i >= 0) {
        q.splice(i, 1);
        this.queued--;
      }
    } else if (job.flags && job.index !== undefined) {
      Atomics.store(job.flags, job.index, 1);
      job.cancelRunning?.();
    }
    job.state = 'settled';
    if (job.timer) clearTimeout(job.timer);
    if (error) job.reject(error);
    else job.resolve(value);
    this.checkIdle();
  }

  private held = false;
  /** close() has begun: no batch or worker starts any more. */
  private stopping = false;

  /** Stop starting batches (requests keep queueing) until release(): for maintenance and tests. */
  hold(): void {
    this.held = true;
  }

  release(): void {
    this.held = false;
    this.dispatch();
  }

  private dispatch(): void {
    if (this.stopping) return;
    if (this.webgpuTurns) {
      // a crashed worker's replacement goes before the next WebGPU batch
      const next = this.handles().find((h) => h.relaunch);
      if (next && !this.webgpuInUse()) {
        next.relaunch = false;
        this.launch(next).catch(() => undefined);
      }
    }
    if (this.held) return;
    let models = [...this.workers];
    // the WebGPU turn to the model whose oldest waiting request came first
    if (this.webgpuTurns) models = models.sort(([a], [b]) => (this.queues.get(a)![0]?.seq ?? Infinity) - (this.queues.get(b)![0]?.seq ?? Infinity));
    for (const [model, hs] of models) {
      const q = this.queues.get(model)!;
      for (const h of hs) {
        if (q.length === 0) break;
        if (!h.ready || h.busy || h.closing) continue;
        if (this.webgpuTurns && h.onWebgpu && this.webgpuInUse()) continue;
        this.runBatch(h, this.take(q));
      }
    }
  }

  private take(q: Job[]): Job[] {
    const head = q[0];
    const out = [head];
    let rows = head.spec.rows;
    for (let i = 1; i < q.length && rows < this.o.maxBatch; i++) {
      const j = q[i];
      if (j.spec.key === head.spec.key && rows + j.spec.rows <= this.o.maxBatch) {
        out.push(j);
        rows += j.spec.rows;
      }
    }
    for (const j of out) q.splice(q.indexOf(j), 1);
    this.queued -= out.length;
    return out;
  }

  private runBatch(h: WorkerHandle, jobs: Job[]): void {
    const id = this.nextBatch++;
    const cancel = new SharedArrayBuffer(4 * jobs.length);
    const flags = new Int32Array(cancel);
    const first = jobs[0].spec;
    const batch: Batch = { id, task: first.task, model: h.model, jobs, started: performance.now() };
    jobs.forEach((j, i) => {
      j.state = 'running';
      j.flags = flags;
      j.index = i;
      if (first.task === 'generate') j.cancelRunning = () => this.tellCancelled(h, batch);
    });
    h.busy = batch;
    this.running.add(batch);
    const rows = jobs.reduce((a, j) => a + j.spec.rows, 0);
    this.metrics?.batchSize.observe(rows, { model: h.model, task: first.task });
    const transfer = jobs.flatMap((j) => j.spec.transfer ?? []);
    let msg: BatchMessage;
    if (first.task === 'generate') msg = { type: 'batch', id, cancel, task: 'generate', settings: first.settings!, jobs: jobs.map((j) => j.spec.payload as GenJob) };
    else if (first.task === 'itm') msg = { type: 'batch', id, cancel, task: 'itm', jobs: jobs.map((j) => j.spec.payload as ItmJob) };
    else msg = { type: 'batch', id, cancel, task: 'embed', jobs: jobs.map((j) => j.spec.payload as EmbedJob) };
    try {
      h.worker.postMessage(msg, transfer);
    } catch (e) {
      this.onCrash(h, e as Error);
    }
  }

  /**
   * A request of batch `b` was cancelled while it runs on `h`: the worker looks at the batch's flags
   * between two decoding steps and stops the batch when all its requests are. Not once the batch is
   * over (its result came, or the worker failed: h.busy is cleared before its jobs are settled).
   */
  private tellCancelled(h: WorkerHandle, b: Batch): void {
    if (h.busy !== b) return;
    try {
      h.worker.postMessage({ type: 'cancel', batch: b.id } satisfies ToWorker);
    } catch {
      // (a worker that is gone: its 'exit' settles the batch)
    }
  }

  private onToken(h: WorkerHandle, m: Extract<FromWorker, { type: 'token' }>): void {
    const b = h.busy;
    if (!b || b.id !== m.batch) return;
    const j = b.jobs[m.job];
    if (j && j.state === 'running') j.spec.onToken?.(m.choice, m.text);
  }

  private onResult(h: WorkerHandle, m: Extract<FromWorker, { type: 'result' }>): void {
    const b = h.busy;
    if (!b || b.id !== m.batch) return;
    h.busy = null;
    this.running.delete(b);
    const prev = this.batchMs.get(b.model);
    this.batchMs.set(b.model, prev === undefined ? m.ms : 0.8 * prev + 0.2 * m.ms);
    this.metrics?.batchDuration.observe(m.ms / 1000, { model: b.model, task: b.task });
    if (m.tokens > 0) {
      this.metrics?.tokens.inc({ model: b.model }, m.tokens);
      this.metrics?.tokenRate.add(m.tokens);
    }
    b.jobs.forEach((j, i) => {
      const r: JobResult | undefined = m.results[i];
      if (!r) this.settle(j, undefined, new ApiError(500, 'the worker returned no result', 'server_error'));
      else if (r.ok) this.settle(j, r.value);
      else this.settle(j, undefined, ApiError.fromWire(r.error));
    });
    this.dispatch();
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.queued === 0 && this.running.size === 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.queued === 0 && this.running.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Refuse new requests, let queued and running ones finish, then stop the workers. */
  async drain(): Promise<void> {
    this.closed = true;
    this.release();
    await this.idle();
    await this.close();
  }

  /** Stop the workers now (running requests fail). */
  async close(): Promise<void> {
    this.closed = true;
    this.stopping = true;
    const stop = (h: WorkerHandle) =>
      new Promise<void>((resolve) => {
        h.closing = true;
        h.relaunch = false;
        if (!h.worker) return resolve();
        const t = setTimeout(() => void h.worker.terminate().then(() => resolve()), 5000);
        h.worker.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        if (h.ready && !h.busy) h.worker.postMessage({ type: 'close' });
        else void h.worker.terminate();
      });
    const all = this.handles();
    // WebGPU: one worker releases its sessions (or is stopped) after the other
    if (this.webgpuTurns) for (const h of all) await stop(h);
    else await Promise.all(all.map(stop));
    for (const q of this.queues.values()) for (const j of [...q]) this.settle(j, undefined, new ApiError(503, 'the server stopped', 'service_unavailable', 'shutdown'));
  }
}
