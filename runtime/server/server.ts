// `blip serve`: an OpenAI-compatible HTTP server over compiled models (node:http only).
//
//   POST /v1/chat/completions   caption / VQA / instructions (stream: true -> server-sent events)
//   POST /v1/itm                image + texts -> ITM probabilities and ITC similarities
//   POST /v1/embeddings         ITC embeddings of texts and images
//   GET  /v1/models, /v1/models/{id}, /health, /metrics
//
// Inference runs in worker threads (scheduler.ts); this thread parses, validates, queues,
// batches and streams, so it answers /health and refuses requests while a batch runs.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { realpathSync, statSync } from 'node:fs';
import { BlipError, type BlipCode } from '../../src/diagnostics/BlipError.js';
import { unknownOption } from '../../src/diagnostics/suggest.js';
import { loadEntry, type ModelEntry } from './catalog.js';
import { IMAGE_BACKENDS, type ImageBackend } from '../preprocess/config.js';
import { ApiError, toApiError } from './errors.js';
import { EventStream, READ_ON_FACTOR, readJson, sendError, sendJson, sendText } from './http.js';
import { ServerMetrics } from './metrics.js';
import { chatId, chatResponse, choiceLogprobs, chunk, embeddingValue, finishReason, parseChat, parseEmbeddings, parseItm, type Ctx } from './openai.js';
import type { EmbedValue, GenJob, GenValue, ItmValue } from './protocol.js';
import { Scheduler, type JobHandle, type JobSpec, type PoolOptions } from './scheduler.js';

export interface ServeOptions {
  /** Models to serve: `id` is what clients pass as `model`. */
  models: Array<{ id: string; dir: string }>;
  host?: string | undefined;
  /** 0 picks a free port. */
  port?: number | undefined;
  device?: string | undefined;
  threads?: number | undefined;
  deviceId?: number | undefined;
  /** load()'s imageBackend for every model: 'pil' (default) or 'torchvision' (docs/api.md). */
  imageBackend?: ImageBackend | undefined;
  /** Rows (images x n, ITM pairs, embedding inputs) per model call. */
  maxBatch?: number | undefined;
  /** Requests waiting for a worker, all models together; more are refused with 429. */
  maxQueue?: number | undefined;
  /** A request not finished after this long (queue wait included) is cancelled with 408. */
  timeoutMs?: number | undefined;
  /** Workers (each with its own sessions) per model. */
  workers?: number | undefined;
  /** Request body limit in bytes. */
  maxBodyBytes?: number | undefined;
  /**
   * The most pixels one image may decode to (width x height by its header; default 50 M, a
   * 8660 x 5773 photo). A 656 KB PNG of 15000 x 15000 decodes to 675 MB: without this, --max-body
   * would not bound a request's memory.
   */
  maxImagePixels?: number | undefined;
  /**
   * The most characters of one prompt, ITM text or embeddings input (default 32768). Checked before
   * tokenizing, which runs on the HTTP thread: a megabyte of T5 prompt took minutes and froze every
   * other request meanwhile.
   */
  maxTextChars?: number | undefined;
  /** Folder file:// image URLs may read from. */
  allowFiles?: string | undefined;
  /** Most sequences per chat request (n). */
  maxN?: number | undefined;
  /** Most texts / inputs per ITM or embeddings request. */
  maxInputs?: number | undefined;
  /** Replace runtime/model.ts in the workers (tests): a module exporting load(dir, opts). Not for users: error messages leave it out. */
  backendModule?: string | undefined;
  backendOptions?: unknown;
  /**
   * Given a line (`error: METHOD URL: message`) for each request answered with a 5xx status;
   * default: nothing. The start-up, signal and `stopped` lines of `blip serve` are the command's own.
   */
  log?: ((line: string) => void) | undefined;
}

export const SERVE_DEFAULTS = {
  host: '127.0.0.1',
  maxBatch: 8,
  maxQueue: 64,
  timeoutMs: 120_000,
  workers: 1,
  maxBodyBytes: 20 * 1024 * 1024,
  maxImagePixels: 50_000_000,
  maxTextChars: 32_768,
  maxN: 16,
  maxInputs: 256,
} as const;

export interface BlipServer {
  readonly url: string;
  readonly port: number;
  readonly host: string;
  readonly models: ModelEntry[];
  readonly metrics: ServerMetrics;
  readonly scheduler: Scheduler;
  readonly http: Server;
  /** Stop accepting, finish queued and running requests, stop the workers. */
  close(): Promise<void>;
  /** True once close() has been called. */
  readonly draining: boolean;
  /** Inference requests accepted whose body is still being received (close() waits for them too). */
  readonly receiving: number;
}

type Endpoint = 'chat' | 'itm' | 'embeddings' | 'models' | 'health' | 'metrics' | 'other';

/**
 * Every key ServeOptions has that docs/serve.md documents (checked at run time for JavaScript
 * callers: a misspelt limit would be ignored); the tests' backendModule / backendOptions are
 * accepted but not offered.
 */
const SERVE_OPTIONS: Array<keyof ServeOptions> = [
  'models', 'host', 'port', 'device', 'threads', 'deviceId', 'imageBackend', 'maxBatch', 'maxQueue', 'timeoutMs', 'workers',
  'maxBodyBytes', 'maxImagePixels', 'maxTextChars', 'allowFiles', 'maxN', 'maxInputs', 'log',
];

export async function startServer(opts: ServeOptions): Promise<BlipServer> {
  if (typeof opts !== 'object' || opts === null) throw new BlipError('BLIP5901', 'startServer() takes an options object with models');
  const { backendModule: _module, backendOptions: _options, ...documented } = opts;
  const unknown = unknownOption(documented, SERVE_OPTIONS, 'server option');
  if (unknown) throw new BlipError('BLIP5901', unknown);
  if (!Array.isArray(opts.models) || opts.models.length === 0) throw new BlipError('BLIP5901', 'no model to serve: give at least one compiled model directory');
  const ids = new Set<string>();
  for (const m of opts.models) {
    if (typeof m?.id !== 'string' || m.id === '' || typeof m.dir !== 'string') throw new BlipError('BLIP5901', `each model needs an id (the name clients pass as model) and a dir, found ${JSON.stringify(m)}`);
    if (ids.has(m.id)) throw new BlipError('BLIP5901', `two models are named ${m.id}; give each its own name (NAME=DIR on the command line, id in startServer's models)`);
    ids.add(m.id);
  }
  const o = { ...SERVE_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as ServeOptions & typeof SERVE_DEFAULTS;
  for (const [name, v, min] of [
    ['maxBatch', o.maxBatch, 1],
    ['maxQueue', o.maxQueue, 1],
    ['timeoutMs', o.timeoutMs, 1],
    ['workers', o.workers, 1],
    ['maxBodyBytes', o.maxBodyBytes, 1],
    ['maxImagePixels', o.maxImagePixels, 1],
    ['maxTextChars', o.maxTextChars, 1],
  ] as const) {
    if (!Number.isInteger(v) || v < min) throw new BlipError('BLIP5901', `${name} must be an integer >= ${min}, found ${v}`);
  }
  if (o.imageBackend !== undefined && !IMAGE_BACKENDS.includes(o.imageBackend)) {
    throw new BlipError('BLIP5901', `imageBackend must be "pil" or "torchvision", found ${JSON.stringify(o.imageBackend)}`);
  }
  let allowFiles: string | undefined;
  if (o.allowFiles !== undefined) {
    try {
      allowFiles = realpathSync(o.allowFiles);
      if (!statSync(allowFiles).isDirectory()) throw new Error('not a directory');
    } catch (e) {
      throw new BlipError('BLIP5901', `--allow-files ${o.allowFiles}: ${(e as Error).message.includes('not a directory') ? 'not a directory' : 'no such directory'}`);
    }
  }
  const entries = opts.models.map((m) => loadEntry(m.id, m.dir));
  const models = new Map(entries.map((e) => [e.id, e]));
  const ctx: Ctx = { models, images: { allowFiles, maxBytes: o.maxBodyBytes }, maxN: o.maxN, maxInputs: o.maxInputs, maxTextChars: o.maxTextChars };

  const pool: PoolOptions = {
    maxBatch: o.maxBatch,
    maxQueue: o.maxQueue,
    timeoutMs: o.timeoutMs,
    workers: o.workers,
    device: o.device,
    threads: o.threads,
    deviceId: o.deviceId,
    imageBackend: o.imageBackend,
    maxImagePixels: o.maxImagePixels,
    backendModule: o.backendModule,
    backendOptions: o.backendOptions,
  };
  const scheduler = new Scheduler(pool);
  const metrics = new ServerMetrics({ queueDepth: () => scheduler.depth(), inFlight: () => scheduler.inFlight(), busyWorkers: () => scheduler.busyWorkers() });
  scheduler.metrics = metrics;
  try {
    await scheduler.start(entries.map((e) => ({ id: e.id, dir: e.dir })));
  } catch (e) {
    const err = toApiError(e);
    const code = (err.code && /^BLIP\d{4}$/.test(err.code) ? err.code : 'BLIP5903') as BlipCode;
    throw new BlipError(code, err.message.replace(/^(cannot load model \S+: )BLIP\d{4}: /, '$1'));
  }

  let draining = false;
  const started = Math.floor(Date.now() / 1000);
  /**
   * Inference requests routed before draining began whose job is not submitted yet (the body is
   * still uploading, or being parsed): close() waits for them, as it does for queued ones.
   */
  const receiving = new Set<Receiving>();

  const handle = async (req: IncomingMessage, res: ServerResponse, endpoint: { name: Endpoint }): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const route = (name: Endpoint, allowed: string): boolean => {
      endpoint.name = name;
      if (method === allowed || (allowed === 'GET' && method === 'HEAD')) return true;
      req.resume();
      throw new ApiError(405, `${method} ${path} is not allowed; use ${allowed}`, 'invalid_request_error', 'method_not_allowed', null, { Allow: allowed });
    };
    if (draining) res.setHeader('Connection', 'close');
    switch (path) {
      case '/health':
        route('health', 'GET');
        return sendJson(res, draining ? 503 : 200, {
          status: draining ? 'draining' : 'ok',
          models: entries.map((e) => e.id),
          queue_depth: scheduler.totalQueued,
          in_flight: scheduler.totalRunning,
          uptime_s: Math.floor(Date.now() / 1000) - started,
        });
      case '/metrics':
        route('metrics', 'GET');
        return sendText(res, 200, metrics.registry.render(), 'text/plain; version=0.0.4; charset=utf-8');
      case '/v1/models':
        route('models', 'GET');
        return sendJson(res, 200, { object: 'list', data: entries.map((e) => modelCard(e, scheduler.providers(e.id))) });
      case '/v1/chat/completions':
        route('chat', 'POST');
        return receive(res, (r) => chat(req, res, r));
      case '/v1/itm':
        route('itm', 'POST');
        return receive(res, (r) => itm(req, res, r));
      case '/v1/embeddings':
        route('embeddings', 'POST');
        return receive(res, (r) => embeddings(req, res, r));
      default:
        if (path.startsWith('/v1/models/')) {
          route('models', 'GET');
          const raw = path.slice('/v1/models/'.length);
          let id: string;
          try {
            id = decodeURIComponent(raw);
          } catch {
            throw new ApiError(404, `The model '${raw}' does not exist (its name is not valid percent-encoding)`, 'invalid_request_error', 'model_not_found', 'model');
          }
          const e = models.get(id);
          if (!e) throw new ApiError(404, `The model '${id}' does not exist`, 'invalid_request_error', 'model_not_found', 'model');
          return sendJson(res, 200, modelCard(e, scheduler.providers(e.id)));
        }
        req.resume();
        throw new ApiError(404, `no endpoint ${method} ${path}; see GET /v1/models, POST /v1/chat/completions, /v1/itm, /v1/embeddings`, 'invalid_request_error', 'unknown_url');
    }
  };

  /** Refuse a new inference request while draining; else run `f` with the request counted as receiving until it submits its job or fails. */
  async function receive(res: ServerResponse, f: (r: Receiving) => Promise<void>): Promise<void> {
    if (draining) throw new ApiError(503, 'the server is shutting down', 'service_unavailable', 'draining');
    const r = new Receiving(res, performance.now() + o.timeoutMs);
    receiving.add(r);
    try {
      await f(r);
    } finally {
      settle(r);
    }
  }

  /** A request is received once its job is submitted (queued: the scheduler counts it), it failed, or the shutdown answered it 408. */
  function settle(r: Receiving): void {
    r.done();
    receiving.delete(r);
  }

  /** Submit a request's job; from here on the scheduler holds it (a shutdown drains it). */
  function submit<T>(r: Receiving, spec: JobSpec): JobHandle<T> {
    // answered 408 by the shutdown before its body was in: not run, and counted once (as a timeout)
    if (r.timedOut) throw new Handled(408);
    try {
      return scheduler.submit<T>(spec);
    } finally {
      settle(r);
    }
  }

  /**
   * Wait until every request routed before the shutdown has submitted its job (or failed). One
   * still receiving --timeout-ms after it arrived is answered 408, as a queued one would be.
   */
  async function receivedAll(): Promise<void> {
    await Promise.all(
      [...receiving].map(async (r) => {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), Math.max(0, r.deadline - performance.now()))));
        const isLate = await Promise.race([r.submittedOrFailed.then(() => false), late]);
        clearTimeout(timer);
        if (!isLate) return;
        r.timedOut = true;
        receiving.delete(r);
        metrics.rejected.inc({ reason: 'timeout' });
        r.res.setHeader('Connection', 'close');
        try {
          sendError(r.res, new ApiError(408, `the request body was not received within ${o.timeoutMs} ms (--timeout-ms) while the server shuts down`, 'timeout_error', 'timeout'), READ_ON_FACTOR * o.maxBodyBytes);
        } catch {
          r.res.destroy();
        }
      }),
    );
  }

  /** Run a job, cancelling it when the client goes away first. */
  function track<T>(res: ServerResponse, h: JobHandle<T>): Promise<T> {
    const onClose = () => {
      if (!res.writableFinished) h.cancel(new ApiError(499, 'the client closed the connection', 'invalid_request_error', 'client_closed'), 'client_closed');
    };
    res.once('close', onClose);
    return h.promise.finally(() => res.off('close', onClose));
  }

  async function chat(req: IncomingMessage, res: ServerResponse, r: Receiving): Promise<void> {
    const plan = await parseChat(ctx, await readJson(req, o.maxBodyBytes));
    const id = chatId();
    const created = Math.floor(Date.now() / 1000);
    const n = plan.settings.n;
    const payload: GenJob = { image: plan.image, prompt: plan.prompt, seeds: plan.seeds, stream: plan.stream };
    const transfer = [plan.image.bytes.buffer as ArrayBuffer];
    const key = plan.key;
    if (!plan.stream) {
      const h = submit<GenValue>(r, { model: plan.entry.id, task: 'generate', key, rows: n, payload, settings: plan.settings, transfer });
      const v = await track(res, h);
      return sendJson(res, 200, chatResponse(plan, v, id, created));
    }
    const sse = new EventStream(res);
    // the stream starts with the first text (or the end): an image the worker cannot decode is
    // still a plain 400, not an error event after a 200
    let opened = false;
    const open = () => {
      if (opened) return;
      opened = true;
      sse.send(chunk(plan, id, created, Array.from({ length: n }, (_, index) => ({ index, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }))));
    };
    const h = submit<GenValue>(r, {
      model: plan.entry.id,
      task: 'generate',
      key,
      rows: n,
      payload,
      settings: plan.settings,
      transfer,
      onToken: (choice, text) => {
        open();
        sse.send(chunk(plan, id, created, [{ index: choice, delta: { content: text }, logprobs: null, finish_reason: null }]));
      },
    });
    let v: GenValue;
    try {
      v = await track(res, h);
    } catch (e) {
      sse.error(toApiError(e));
      throw new Handled(toApiError(e).status);
    }
    open();
    // (logprobs, when asked, come whole with each choice's last chunk: the deltas are words, not tokens)
    v.choices.forEach((c, index) => sse.send(chunk(plan, id, created, [{ index, delta: {}, logprobs: choiceLogprobs(c), finish_reason: finishReason(c, plan) }])));
    if (plan.includeUsage) {
      const completion = v.choices.reduce((a, c) => a + c.tokenIds.length, 0);
      sse.send({ ...(chunk(plan, id, created, []) as object), usage: { prompt_tokens: plan.promptTokens, completion_tokens: completion, total_tokens: plan.promptTokens + completion } });
    }
    sse.done();
  }

  async function itm(req: IncomingMessage, res: ServerResponse, r: Receiving): Promise<void> {
    const plan = await parseItm(ctx, await readJson(req, o.maxBodyBytes));
    const h = submit<ItmValue>(r, {
      model: plan.entry.id,
      task: 'itm',
      key: 'itm',
      rows: plan.texts.length,
      payload: { image: plan.image, texts: plan.texts },
      transfer: [plan.image.bytes.buffer as ArrayBuffer],
    });
    const v = await track(res, h);
    const num = (x: number) => (Number.isFinite(x) ? x : null);
    sendJson(res, 200, {
      object: 'list',
      model: plan.entry.id,
      data: plan.texts.map((text, index) => ({ object: 'itm', index, text, itm_probability: num(v.itm[index]), itc_similarity: num(v.itc[index]) })),
      usage: { prompt_tokens: plan.tokens, total_tokens: plan.tokens },
    });
  }

  async function embeddings(req: IncomingMessage, res: ServerResponse, r: Receiving): Promise<void> {
    const plan = await parseEmbeddings(ctx, await readJson(req, o.maxBodyBytes));
    const transfer = plan.items.flatMap((it) => ('image' in it ? [it.image.bytes.buffer as ArrayBuffer] : []));
    const h = submit<EmbedValue>(r, { model: plan.entry.id, task: 'embed', key: 'embed', rows: plan.items.length, payload: { items: plan.items }, transfer });
    const v = await track(res, h);
    sendJson(res, 200, {
      object: 'list',
      model: plan.entry.id,
      data: v.embeddings.map((e, index) => ({
        object: 'embedding',
        index,
        embedding: embeddingValue(e.data, plan.format),
        ...(e.dims.length > 1 ? { dims: e.dims } : {}),
        input_type: 'image' in plan.items[index] ? 'image' : 'text',
      })),
      usage: { prompt_tokens: plan.tokens, total_tokens: plan.tokens },
    });
  }

  const http = createServer({ keepAliveTimeout: 5000 }, (req, res) => {
    const t0 = performance.now();
    const endpoint = { name: 'other' as Endpoint };
    let status: number | undefined;
    const handled = handle(req, res, endpoint).catch((e) => {
      if (e instanceof Handled) {
        status = e.status;
        return;
      }
      const err = toApiError(e);
      if (err.status >= 500) o.log?.(`error: ${req.method} ${req.url}: ${err.message}`);
      // already answered (a 408 from the shutdown while the body was uploading, its end still being
      // read): nothing more to write, and counted as what it was answered
      if (res.headersSent) return;
      // (refused while draining, here or by the scheduler for a request read before the signal)
      if (err.code === 'draining') {
        metrics.rejected.inc({ reason: 'draining' });
        res.setHeader('Connection', 'close');
      }
      if (err.status === 499) {
        status = 499;
        res.destroy();
        return;
      }
      // the connection closed before the body was read: a client gone, as one gone after its job was
      // submitted (which the cancel counted), unless it closed on a malformed request (its 400 written)
      if (err.code === 'aborted' || (err.code === 'bad_body' && req.socket.destroyed)) {
        if (malformed.has(req.socket)) status = 400;
        else {
          metrics.rejected.inc({ reason: 'client_closed' });
          status = 499;
        }
        res.destroy();
        return;
      }
      try {
        sendError(res, err, READ_ON_FACTOR * o.maxBodyBytes);
      } catch {
        res.destroy();
      }
    });
    // counted once the connection is done and the handling has settled: a client that went away is
    // a 499 only once the cancelled job has said so (the default 200 was counted before)
    res.once('close', () => {
      void handled.then(() => {
        metrics.requests.inc({ endpoint: endpoint.name, status: String(status ?? res.statusCode) });
        metrics.latency.observe((performance.now() - t0) / 1000, { endpoint: endpoint.name });
      });
    });
  });
  /** Connections answered 400 bad_request by clientError (a request may be in its handler, reading its body). */
  const malformed = new WeakSet<object>();
  http.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // the connection ended before the request did (a client gone mid-upload): nobody to answer
    if (err.code === 'HPE_INVALID_EOF_STATE') return void socket.destroy();
    malformed.add(socket);
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n{"error":{"message":"malformed HTTP request","type":"invalid_request_error","param":null,"code":"bad_request"}}');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', (e) => {
      reject(new BlipError('BLIP5902', `cannot listen on ${o.host}:${o.port ?? 0} (${(e as NodeJS.ErrnoException).code ?? e.message})`));
    });
    http.listen(o.port ?? 0, o.host, () => resolve());
  }).catch(async (e) => {
    await scheduler.close();
    throw e;
  });
  const addr = http.address() as AddressInfo;
  const hostForUrl = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  let closing: Promise<void> | undefined;
  const server: BlipServer = {
    url: `http://${hostForUrl}:${addr.port}`,
    port: addr.port,
    host: addr.address,
    models: entries,
    metrics,
    scheduler,
    http,
    get draining() {
      return draining;
    },
    get receiving() {
      return receiving.size;
    },
    close() {
      if (closing) return closing;
      draining = true;
      closing = (async () => {
        const closed = new Promise<void>((r) => http.close(() => r()));
        http.closeIdleConnections();
        // only new requests are refused: those that arrived before are still being received
        await receivedAll();
        await scheduler.drain();
        // The answers are being written. A keep-alive socket goes idle once its answer is out (one
        // that began before the drain was not told Connection: close): close those as they do,
        // and whatever is left after a second (a client that does not read).
        const idle = setInterval(() => http.closeIdleConnections(), 20);
        const t = setTimeout(() => http.closeAllConnections(), 1000);
        await closed;
        clearInterval(idle);
        clearTimeout(t);
      })();
      return closing;
    },
  };
  return server;
}

/** An inference request between its routing and the submission of its job. */
class Receiving {
  readonly submittedOrFailed: Promise<void>;
  done!: () => void;
  /** Answered 408 by a shutdown that stopped waiting for its body: its job is never submitted. */
  timedOut = false;
  constructor(
    readonly res: ServerResponse,
    /** performance.now() past which a shutdown stops waiting for it (its arrival + --timeout-ms). */
    readonly deadline: number,
  ) {
    this.submittedOrFailed = new Promise<void>((resolve) => (this.done = resolve));
  }
}

/** Thrown once an error was already written (to an event stream, or a 408 by the shutdown). */
class Handled extends Error {
  constructor(readonly status: number) {
    super('handled');
  }
}

function modelCard(e: ModelEntry, providers: Record<string, string>): unknown {
  const m = e.manifest;
  return {
    id: e.id,
    object: 'model',
    created: e.created,
    owned_by: 'blip-graph',
    family: m.family,
    task: m.task,
    outputs: m.outputs.map((x) => x.task),
    endpoints: [...(e.tasks.generate ? ['/v1/chat/completions'] : []), ...(e.tasks.itm || e.tasks.itc ? ['/v1/itm'] : []), ...(e.tasks.itc ? ['/v1/embeddings'] : [])],
    prompt: e.style ? { kind: e.style.kind, required: e.style.required, what: e.style.what, ...(e.style.none ? { none: true } : {}) } : undefined,
    context_length: e.contextLength ?? null,
    dtype: m.dtype,
    providers,
  };
}
