// bin/blip, the `blip` command: it starts node with glibc's malloc asking for transparent huge
// pages (onnxruntime's prepacked weights and arena), keeps tunables the user set, steps aside for
// BLIP_HUGE_PAGES=0, works through a symlink (npm's bin links) and execs, so a signal sent to the
// pid it was started as reaches the server itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hugePageStatus } from '../../../runtime/hugePages.js';
import { repoRoot } from '../runtime/fixtures.js';
import { compiledFixture } from '../server/helpers.js';

const LAUNCHER = join(repoRoot(), 'bin', 'blip');
const baseEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  delete env.GLIBC_TUNABLES;
  delete env.BLIP_HUGE_PAGES;
  return env;
};
/**
 * The environment without CI: onnxruntime-node's start-up does not walk a long command line when CI
 * is set (measured: a bare script loading it with 56 KB of arguments dies with SIGSEGV under 8 MiB,
 * with CI=true it does not), so the long-command-line tests would pass without the launcher there.
 */
const notCI = (): NodeJS.ProcessEnv => {
  const env = baseEnv();
  delete env.CI;
  return env;
};
const hugeLine = (out: string): string => out.trim().split('\n').find((l) => l.startsWith('huge pages:')) ?? out;

test('hugePageStatus: on with THP [always], or [madvise] plus the glibc tunable; off otherwise, saying how to turn it on', (t) => {
  if (process.platform !== 'linux') return t.skip('Linux only');
  const dir = mkdtempSync(join(tmpdir(), 'thp-'));
  try {
    const thp = (mode: string): string => {
      const f = join(dir, mode);
      writeFileSync(f, ['always', 'madvise', 'never'].map((m) => (m === mode ? `[${m}]` : m)).join(' ') + '\n');
      return f;
    };
    assert.equal(hugePageStatus({}, thp('always')).active, true);
    assert.equal(hugePageStatus({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' }, thp('never')).active, false);
    assert.equal(hugePageStatus({}, join(dir, 'missing')).active, false);
    const glibc = Boolean((process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime);
    const on = hugePageStatus({ GLIBC_TUNABLES: 'glibc.malloc.check=0:glibc.malloc.hugetlb=1' }, thp('madvise'));
    assert.equal(on.active, glibc, on.line);
    const off = hugePageStatus({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }, thp('madvise'));
    assert.equal(off.active, false);
    if (glibc) assert.match(off.line, /GLIBC_TUNABLES=glibc\.malloc\.hugetlb=1/);
    // turned off on purpose: said so, not 'start through bin/blip' (which it was)
    const optedOut = hugePageStatus({ BLIP_HUGE_PAGES: '0' }, thp('madvise'));
    assert.equal(optedOut.active, false);
    if (glibc) assert.match(optedOut.line, /^huge pages: off \(turned off by BLIP_HUGE_PAGES=0;/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bin/blip sets glibc.malloc.hugetlb=1, keeps the user\'s tunables, and leaves them alone for BLIP_HUGE_PAGES=0', (t) => {
  if (process.platform === 'win32') return t.skip('POSIX shell launcher');
  const dir = mkdtempSync(join(tmpdir(), 'launcher-'));
  try {
    const link = join(dir, 'blip'); // as npm links it into node_modules/.bin
    symlinkSync(LAUNCHER, link);
    const run = (env: NodeJS.ProcessEnv) => {
      const r = spawnSync(link, ['version', '--verbose'], { encoding: 'utf8', env, cwd: dir });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^blip-graph \d+\.\d+\.\d+\nnode /);
      return hugeLine(r.stdout);
    };
    assert.equal(run(baseEnv()), hugePageStatus({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' }).line);
    assert.equal(run({ ...baseEnv(), GLIBC_TUNABLES: 'glibc.malloc.check=0' }), hugePageStatus({ GLIBC_TUNABLES: 'glibc.malloc.check=0:glibc.malloc.hugetlb=1' }).line);
    assert.equal(run({ ...baseEnv(), GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }), hugePageStatus({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }).line);
    assert.equal(run({ ...baseEnv(), BLIP_HUGE_PAGES: '0' }), hugePageStatus({ BLIP_HUGE_PAGES: '0' }).line);
    const bad = spawnSync(link, ['version', '--nope'], { encoding: 'utf8', env: baseEnv() });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /unknown option '--nope'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bin/blip serve: the pid it was started as is node itself (exec), so SIGTERM stops it gracefully', { timeout: 120_000 }, async (t) => {
  if (process.platform !== 'linux') return t.skip('reads /proc');
  const model = await compiledFixture('blip2-opt', 'blip2-opt-a');
  const child = spawn(LAUNCHER, ['serve', `opt=${model}`, '--port', '0', '--threads', '1'], { cwd: repoRoot(), env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.after(() => void child.kill('SIGKILL')); // a failed assertion must not leave the server running
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (/listening on http/.test(out)) resolve();
    });
    void exited.then((c) => reject(new Error(`exited ${c} before listening: ${err}`)));
  });
  const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
  assert.ok(cmdline.some((a) => a.endsWith(join('bin', 'blip.js'))), cmdline.join(' '));
  // glibc parses GLIBC_TUNABLES in place at start-up, so /proc shows its ':' separators as NULs.
  const environ = readFileSync(`/proc/${child.pid}/environ`, 'utf8');
  assert.match(environ, /(^|\0)GLIBC_TUNABLES=glibc\.malloc\.hugetlb=1[:\0]glibc\.malloc\.mmap_threshold=2097152\0/, environ.split('\0').filter((e) => e.startsWith('GLIBC')).join(' '));
  child.kill('SIGTERM');
  assert.equal(await exited, 0, err);
  assert.match(err, /SIGTERM: no new requests/);
});

test('bin/blip run piped into a reader that stops early (`| head -1`) ends quietly with status 141, as on SIGPIPE', { timeout: 120_000 }, async () => {
  const model = await compiledFixture('blip-caption', 'blip-caption-a');
  // enough images that the run is still writing when the reader has gone
  const images = Array.from({ length: 400 }, () => ['--image', join(repoRoot(), 'test', 'fixtures', 'images', 'rgb_37x23.png')]).flat();
  const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'blip.js'), 'run', model, ...images, '--batch-size', '1', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  // the first line, then the reader goes away, as `head -1` does
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  child.stdout.destroy();
  assert.equal(await exited, 141, err);
  assert.doesNotMatch(err, /EPIPE|Error|at /);
});

test('the deploy image (docs/deploy/Dockerfile) installs offline-safe and sets the tunables bin/blip sets', () => {
  const docker = readFileSync(join(repoRoot(), 'docs', 'deploy', 'Dockerfile'), 'utf8');
  const launcher = readFileSync(LAUNCHER, 'utf8');
  const tunables = [...launcher.matchAll(/^\s*add_tunable (\S+) (\S+)$/gm)].map((m) => `${m[1]}=${m[2]}`);
  assert.ok(tunables.length >= 2, launcher);
  assert.match(docker, new RegExp(`^ENV GLIBC_TUNABLES=${tunables.join(':').replace(/\./g, '\\.')}$`, 'm'));
  // the first COPY carries .npmrc (onnxruntime-node-install=skip) into the `npm ci` below it
  const copy = docker.split('\n').find((l) => l.startsWith('COPY package.json'));
  assert.match(copy ?? '', /\s\.npmrc\s/);
  assert.match(readFileSync(join(repoRoot(), '.npmrc'), 'utf8'), /^onnxruntime-node-install=skip$/m);
});

test('bin/blip writes all of a large output into a pipe before it exits (process.exit would cut it at 64 KiB)', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pipe-'));
  try {
    // ~1500 problems: check --json prints well over 64 KiB
    const file = join(dir, 'many.blip');
    writeFileSync(file, `model m {\n  input image: image\n${Array.from({ length: 1500 }, (_, i) => `  node n${i}: nokind${i}(image)\n`).join('')}  output caption: generate(n0)\n}\n`);
    const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'blip.js'), 'check', '--json', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    // a slow reader: nothing is read for a while after the process has written everything
    await new Promise((r) => setTimeout(r, 1500));
    let out = '';
    for await (const chunk of child.stdout.setEncoding('utf8')) out += chunk;
    assert.equal(await exited, 1);
    assert.ok(out.length > 100_000, `${out.length} bytes`);
    const diagnostics = JSON.parse(out) as unknown[];
    assert.ok(diagnostics.length >= 1500, String(diagnostics.length));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bin/blip with a long command line (700 --text values, ~60 KB) runs under an 8 MiB stack limit, where node bin/blip.js dies in onnxruntime\'s start-up', { timeout: 120_000 }, async (t) => {
  if (process.platform !== 'linux') return t.skip('POSIX shell launcher, ulimit');
  const model = await compiledFixture('blip-itm', 'blip-itm-a');
  const image = join(repoRoot(), 'test', 'fixtures', 'images', 'photo_64x48.jpg');
  const texts = Array.from({ length: 700 }, (_, i) => ['--text', `a photograph of a small grey cat asleep on a red couch by a window, text ${i}`]).flat();
  // the soft limit most shells start with, whatever this test runner has (the hard one stays)
  const under8MiB = (command: string[]) =>
    spawnSync('/bin/sh', ['-c', 'ulimit -S -s 8192 && exec "$@"', 'sh', ...command, 'run', model, '--image', image, ...texts], { encoding: 'utf8', env: notCI(), maxBuffer: 64 << 20 });
  const viaLauncher = under8MiB([LAUNCHER]);
  assert.equal(viaLauncher.status, 0, viaLauncher.stderr);
  const records = viaLauncher.stdout.trim().split('\n').map((l) => JSON.parse(l) as { text: string; itm: number });
  assert.equal(records.length, 700);
  assert.equal(records[699].text, texts[1399]);
  // what the launcher works around: without it the same command line is a SIGSEGV
  const direct = under8MiB([process.execPath, join(repoRoot(), 'bin', 'blip.js')]);
  assert.equal(direct.signal, 'SIGSEGV', `status ${direct.status}: ${direct.stderr.slice(0, 300)}`);
});

test('bin/blip counts the command line in bytes when bash runs it in a UTF-8 locale (/bin/sh on Fedora, Arch …), where ${#arg} counts characters', { timeout: 120_000 }, async (t) => {
  if (process.platform !== 'linux') return t.skip('POSIX shell launcher, ulimit');
  if (spawnSync('bash', ['-c', 'true']).status !== 0) return t.skip('no bash');
  const model = await compiledFixture('blip-itm', 'blip-itm-a');
  const image = join(repoRoot(), 'test', 'fixtures', 'images', 'photo_64x48.jpg');
  // 120 texts of a 120-emoji word (one [UNK]: longer than BERT's 100 characters a word): ~59 KB of
  // arguments, but under 16,384 characters, the threshold
  const texts = Array.from({ length: 120 }, (_, i) => ['--text', `${'🐱'.repeat(120)} ${i}`]).flat();
  const r = spawnSync('/bin/sh', ['-c', 'ulimit -S -s 8192 && exec bash "$@"', 'sh', LAUNCHER, 'run', model, '--image', image, ...texts], {
    encoding: 'utf8',
    env: { ...notCI(), LC_ALL: 'C.UTF-8' },
    maxBuffer: 64 << 20,
  });
  assert.equal(r.status, 0, `${r.signal ?? ''} ${r.stderr.slice(0, 300)}`);
  assert.equal(r.stdout.trim().split('\n').length, 120);
});
