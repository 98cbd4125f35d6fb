// blip check, fmt and graph as a user runs them: exit codes, what goes to stdout and stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runCliBatch, type CliResult } from '../cliHarness.js';

type Result = CliResult;
const runAll = runCliBatch;

const dir = mkdtempSync(join(tmpdir(), 'blip-cli-'));
const bad = join(dir, 'bad.blip');
writeFileSync(bad, 'model m {\n  input image: image\n  node v: vitt(image) @ "vision_model"\n  output o: generate(v)\n}\n');

const messy = join(dir, 'messy.blip');
writeFileSync(messy, 'model m{input image:image\nnode v:vit(image)@"v"\noutput o:generate(v)}');
chmodSync(messy, 0o640);
const three = join(dir, 'three.blip'); // three errors, in this order
writeFileSync(three, 'model m {\n input p: txt\n node d: bert(p) @ "x" { causal: true, widht: 3 }\n output o: generat(d)\n}\n');
const warnOnly = join(dir, 'warn.blip'); // one warning (BLIP2031: input 'extra' is never read), no error
writeFileSync(
  warnOnly,
  'model m {\n  input image: image\n  input prompt: text\n  input extra: text\n  node vision: vit(image) @ "vision_model"\n  node decoder: bert(prompt, cross: vision) @ "text_decoder" { causal: true }\n  output caption: generate(decoder)\n}\n',
);
const broken = join(dir, 'broken.blip');
writeFileSync(broken, 'model m { node v: vit(image @ "v" }\n');

const BATCH: Record<string, string[]> = {
  clean: ['check', 'graphs/blip2-opt.blip', 'graphs/pinned/instructblip-vicuna-7b.blip'],
  bad: ['check', bad],
  warnOnly: ['check', warnOnly],
  warnOnlyJson: ['check', '--json', warnOnly],
  warnAndBad: ['check', warnOnly, bad],
  json: ['check', '--json', bad, 'graphs/blip-vqa.blip'],
  missing: ['check', join(dir, 'nope.blip')],
  noArgs: ['check'],
  bogus: ['check', '--bogus', bad],
  maxInline: ['check', '--max=1', bad],
  maxMissing: ['check', bad, '--max'],
  jsonMax: ['check', '--json', '--max', '1', three, bad],
  jsonAll: ['check', '--json', three],
  textMax: ['check', '--max', '1', three],
  fmt: ['fmt', messy],
  fmtCheck1: ['fmt', '--check', messy],
  fmtWrite: ['fmt', '--write', messy],
  fmtCheck2: ['fmt', '--check', messy],
  fmtCheckGraphs: ['fmt', '--check', 'graphs/blip-itm.blip', 'graphs/pinned/blip2-flan-t5-xxl.blip'],
  fmtBroken: ['fmt', broken],
  dot: ['graph', 'graphs/instructblip-t5.blip'],
  json2: ['graph', '--format', 'json', '--model', 'blip2_opt_2_7b', 'graphs/pinned/blip2-opt-2.7b.blip'],
  otherWeights: ['graph', '--format', 'mermaid', 'graphs/blip2-opt.blip', '--weights', 'test/fixtures/blip-caption-a/checkpoint'],
};
const names = Object.keys(BATCH);
let cache: Record<string, Result> | undefined;
async function run(name: string): Promise<Result> {
  if (!cache) {
    const rs = runAll(names.map((n) => BATCH[n]));
    cache = Object.fromEntries(names.map((n, i) => [n, rs[i]]));
  }
  return cache[name];
}

test('blip check: clean graphs exit 0 and print nothing', async () => {
  const r = await run('clean');
  assert.deepEqual(r, { code: 0, out: '', err: '' });
});

test('blip check: errors exit 1 with located diagnostics on stderr, no stack trace', async () => {
  const r = await run('bad');
  assert.equal(r.code, 1);
  assert.equal(r.out, '');
  assert.match(r.err, new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:11 - error BLIP2010: unknown node kind 'vitt'`));
  assert.match(r.err, /\n {4}\| {11}\^~~~\n/);
  assert.doesNotMatch(r.err, /at .*\.(js|ts):\d+/);
});

test('blip check: a file with warnings only exits 0, the warnings on stderr (in --json on stdout); with an error in another file, 1', async () => {
  const text = await run('warnOnly');
  assert.equal(text.code, 0);
  assert.equal(text.out, '');
  assert.match(text.err, /warn\.blip:4:9 - warning BLIP2031: /);
  assert.doesNotMatch(text.err, /error/);
  const json = await run('warnOnlyJson');
  assert.equal(json.code, 0);
  assert.deepEqual(
    (JSON.parse(json.out) as Array<{ code: string; severity: string }>).map((d) => `${d.severity} ${d.code}`),
    ['warning BLIP2031'],
  );
  assert.equal((await run('warnAndBad')).code, 1);
});

test('blip check --json: the diagnostics as JSON on stdout', async () => {
  const r = await run('json');
  assert.equal(r.code, 1);
  const ds = JSON.parse(r.out);
  assert.deepEqual(ds.map((d: { code: string; line: number; column: number }) => [d.code, d.line, d.column]), [['BLIP2010', 3, 11]]);
});

test('blip check --max N: at most N diagnostics per file, the first in file order, in text and --json alike', async () => {
  const all = await run('jsonAll');
  assert.equal(all.code, 1);
  // --json without --max: every diagnostic (the text's default of 20 is for people)
  assert.deepEqual(JSON.parse(all.out).map((d: { code: string; line: number }) => [d.code, d.line]), [['BLIP2011', 2], ['BLIP3001', 3], ['BLIP2012', 4]]);
  const firstOfEach = await run('jsonMax');
  assert.equal(firstOfEach.code, 1);
  assert.deepEqual(JSON.parse(firstOfEach.out).map((d: { file: string; line: number }) => [d.file, d.line]), [[bad, 3], [three, 2]]); // (the array is sorted by file)
  const text = await run('textMax');
  assert.match(text.err, /three\.blip:2:11 - error BLIP2011: unknown input type 'txt'/);
  assert.match(text.err, /\n… and 2 more \(3 errors in all\)\n$/);
});

test('blip check: a missing file is a diagnostic, a missing argument a usage error', async () => {
  const r = await run('missing');
  assert.equal(r.code, 1);
  assert.match(r.err, /error BLIP2001: cannot read file .*: expected a readable \.blip file, found no such file/);
  assert.equal((await run('noArgs')).code, 2);
  assert.equal((await run('bogus')).code, 2);
  assert.equal((await run('maxInline')).code, 1); // --max=N as --max N
  assert.match((await run('maxMissing')).err, /^blip check: --max expects a positive integer\n/);
});

test("a shipped graph's repository path, missing where graphs/ is not (a project that installed the package), is BLIP2001 naming the shipped file, on the same line; another missing file has no such hint", () => {
  const project = mkdtempSync(join(tmpdir(), 'blip-project-')); // no graphs/ folder in it
  const [opt, pinned, bare, fmt, nosuch] = runAll(
    [
      ['check', 'graphs/blip2-opt.blip'],
      ['graph', 'graphs/pinned/blip2-opt-2.7b.blip'],
      ['check', 'blip-vqa'],
      ['fmt', 'graphs/blip-caption.blip'],
      ['check', 'nosuch.blip'],
    ],
    project,
  );
  rmSync(project, { recursive: true, force: true });
  const missing = (given: string, hint: string) => `${given}:1:1 - error BLIP2001: cannot read file '${given}': expected a readable .blip file, found no such file${hint}\n`;
  const ships = (graph: string) => `; blip-graph ships a graph of that name: ${resolve('graphs', graph)}`; // (this test runs in the package's root)
  assert.deepEqual(opt, { code: 1, out: '', err: missing('graphs/blip2-opt.blip', ships('blip2-opt.blip')) });
  assert.deepEqual(pinned, { code: 1, out: '', err: missing('graphs/pinned/blip2-opt-2.7b.blip', ships('pinned/blip2-opt-2.7b.blip')) });
  assert.deepEqual(bare, { code: 1, out: '', err: missing('blip-vqa', ships('blip-vqa.blip')) });
  assert.deepEqual(fmt, { code: 1, out: '', err: missing('graphs/blip-caption.blip', ships('blip-caption.blip')) });
  assert.deepEqual(nosuch, { code: 1, out: '', err: missing('nosuch.blip', '') });
});

test('blip fmt: prints the canonical layout; --check and --write', async () => {
  const canonical = 'model m {\n  input image: image\n  node v: vit(image) @ "v"\n  output o: generate(v)\n}\n';
  assert.deepEqual(await run('fmt'), { code: 0, out: canonical, err: '' });
  assert.deepEqual(await run('fmtCheck1'), { code: 1, out: messy + '\n', err: '' });
  assert.deepEqual(await run('fmtWrite'), { code: 0, out: '', err: '' });
  assert.equal(readFileSync(messy, 'utf8'), canonical);
  // Written beside the file and renamed over it: same mode, no temporary file left.
  assert.equal(statSync(messy).mode & 0o777, 0o640);
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('messy.')), ['messy.blip']);
  assert.deepEqual(await run('fmtCheck2'), { code: 0, out: '', err: '' });
  assert.deepEqual(await run('fmtCheckGraphs'), { code: 0, out: '', err: '' });
});

test('blip fmt: a syntax error is reported, nothing printed', async () => {
  const r = await run('fmtBroken');
  assert.equal(r.code, 1);
  assert.equal(r.out, '');
  assert.match(r.err, /:1:29 - error BLIP1010: expected ',' or '\)', found '@'/);
});

test('blip graph: DOT and IR JSON of the resolved model', async () => {
  const dot = await run('dot');
  assert.equal(dot.code, 0);
  assert.match(dot.out, /^digraph "instructblip_t5" \{/);
  assert.match(dot.out, /"prompt" -> "qformer" \[label="instruction"\];/);
  assert.match(dot.out, /"llm" -> "output:text";/);
  const json = await run('json2');
  assert.equal(json.code, 0);
  const m = JSON.parse(json.out);
  assert.equal(m.name, 'blip2_opt_2_7b');
  assert.deepEqual(m.nodes.map((n: { name: string }) => n.name), ['vision', 'qformer', 'projection', 'llm']);
  // --weights of another model: still drawn, with the BLIP4019 line as a warning
  const other = await run('otherWeights');
  assert.equal(other.code, 0, other.err);
  assert.match(other.out, /qformer/);
  assert.match(other.err, /^graphs\/blip2-opt\.blip:\d+:\d+ - warning BLIP4019: the checkpoint is another model than "blip2_opt" describes: .*which graphs\/blip-caption\.blip compiles\)$/m);
  assert.match(other.err, /\| +node qformer: qformer/); // the code frame
});

test("FILE '-' is standard input: check names it <stdin> and finds its imports from the current folder; fmt prints it formatted; --write refuses it", () => {
  const bin = join(process.cwd(), 'bin', 'blip.js');
  const run = (args: string[], input: string, cwd = process.cwd()) => spawnSync(process.execPath, [bin, ...args], { input, encoding: 'utf8', cwd });
  const ok = run(['check', '-'], readFileSync('graphs/blip-caption.blip', 'utf8'));
  assert.equal(ok.status, 0, ok.stderr);
  const bad = run(['check', '--json', '-'], readFileSync('graphs/blip-caption.blip', 'utf8').replace('vit(image)', 'vitt(image)'));
  assert.equal(bad.status, 1);
  const [d] = JSON.parse(bad.stdout) as Array<{ file: string; code: string; line: number }>;
  assert.deepEqual([d!.file, d!.code], ['<stdin>', 'BLIP2010']);
  // an import resolves against the current folder
  const imp = run(['check', '-'], 'import "./graphs/blip-caption.blip"\nmodel mine extends blip_caption {\n  generation { max_new_tokens: 5 }\n}\n');
  assert.equal(imp.status, 0, imp.stderr);
  const fmt = run(['fmt', '-'], 'model m{input image:image\nnode v:vit(image)@"v"\noutput o:generate(v)}');
  assert.equal(fmt.status, 0, fmt.stderr);
  assert.match(fmt.stdout, /^model m \{\n  input image: image\n/);
  // a pipe as a path works as standard input does
  const viaPath = spawnSync('sh', ['-c', `cat graphs/blip-caption.blip | "${process.execPath}" "${bin}" check /dev/stdin`], { encoding: 'utf8' });
  assert.equal(viaPath.status, 0, viaPath.stderr);
  const unformatted = run(['fmt', '--check', '-'], 'model m{input image:image\nnode v:vit(image)@"v"\noutput o:generate(v)}');
  assert.deepEqual([unformatted.status, unformatted.stdout], [1, '<stdin>\n']);
  const write = run(['fmt', '--write', '-'], '');
  assert.equal(write.status, 2);
  assert.match(write.stderr, /--write rewrites files: '-' \(standard input\) has none to rewrite/);
});

test('fmt refuses a file far over the size limit unread, and a device past the limit, as check does', () => {
  const huge = join(dir, 'huge.blip');
  writeFileSync(huge, '');
  truncateSync(huge, 100 * 1024 * 1024);
  const [big, dev] = runAll([
    ['fmt', huge],
    ['fmt', '/dev/zero'],
  ]);
  assert.equal(big!.code, 1);
  assert.match(big!.err, /error BLIP1015: file too large: expected at most 8\.0 MiB of text, found 100\.0 MiB/);
  if (process.platform !== 'win32') {
    assert.equal(dev!.code, 1);
    assert.match(dev!.err, /error BLIP1015: file too large: expected at most 8\.0 MiB of text, found more than 24\.\d MiB/);
  }
});
