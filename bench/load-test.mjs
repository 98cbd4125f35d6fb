#!/usr/bin/env node
// Load test of `blip serve` on loopback: N concurrent clients (default 32) for D seconds (default
// 60) send captioning requests (POST /v1/chat/completions, one held-out demo image each, rotating
// over 32 images) to the demo model, once per --max-batch setting (default 1 and 16), so the gain
// of dynamic batching over batch size 1 is measured on the same machine in the same run.
// Reports throughput, p50/p99 latency, status codes (5xx must be 0), the server's resident memory
// (sampled every 0.5 s: start, peak, end) and the server's own batch-size histogram.
//
//   npm run build && node bench/load-test.mjs [--model DIR] [--connections 32] [--duration 60]
//                                             [--batches 1,16] [--threads N] [--json out.json]
//
// Without --model the demo checkpoint (demo/model) is compiled into .blip-cache/serve-demo once.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const { values: v } = parseArgs({
  options: {
    model: { type: 'string' },
    connections: { type: 'string', default: '32' },
    duration: { type: 'string', default: '60' },
    batches: { type: 'string', default: '1,16' },
    threads: { type: 'string' },
    'max-queue': { type: 'string', default: '64' },
    'max-tokens': { type: 'string' },
    json: { type: 'string' },
  },
});
const bin = join(root, 'bin', 'blip.js');
if (!existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))) {
  console.error('build first: npm run build');
  process.exit(2);
}

let model = v.model;
if (!model) {
  model = join(root, '.blip-cache', 'serve-demo');
  if (!existsSync(join(model, 'manifest.json'))) {
    console.error(`compiling demo/model into ${model} ...`);
    const r = spawnSync(process.execPath, [bin, 'compile', 'graphs/blip2-opt.blip', '--weights', 'demo/model', '--out', model], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
}

const heldout = join(root, 'demo', 'heldout');
const images = readdirSync(heldout).filter((f) => f.endsWith('.png')).sort().slice(0, 32);
const bodies = images.map((f) => {
  const body = { model: 'demo', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${readFileSync(join(heldout, f)).toString('base64')}` } }] }] };
  if (v['max-tokens']) body.max_tokens = Number(v['max-tokens']);
  return JSON.stringify(body);
});

function rssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

async function startServer(maxBatch) {
  const args = [bin, 'serve', `demo=${model}`, '--port', '0', '--host', '127.0.0.1', '--max-batch', String(maxBatch), '--max-queue', v['max-queue'], '--quiet'];
  if (v.threads) args.push('--threads', v.threads);
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((res, rej) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) res(m[1]);
    });
    child.on('exit', (c) => rej(new Error(`server exited ${c}`)));
  });
  return { child, url, exited: new Promise((r) => child.on('exit', (code, signal) => r({ code, signal }))) };
}

function batchHistogram(metrics) {
  const rows = [...metrics.matchAll(/^blip_batch_size_bucket\{le="([^"]+)",model="demo",task="generate"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]);
  const sum = Number(/^blip_batch_size_sum\{model="demo",task="generate"\} (\S+)$/m.exec(metrics)?.[1] ?? NaN);
  const count = Number(/^blip_batch_size_count\{model="demo",task="generate"\} (\S+)$/m.exec(metrics)?.[1] ?? NaN);
  return { buckets: Object.fromEntries(rows), mean: sum / count, calls: count };
}

async function runOne(maxBatch) {
  const s = await startServer(maxBatch);
  // warm up (first session runs allocate)
  for (let i = 0; i < 4; i++) await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: bodies[i] }).then((r) => r.text());
  const rss = { start: rssKb(s.child.pid), peak: 0, samples: [] };
  const timer = setInterval(() => {
    const k = rssKb(s.child.pid);
    rss.peak = Math.max(rss.peak, k);
    rss.samples.push(k);
  }, 500);
  const r = await autocannon({
    url: `${s.url}/v1/chat/completions`,
    connections: Number(v.connections),
    duration: Number(v.duration),
    timeout: 120,
    requests: bodies.map((body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body })),
  });
  clearInterval(timer);
  rss.end = rssKb(s.child.pid);
  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  const tokens = Number(/^blip_generated_tokens_total\{model="demo"\} (\S+)$/m.exec(metrics)?.[1] ?? NaN);
  const health = await (await fetch(`${s.url}/health`)).json();
  s.child.kill('SIGTERM');
  const exit = await s.exited;
  const codes = Object.fromEntries(Object.entries(r.statusCodeStats).map(([k, x]) => [k, x.count]));
  const fivexx = Object.entries(codes).filter(([k]) => k.startsWith('5')).reduce((a, [, n]) => a + n, 0);
  return {
    maxBatch,
    requests: r.requests.total,
    rps: r.requests.total / r.duration,
    latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, mean: r.latency.average },
    codes,
    fivexx,
    errors: r.errors,
    timeouts: r.timeouts,
    tokensPerSecond: tokens / r.duration, // warm-up tokens included; they are a handful
    batch: batchHistogram(metrics),
    rssMb: { start: rss.start / 1024, peak: rss.peak / 1024, end: rss.end / 1024 },
    serverAlive: health.status === 'ok',
    exit,
    durationS: r.duration,
  };
}

const results = [];
for (const b of v.batches.split(',').map(Number)) {
  console.error(`--max-batch ${b}: ${v.connections} connections for ${v.duration} s ...`);
  const one = await runOne(b);
  console.error(JSON.stringify(one));
  results.push(one);
}
const base = results.find((r) => r.maxBatch === 1);
const env = { node: process.version, cpus: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`, memGb: Math.round(totalmem() / 2 ** 30), connections: Number(v.connections), duration: Number(v.duration), images: images.length };
const f1 = (x) => x.toFixed(1);
const lines = [
  `| --max-batch | requests | req/s | p50 ms | p99 ms | mean batch | tokens/s | 5xx | other non-2xx | errors | RSS start → peak → end (MB) |${base ? ' speed-up |' : ''}`,
  `|---|---|---|---|---|---|---|---|---|---|---|${base ? '---|' : ''}`,
  ...results.map((r) => {
    const other = Object.entries(r.codes).filter(([k]) => !k.startsWith('2') && !k.startsWith('5')).reduce((a, [, n]) => a + n, 0);
    return `| ${r.maxBatch} | ${r.requests} | ${f1(r.rps)} | ${r.latencyMs.p50} | ${r.latencyMs.p99} | ${r.batch.mean.toFixed(2)} | ${f1(r.tokensPerSecond)} | ${r.fivexx} | ${other} | ${r.errors} | ${f1(r.rssMb.start)} → ${f1(r.rssMb.peak)} → ${f1(r.rssMb.end)} |${base ? ` ${(r.rps / base.rps).toFixed(2)}x |` : ''}`;
  }),
];
console.log(lines.join('\n'));
console.log(`\n${JSON.stringify(env)}`);
if (v.json) writeFileSync(v.json, JSON.stringify({ env, results }, null, 2));
const bad = results.some((r) => r.fivexx > 0 || !r.serverAlive || r.exit.code !== 0);
process.exit(bad ? 1 : 0);
