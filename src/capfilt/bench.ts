// CapFilt throughput: images/s of `blip capfilt` in one process against N BullMQ workers on this
// machine, for each model pair given. Builds img2dataset-like shards of synthetic JPEGs, runs the
// real CLI (dist/, so build first), checks that every mode wrote the same bytes, and prints a table.
//
//   npm run build
//   node dist/src/capfilt/bench.js --models tiny:CAP_DIR:ITM_DIR [--models base:CAP_DIR:ITM_DIR]
//       [--images 256] [--shards 8] [--image-size 384] [--batch-size 8] [--captions-per-image 1]
//       [--workers 2] [--threads N] [--redis URL] [--device cpu] [--keep DIR]
//
// The single process gets --threads onnxruntime threads per session (default: the machine's
// cores), each worker threads / workers, so both modes use the same cores.
// Wall time counts from the start of the command (single) or of the workers (after the enqueue)
// until they exit, so it includes process start and model loading; with few images that dominates.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import tar from 'tar-stream';

const here = dirname(fileURLToPath(import.meta.url));

function repoRoot(): string {
  let d = here;
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) throw new Error('package.json not found');
    d = up;
  }
  return d;
}
const ROOT = repoRoot();
const BLIP = join(ROOT, 'bin', 'blip.js');

async function buildShards(dir: string, images: number, shards: number, size: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const per = Math.ceil(images / shards);
  for (let s = 0; s < shards; s++) {
    const pack = tar.pack();
    const chunks: Buffer[] = [];
    const done = (async () => {
      for await (const c of pack) chunks.push(c as Buffer);
    })();
    for (let i = 0; i < per && s * per + i < images; i++) {
      const key = `${String(s).padStart(5, '0')}${String(i).padStart(4, '0')}`;
      const jpg = await sharp({ create: { width: size, height: size, channels: 3, background: { r: (i * 37) % 256, g: (s * 91) % 256, b: 128 }, noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
        .jpeg({ quality: 90 })
        .toBuffer();
      pack.entry({ name: `${key}.jpg`, mtime: new Date(0) }, jpg);
      pack.entry({ name: `${key}.txt`, mtime: new Date(0) }, Buffer.from(`synthetic photo ${key}`));
      pack.entry({ name: `${key}.json`, mtime: new Date(0) }, Buffer.from(JSON.stringify({ key, url: `https://example.com/${key}.jpg` })));
    }
    pack.finalize();
    await done;
    await writeFile(join(dir, `${String(s).padStart(5, '0')}.tar`), Buffer.concat(chunks));
  }
}

interface Proc {
  exited: Promise<number | null>;
  stderr: string[];
  kill(sig: NodeJS.Signals): void;
  waitFor(re: RegExp): Promise<void>;
}

function run(args: string[], cmd = process.execPath): Proc {
  const child = spawn(cmd, cmd === process.execPath ? [BLIP, ...args] : args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  const watchers: Array<[RegExp, () => void]> = [];
  const onLine = (l: string): void => {
    stderr.push(l);
    for (const w of watchers.splice(0)) (w[0].test(l) ? w[1] : () => watchers.push(w))();
  };
  for (const s of [child.stdout!, child.stderr!]) {
    let rest = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => {
      const lines = (rest + c).split('\n');
      rest = lines.pop()!;
      lines.forEach(onLine);
    });
  }
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return {
    exited,
    stderr,
    kill: (sig) => child.kill(sig),
    waitFor: (re) =>
      stderr.some((l) => re.test(l))
        ? Promise.resolve()
        : new Promise((res, rej) => {
            watchers.push([re, res]);
            void exited.then((c) => rej(new Error(`exited (${c}) before ${re}:\n${stderr.slice(-20).join('\n')}`)));
          }),
  };
}

async function digest(dir: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (d: string): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else h.update(relative(dir, p).split(sep).join('/')).update(await readFile(p));
    }
  };
  await walk(dir);
  return h.digest('hex');
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

interface Row {
  models: string;
  mode: string;
  images: number;
  seconds: number;
  imagesPerSecond: number;
  identical: boolean;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      models: { type: 'string', multiple: true },
      images: { type: 'string', default: '256' },
      shards: { type: 'string', default: '8' },
      'image-size': { type: 'string', default: '384' },
      'batch-size': { type: 'string', default: '8' },
      'captions-per-image': { type: 'string', default: '1' },
      workers: { type: 'string', default: '2' },
      threads: { type: 'string' },
      redis: { type: 'string' },
      device: { type: 'string', default: 'cpu' },
      keep: { type: 'string' },
    },
  });
  const sets = (v.models ?? []).map((m) => {
    const [name, cap, itm] = m.split(':');
    if (!name || !cap || !itm) throw new Error(`--models expects NAME:CAPTIONER_DIR:ITM_DIR, got '${m}'`);
    // the children run in the repository root: folders given relative to where this was started
    return { name, cap: resolve(cap), itm: resolve(itm) };
  });
  if (!sets.length) throw new Error('give at least one --models NAME:CAPTIONER_DIR:ITM_DIR');
  if (!existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('dist/ is missing: run npm run build first');
  const workers = Number(v.workers);
  const threads = Number(v.threads ?? cpus().length);
  const perWorker = Math.max(1, Math.floor(threads / workers));
  const work = v.keep ?? (await mkdtemp(join(tmpdir(), 'capfilt-bench-')));
  const input = join(work, 'shards');
  await buildShards(input, Number(v.images), Number(v.shards), Number(v['image-size']));

  let redisUrl = v.redis;
  let redis: Proc | undefined;
  if (!redisUrl) {
    if (spawnSync('redis-server', ['--version']).error) throw new Error('redis-server not found: install it or pass --redis URL');
    const port = await freePort();
    redis = run(['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], 'redis-server');
    await redis.waitFor(/Ready to accept connections/);
    redisUrl = `redis://127.0.0.1:${port}`;
  }

  const rows: Row[] = [];
  try {
    for (const m of sets) {
      const common = ['--captioner', m.cap, '--filter', m.itm, '--input', input, '--batch-size', v['batch-size']!, '--captions-per-image', v['captions-per-image']!];
      const stats = async (out: string): Promise<number> => JSON.parse(await readFile(join(out, 'stats.json'), 'utf8')).images_ok as number;

      const single = join(work, `${m.name}-single`);
      await rm(single, { recursive: true, force: true });
      let t0 = performance.now();
      const p = run(['capfilt', ...common, '--output', single, '--device', v.device!, '--threads', String(threads), '--quiet']);
      const code = await p.exited;
      if (code !== 0) throw new Error(`blip capfilt failed (${code}):\n${p.stderr.join('\n')}`);
      const s1 = (performance.now() - t0) / 1000;
      const n1 = await stats(single);
      const ref = await digest(single);
      rows.push({ models: m.name, mode: `1 process x ${threads} threads`, images: n1, seconds: s1, imagesPerSecond: n1 / s1, identical: true });

      const queued = join(work, `${m.name}-workers`);
      await rm(queued, { recursive: true, force: true });
      const queue = `capfilt-bench-${m.name}-${process.pid}`;
      const e = run(['capfilt', 'enqueue', '--redis', redisUrl!, '--queue', queue, ...common, '--output', queued]);
      if ((await e.exited) !== 0) throw new Error(`enqueue failed:\n${e.stderr.join('\n')}`);
      t0 = performance.now();
      const ws = Array.from({ length: workers }, () =>
        run(['capfilt', 'worker', '--redis', redisUrl!, '--queue', queue, '--device', v.device!, '--threads', String(perWorker), '--exit-when-idle']),
      );
      const codes = await Promise.all(ws.map((w) => w.exited));
      if (codes.some((c) => c !== 0)) throw new Error(`a worker failed:\n${ws.map((w) => w.stderr.join('\n')).join('\n---\n')}`);
      const s2 = (performance.now() - t0) / 1000;
      const n2 = await stats(queued);
      rows.push({ models: m.name, mode: `${workers} workers x ${perWorker} threads`, images: n2, seconds: s2, imagesPerSecond: n2 / s2, identical: (await digest(queued)) === ref });
    }
  } finally {
    redis?.kill('SIGTERM');
    if (!v.keep) await rm(work, { recursive: true, force: true });
  }
  process.stdout.write(`CapFilt on ${cpus().length} x ${cpus()[0]?.model ?? 'CPU'}, device ${v.device}, ${v.images} images of ${v['image-size']}px in ${v.shards} shards, batch ${v['batch-size']}, K=${v['captions-per-image']}\n\n`);
  process.stdout.write('| models | mode | images | seconds | images/s | same bytes as 1 process |\n|---|---|---|---|---|---|\n');
  for (const r of rows) process.stdout.write(`| ${r.models} | ${r.mode} | ${r.images} | ${r.seconds.toFixed(1)} | ${r.imagesPerSecond.toFixed(2)} | ${r.identical ? 'yes' : 'NO'} |\n`);
  process.stdout.write('\n' + JSON.stringify(rows) + '\n');
}

main().catch((e) => {
  process.stderr.write(`capfilt bench: ${(e as Error).message}\n`);
  process.exit(1);
});
