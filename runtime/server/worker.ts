// An inference worker: loads one compiled model (its own ONNX sessions) and runs the batches the
// HTTP thread sends. onnxruntime-node's session.run blocks the thread that calls it, so it runs
// here and the HTTP thread stays free to accept, reject and stream.
import { parentPort, workerData } from 'node:worker_threads';
import { ApiError, toApiError, type WireError } from './errors.js';
import type { ImageBytes } from './images.js';
import type { BatchMessage, EmbedJob, EmbedValue, FromWorker, GenValue, ItmValue, JobResult, LoadFn, ServedModel, ToWorker, WorkerInit } from './protocol.js';
import { toRgbImage, type DecodedImage } from '../tasks/images.js';
import type { GenerateOptions, GenerateResult } from '../tasks/generate.js';
import type { Embedding, ItmResult } from '../tasks/retrieval.js';

class Cancelled extends Error {}

/**
 * The generate call running now, and what a 'cancel' message for its batch does: abort it when
 * every request it serves is cancelled (the loop then stops before its next decoding step).
 */
let running: { batch: number; check(): void } | undefined;

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (m: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer ?? []);
/** A failed job; `imageParam`: the request field of the image it failed on (see toApiError). */
const fail = (e: unknown, imageParam?: string): { ok: false; error: WireError } => ({ ok: false, error: toApiError(e, imageParam).toWire() });

/** The request field of job i's image, where it has one image (generation, ITM, embeddings of one image). */
function imageParam(m: BatchMessage, i: number): string | undefined {
  if (m.task !== 'embed') return m.jobs[i].image.param;
  const images = m.jobs[i].items.flatMap((it) => ('image' in it ? [it.image.param] : []));
  return images.length === 1 ? images[0] : undefined;
}
const cancelledError = (): { ok: false; error: WireError } => ({ ok: false, error: new ApiError(499, 'cancelled', 'invalid_request_error', 'cancelled').toWire() });

async function main(): Promise<void> {
  let model: ServedModel;
  try {
    const mod = (await import(init.backendModule ?? new URL(import.meta.url.endsWith('.ts') ? '../model.ts' : '../model.js', import.meta.url).href)) as { load: LoadFn };
    // `options` only for a test backend module: the real load() refuses keys it does not know
    const opts = { device: init.device, threads: init.threads, deviceId: init.deviceId, imageBackend: init.imageBackend, ...(init.backendModule ? { options: init.backendOptions } : {}) };
    model = await mod.load(init.dir, opts);
  } catch (e) {
    post({ type: 'fatal', error: toApiError(e).toWire() });
    return;
  }
  const providers: Record<string, string> = {};
  for (const [k, v] of Object.entries(model.providers ?? {})) if (v) providers[k] = v;
  post({ type: 'ready', providers });

  // one batch at a time, in arrival order
  let chain = Promise.resolve();
  port.on('message', (m: ToWorker) => {
    // at once, not after the batch it is about: it arrives between two of its decoding steps
    if (m.type === 'cancel') {
      if (running?.batch === m.batch) running.check();
      return;
    }
    chain = chain.then(async () => {
      if (m.type === 'close') {
        await model.close().catch(() => undefined);
        post({ type: 'closed' });
        port.close();
        return;
      }
      const t0 = performance.now();
      const out = await runBatch(model, m);
      const transfer: ArrayBuffer[] = [];
      for (const r of out.results) if (r.ok && 'embeddings' in r.value) for (const e of r.value.embeddings) transfer.push(e.data.buffer as ArrayBuffer);
      post({ type: 'result', batch: m.id, results: out.results, ms: performance.now() - t0, tokens: out.tokens }, transfer);
    });
  });
}

async function decodeAll<T extends { image: ImageBytes }>(jobs: T[], results: Array<JobResult | undefined>): Promise<Array<DecodedImage | undefined>> {
  const out: Array<DecodedImage | undefined> = [];
  for (let i = 0; i < jobs.length; i++) {
    try {
      out.push(await toRgbImage({ name: jobs[i].image.name, bytes: jobs[i].image.bytes }, i, { maxPixels: init.maxImagePixels }));
    } catch (e) {
      out.push(undefined);
      results[i] = fail(e, jobs[i].image.param);
    }
  }
  return out;
}

async function runBatch(model: ServedModel, m: BatchMessage): Promise<{ results: JobResult[]; tokens: number }> {
  const flags = new Int32Array(m.cancel);
  const cancelled = (i: number) => Atomics.load(flags, i) !== 0;
  const results: Array<JobResult | undefined> = new Array(m.jobs.length).fill(undefined);
  let tokens = 0;
  try {
    if (m.task === 'generate') tokens = await runGenerate(model, m, results, cancelled);
    else if (m.task === 'itm') await runItm(model, m, results);
    else await runEmbed(model, m, results);
  } catch (e) {
    for (let i = 0; i < results.length; i++) if (!results[i]) results[i] = fail(e, imageParam(m, i));
  }
  return { results: results.map((r, i) => (cancelled(i) ? cancelledError() : (r ?? fail(new Error('no result'))))), tokens };
}

async function runGenerate(model: ServedModel, m: Extract<BatchMessage, { task: 'generate' }>, results: Array<JobResult | undefined>, cancelled: (i: number) => boolean): Promise<number> {
  const decoded = await decodeAll(m.jobs, results);
  const s = m.settings;
  let tokens = 0;
  const run = async (idx: number[]): Promise<void> => {
    const live = idx.filter((i) => decoded[i] && !cancelled(i));
    if (live.length === 0) return;
    const prompts = live.map((i) => m.jobs[i].prompt);
    const opts: GenerateOptions = {
      maxNewTokens: s.maxNewTokens,
      numReturnSequences: s.n,
      doSample: s.doSample,
      batchSize: live.length,
    };
    if (s.stop) opts.stop = s.stop;
    if (s.numBeams !== undefined) opts.numBeams = s.numBeams;
    if (s.topLogprobs !== undefined) {
      opts.logprobs = true;
      opts.topLogprobs = s.topLogprobs;
    }
    if (prompts.some((p) => p !== null)) opts.prompt = prompts.map((p) => p ?? '');
    if (s.doSample) {
      if (s.temperature !== undefined) opts.temperature = s.temperature;
      if (s.topP !== undefined) opts.topP = s.topP;
      opts.seed = live.flatMap((i) => m.jobs[i].seeds);
    }
    let streamed = false;
    // every request cancelled: stop decoding (greedy and sampling see it at their next token here;
    // beam search, which calls onToken only once it is done, through the signal: see `running`)
    const abort = new AbortController();
    opts.signal = abort.signal;
    running = { batch: m.id, check: () => live.every(cancelled) && abort.abort(new Cancelled('every request of the batch was cancelled')) };
    opts.onToken = (row, text) => {
      if (live.every(cancelled)) throw new Cancelled('every request of the batch was cancelled');
      const j = live[Math.floor(row / s.n)];
      if (text && m.jobs[j].stream && !cancelled(j)) {
        streamed = true;
        post({ type: 'token', batch: m.id, job: j, choice: row % s.n, text });
      }
    };
    let out: GenerateResult[];
    try {
      out = await model.generate(live.map((i) => decoded[i]!), opts).finally(() => (running = undefined));
    } catch (e) {
      if (e instanceof Cancelled) return;
      const api = toApiError(e);
      // a client error in a shared batch: find whose it is by running each request alone
      if (api.status < 500 && live.length > 1 && !streamed) {
        for (const i of live) await run([i]).catch((err) => (results[i] = fail(err, imageParam(m, i))));
        return;
      }
      throw e;
    }
    live.forEach((i, b) => {
      const r = out[b];
      const seqs = r.sequences ?? [r];
      const value: GenValue = { choices: seqs.map((q) => ({ text: q.text, tokenIds: q.tokenIds, ...(q.stop !== undefined ? { stop: q.stop } : {}), ...(q.logprobs ? { logprobs: q.logprobs } : {}) })) };
      for (const q of seqs) tokens += q.tokenIds.length;
      results[i] = { ok: true, value };
    });
  };
  await run(m.jobs.map((_, i) => i));
  return tokens;
}

async function runItm(model: ServedModel, m: Extract<BatchMessage, { task: 'itm' }>, results: Array<JobResult | undefined>): Promise<void> {
  const decoded = await decodeAll(m.jobs, results);
  const live = m.jobs.map((_, i) => i).filter((i) => decoded[i]);
  if (live.length === 0) return;
  const run = async (idx: number[]): Promise<void> => {
    const images = idx.flatMap((i) => m.jobs[i].texts.map(() => decoded[i]!));
    const texts = idx.flatMap((i) => m.jobs[i].texts);
    let out: ItmResult[];
    try {
      out = await model.itm(images, texts, { batchSize: Math.max(init.maxBatch, 1) });
    } catch (e) {
      if (toApiError(e).status < 500 && idx.length > 1) {
        for (const i of idx) await run([i]).catch((err) => (results[i] = fail(err, imageParam(m, i))));
        return;
      }
      throw e;
    }
    let k = 0;
    for (const i of idx) {
      const n = m.jobs[i].texts.length;
      const mine = out.slice(k, k + n);
      k += n;
      const value: ItmValue = { itm: mine.map((r) => r.itm), itc: mine.map((r) => r.itc) };
      results[i] = { ok: true, value };
    }
  };
  await run(live);
}

async function runEmbed(model: ServedModel, m: Extract<BatchMessage, { task: 'embed' }>, results: Array<JobResult | undefined>): Promise<void> {
  // decode every image item; a job with an undecodable image fails alone
  const decoded: Array<Array<DecodedImage | undefined>> = [];
  for (let i = 0; i < m.jobs.length; i++) {
    const row: Array<DecodedImage | undefined> = [];
    for (const it of m.jobs[i].items) {
      if (!('image' in it)) {
        row.push(undefined);
        continue;
      }
      try {
        row.push(await toRgbImage({ name: it.image.name, bytes: it.image.bytes }, 0, { maxPixels: init.maxImagePixels }));
      } catch (e) {
        results[i] = fail(e, it.image.param);
        break;
      }
    }
    decoded.push(row);
  }
  const run = async (idx: number[]): Promise<void> => {
    const imgs: DecodedImage[] = [];
    const texts: string[] = [];
    for (const i of idx) (m.jobs[i] as EmbedJob).items.forEach((it, k) => ('image' in it ? imgs.push(decoded[i][k]!) : texts.push(it.text)));
    const bs = { batchSize: Math.max(init.maxBatch, 1) };
    let ei: Embedding[] = [];
    let et: Embedding[] = [];
    try {
      if (imgs.length) ei = await model.embedImages(imgs, bs);
      if (texts.length) et = await model.embedTexts(texts, bs);
    } catch (e) {
      if (toApiError(e).status < 500 && idx.length > 1) {
        for (const i of idx) await run([i]).catch((err) => (results[i] = fail(err, imageParam(m, i))));
        return;
      }
      throw e;
    }
    let a = 0;
    let b = 0;
    for (const i of idx) {
      const value: EmbedValue = { embeddings: m.jobs[i].items.map((it) => ('image' in it ? ei[a++] : et[b++])).map((e) => ({ data: e.data, dims: e.dims })) };
      results[i] = { ok: true, value };
    }
  };
  const live = m.jobs.map((_, i) => i).filter((i) => !results[i]);
  if (live.length) await run(live);
}

main().catch((e) => post({ type: 'fatal', error: toApiError(e).toWire() }));
