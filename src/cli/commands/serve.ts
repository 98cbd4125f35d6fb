import { parseOptions } from '../parseOptions.js';
import { UsageError, type Command } from '../Command.js';
import { checkDeviceOption, checkThreadsOption } from '../deviceOption.js';
import { checkImageBackendOption } from '../imageBackendOption.js';

const HELP = `Usage: blip serve OUTDIR [OUTDIR ...] --port N [options]

Serve compiled models (blip compile output) over HTTP with an OpenAI-compatible API:

  POST /v1/chat/completions   generating models (caption, VQA, instructions): a user message with
                              one image_url part (data:image/...;base64,...) and optional text
                              (the prompt / question / instruction); max_tokens, temperature,
                              top_p, n, seed, stop, logprobs / top_logprobs, stream
                              (server-sent events)
  POST /v1/itm                retrieval models: {"model", "image", "texts": [...]} -> ITM
                              probabilities and ITC similarities
  POST /v1/embeddings         retrieval models with an ITC head: texts and image parts -> embeddings
  GET  /v1/models             the served models ("model" in requests is the id shown there)
  GET  /health, GET /metrics  liveness (503 while shutting down), Prometheus metrics

A model's id is its folder's name; name it yourself with NAME=OUTDIR. Inference runs in worker
threads; concurrent requests for the same model and settings share model calls (dynamic batching).
SIGTERM or Ctrl-C: stop accepting, finish queued and running requests, exit 0.

Options:
  --port N            TCP port (required; 0 picks a free one and prints it)
  --host H            address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)
  --device D          cpu | cuda | tensorrt | webgpu | auto (default cpu)
  --threads N         ONNX Runtime intra-op threads per worker (default: the physical cores
                      divided among the workers of a model, at least one)
  --image-backend B   resize and normalise images as transformers' pil (default) or torchvision
                      image processor does (docs/api.md)
  --workers N         inference workers per model, each with its own sessions (default 1)
  --max-batch N       rows (images x n, ITM pairs, embedding inputs) per model call (default 8)
  --max-queue N       requests waiting for a worker, all models together; beyond it: 429 with
                      Retry-After (default 64)
  --timeout-ms N      a request not done after N ms (queue time included) is cancelled: 408
                      (default 120000)
  --max-body BYTES    request body limit (default 20971520 = 20 MiB); also the image size limit
  --max-image-pixels N  the most pixels (width x height) an image may decode to; larger ones are
                      refused by their header, before decoding: 400 (default 50000000)
  --max-text-chars N  the most characters of one prompt or text, checked before tokenizing: 400
                      beyond it (default 32768)
  --allow-files DIR   accept file:// image URLs for files inside DIR (never outside it)
  --quiet             no log lines on stderr

Examples:
  blip serve out/blip2-opt --port 8000
  blip serve caption=out/blip-caption itm=out/blip-itm --port 8000 --max-batch 16
  curl localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model":"caption","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,..."}}]}]}'

docs/serve.md has the request and response shapes, the batching design and the metrics.`;

const OPTIONS = {
  port: { type: 'string' },
  host: { type: 'string' },
  device: { type: 'string' },
  threads: { type: 'string' },
  'image-backend': { type: 'string' },
  workers: { type: 'string' },
  'max-batch': { type: 'string' },
  'max-queue': { type: 'string' },
  'timeout-ms': { type: 'string' },
  'max-body': { type: 'string' },
  'max-image-pixels': { type: 'string' },
  'max-text-chars': { type: 'string' },
  'allow-files': { type: 'string' },
  quiet: { type: 'boolean' },
} as const;

function int(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min) throw new UsageError(`--${name} expects an integer >= ${min}, got '${v}'`);
  return n;
}

const command: Command = {
  name: 'serve',
  summary: 'serve compiled models over an OpenAI-compatible HTTP API',
  help: HELP,
  async run(argv) {
    const parsed = parseOptions(argv, OPTIONS, true);
    const v = parsed.values;
    if (parsed.positionals.length === 0) throw new UsageError('give at least one compiled model directory (OUTDIR or NAME=OUTDIR)');
    if (v.port === undefined) throw new UsageError('--port is required (0 picks a free port)');
    const port = int('port', v.port, 0)!;
    if (port > 65535) throw new UsageError(`--port expects 0..65535, got '${v.port}'`);
    checkDeviceOption(v.device);
    const imageBackend = checkImageBackendOption(v['image-backend']);
    const log = v.quiet ? undefined : (line: string) => process.stderr.write(`blip serve: ${line}\n`);
    const { startServer, parseModelArg } = await import('../../../runtime/server/index.js');
    const workers = int('workers', v.workers, 1) ?? 1;
    // Several workers of one model run at once: by default they share the cores rather than each
    // taking all of them (spinning thread pools on more threads than cores slow everyone down).
    const { defaultThreads } = await import('../../../runtime/threads.js');
    const threads = checkThreadsOption(int('threads', v.threads, 1)) ?? Math.max(1, Math.floor(defaultThreads() / workers));
    const server = await startServer({
      models: parsed.positionals.map(parseModelArg),
      host: v.host ?? '127.0.0.1',
      port,
      device: v.device,
      threads,
      imageBackend,
      workers,
      maxBatch: int('max-batch', v['max-batch'], 1),
      maxQueue: int('max-queue', v['max-queue'], 1),
      timeoutMs: int('timeout-ms', v['timeout-ms'], 1),
      maxBodyBytes: int('max-body', v['max-body'], 1),
      maxImagePixels: int('max-image-pixels', v['max-image-pixels'], 1),
      maxTextChars: int('max-text-chars', v['max-text-chars'], 1),
      allowFiles: v['allow-files'],
      log,
    });
    for (const m of server.models) log?.(`model ${m.id}: ${m.manifest.family} ${m.manifest.task} (${m.dir}) on ${Object.values(server.scheduler.providers(m.id))[0] ?? 'cpu'}, ${workers} worker${workers === 1 ? '' : 's'} × ${threads} thread${threads === 1 ? '' : 's'}`);
    const stopped = new Promise<void>((resolve) => {
      let signals = 0;
      const onSignal = (sig: string) => {
        if (++signals > 1) {
          log?.(`${sig} again: stopping now`);
          process.exit(130);
        }
        const uploading = server.receiving;
        log?.(`${sig}: no new requests; finishing ${server.scheduler.totalQueued + server.scheduler.totalRunning} queued or running${uploading ? ` and ${uploading} still being received` : ''} (signal again to stop now)`);
        void server.close().then(() => {
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
          resolve();
        });
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
    // the one line on stdout: where to connect (scripts read it, e.g. with --port 0); printed once
    // the signal handlers are in place, so a script that signals on reading it stops us gracefully
    process.stdout.write(`listening on ${server.url}\n`);
    await stopped;
    log?.('stopped');
    return 0;
  },
};

export default command;
