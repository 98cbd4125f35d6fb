// `blip serve` as a user runs it: prints where it listens, serves, and on SIGTERM stops accepting,
// finishes what is running and exits 0. Usage errors exit 2, model errors 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chatBody, compiledFixture } from './helpers.js';
import { repoRoot } from '../runtime/fixtures.js';
import { Worker } from 'node:worker_threads';
import { withoutRefusedFlags } from '../../../runtime/server/scheduler.js';

const MAIN = new URL('../../../src/cli/main.js', import.meta.url).href;
const hooks = process.execArgv.flatMap((a, i, all) => (a === '--import' || a === '--loader' ? [a, all[i + 1]] : a.startsWith('--import=') ? [a] : []));
const CHILD = `const { main } = await import(${JSON.stringify(MAIN)}); process.exit(await main(JSON.parse(process.argv[1])));`;
const args = (argv: string[]) => [...hooks, '--input-type=module', '-e', CHILD, JSON.stringify(argv)];

/** `blip serve ARGV` in a child node (with `nodeFlags` before its own), once it says where it listens. */
async function startServe(argv: string[], nodeFlags: string[] = []) {
  const child = spawn(process.execPath, [...nodeFlags, ...args(argv)], { cwd: repoRoot(), stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    void exited.then((c) => reject(new Error(`exited ${c} before listening: ${err}`)));
  });
  return { child, url, exited, stderr: () => err };
}

test('usage errors exit 2, a folder that is no model exits 1 with its BLIP code', () => {
  const none = spawnSync(process.execPath, args(['serve', '--port', '0']), { encoding: 'utf8', cwd: repoRoot() });
  assert.equal(none.status, 2, none.stderr);
  assert.match(none.stderr, /give at least one compiled model directory/);
  const noPort = spawnSync(process.execPath, args(['serve', 'x']), { encoding: 'utf8', cwd: repoRoot() });
  assert.equal(noPort.status, 2);
  assert.match(noPort.stderr, /--port is required/);
  const typo = spawnSync(process.execPath, args(['serve', 'x', '--port', '0', '--max-bach', '3']), { encoding: 'utf8', cwd: repoRoot() });
  assert.equal(typo.status, 2);
  assert.match(typo.stderr, /^blip serve: unknown option '--max-bach'; did you mean '--max-batch'\?$/m);
  // a value that starts with '-' is the value (parseArgs alone calls it "ambiguous"), then range-checked
  const negative = spawnSync(process.execPath, args(['serve', 'x', '--port', '-1']), { encoding: 'utf8', cwd: repoRoot() });
  assert.equal(negative.status, 2);
  assert.match(negative.stderr, /^blip serve: --port expects an integer >= 0, got '-1'$/m);
  const noValue = spawnSync(process.execPath, args(['serve', 'x', '--port']), { encoding: 'utf8', cwd: repoRoot() });
  assert.equal(noValue.status, 2);
  assert.match(noValue.stderr, /^blip serve: --port expects a value$/m);
  const optionAsValue = spawnSync(process.execPath, args(['serve', 'x', '--port', '--quiet']), { encoding: 'utf8', cwd: repoRoot() });
  assert.equal(optionAsValue.status, 2);
  assert.match(optionAsValue.stderr, /^blip serve: --port expects a value, found an option after it \(write --port=VALUE for a value that starts with '-'\)$/m);
  const missing = spawnSync(process.execPath, args(['serve', 'test/fixtures/images', '--port', '0']), { encoding: 'utf8', cwd: repoRoot() });
  assert.equal(missing.status, 1, missing.stderr);
  assert.match(missing.stderr, /^error BLIP5001: /m);
});

test("node's process-wide flags (--max-old-space-size, --expose-gc) do not stop the workers from starting", async () => {
  const dir = await compiledFixture('blip2-opt', 'blip2-opt-a');
  const { child, url, exited, stderr } = await startServe(['serve', `opt=${dir}`, '--port', '0', '--threads', '1'], ['--max-old-space-size=2048', '--expose-gc']);
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(chatBody('opt', { max_tokens: 3 })) });
  assert.equal(res.status, 200, await res.clone().text());
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr());
});

test("a refused worker flag whose value holds spaces or ', ' is found whole in node's message", () => {
  const flags = ['--title=blip serve, main', '--expose-gc', '--enable-source-maps', '--max-old-space-size=100'];
  let error: unknown;
  try {
    void new Worker('', { eval: true, execArgv: flags }).terminate();
  } catch (e) {
    error = e;
  }
  assert.ok(error, 'node accepted process-wide flags for a worker');
  assert.deepEqual(withoutRefusedFlags(error, flags), ['--enable-source-maps']);
  assert.equal(withoutRefusedFlags(new Error('other'), flags), undefined);
});

test('SIGTERM: the running request is finished, then the process exits 0', async () => {
  const dir = await compiledFixture('blip2-opt', 'blip2-opt-a');
  const { child, url, exited, stderr } = await startServe(['serve', `opt=${dir}`, '--port', '0', '--threads', '1']);
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(chatBody('opt', { stream: true, max_tokens: 20 })),
  });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = '';
  // the first event: the batch has started
  while (!text.includes('"role":"assistant"')) {
    const { value, done } = await reader.read();
    assert.ok(!done, `the stream ended before its first event: ${text}`);
    text += dec.decode(value, { stream: true });
  }
  child.kill('SIGTERM');
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += dec.decode(value, { stream: true });
  }
  assert.match(text, /"finish_reason":"(stop|length)"/);
  assert.match(text, /data: \[DONE\]\n\n$/);
  assert.equal(await exited, 0, stderr());
  assert.match(stderr(), /SIGTERM: no new requests/);
  assert.match(stderr(), /stopped/);
});

test("without --threads, a model's workers share the physical cores; the startup line says how", async () => {
  const dir = await compiledFixture('blip2-opt', 'blip2-opt-a');
  const { defaultThreads } = await import('../../../runtime/threads.js');
  const child = spawn(process.execPath, args(['serve', `opt=${dir}`, '--port', '0', '--workers', '2']), { cwd: repoRoot(), stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const line = await new Promise<string>((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      const m = /^blip serve: model opt: .*$/m.exec(err);
      if (m) resolve(m[0]);
    });
    child.on('exit', (c) => reject(new Error(`exited ${c}: ${err}`)));
  });
  child.kill('SIGTERM');
  const per = Math.max(1, Math.floor(defaultThreads() / 2));
  assert.match(line, new RegExp(`on cpu, 2 workers × ${per} threads?$`));
});
