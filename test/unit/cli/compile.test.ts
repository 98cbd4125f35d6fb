// `blip compile` as a user runs it: the manifest hashes the text it checked, the check's warnings
// and the compile's go to stderr (the summary alone to stdout), and the float16-on-CPU warning is
// not given to a quantized build it does not describe.
import { test, after } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runCliBatch } from '../cliHarness.js';

const root = mkdtempSync(join(tmpdir(), 'blip-compile-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));
const CAPTION = 'graphs/blip-caption.blip';
const captionCkpt = 'test/fixtures/blip-caption-a/checkpoint';

// a checkpoint without its tokenizer: the compile warns that the model will not run
const noTokenizer = join(root, 'no-tokenizer');
cpSync(captionCkpt, noTokenizer, { recursive: true });
for (const f of ['tokenizer.json', 'tokenizer_config.json']) rmSync(join(noTokenizer, f));
// an override that bypasses the Q-Former leaves two nodes unused: two BLIP2030 warnings
const bypass = join(root, 'bypass.blip');
writeFileSync(bypass, `import "${resolve('graphs/blip2-opt.blip')}"\nmodel skip extends blip2_opt {\n  override node llm: opt(prefix: vision, text: prompt) frozen @ "language_model" { config: "text_config" }\n}\n`);

const captionText = readFileSync(CAPTION, 'utf8');
// a named pipe, as <(cat graph.blip) gives: the text can be read once; a second reader would find
// an empty stream (the writer then opens it again and again and writes nothing). Without mkfifo or
// sh (Windows) the case is skipped: a writer that failed to start would end the run with an
// unhandled 'error' event.
const fifo = join(root, 'graph.blip');
const made = spawnSync('mkfifo', [fifo]);
const fifoSkip = made.error || made.status !== 0 ? 'needs mkfifo' : spawnSync('sh', ['-c', ':']).status !== 0 ? 'needs sh' : false;
const writer = fifoSkip ? undefined : spawn('sh', ['-c', 'cat "$1" > "$2"; while :; do : > "$2"; done', 'sh', CAPTION, fifo], { stdio: 'ignore' });
after(() => void writer?.kill());
const pipedRun = fifoSkip ? [] : [['compile', fifo, '--weights', captionCkpt, '--out', join(root, 'piped')]];
const runs = runCliBatch(
  [
    ...pipedRun,
    ['compile', bypass, '--weights', 'test/fixtures/blip2-opt-a/checkpoint', '--out', join(root, 'bypass')],
    ['compile', CAPTION, '--weights', noTokenizer, '--out', join(root, 'no-tokenizer-out')],
    ['compile', CAPTION, '--weights', captionCkpt, '--out', join(root, 'half'), '--dtype', 'fp16', '--target', 'cpu'],
    ['compile', CAPTION, '--weights', captionCkpt, '--out', join(root, 'half-int8'), '--dtype', 'fp16', '--target', 'cpu', '--quantize', 'int8'],
    ['compile', CAPTION, '--wieghts', captionCkpt, '--out', join(root, 'x')],
  ],
);
const piped = fifoSkip ? undefined : runs.shift();
const [unused, tokenizerless, half, halfInt8, typo] = runs;

test('blip compile: the manifest records the sha256 of the text it checked, even from a pipe read once', { skip: fifoSkip }, () => {
  assert.equal(piped!.code, 0, piped!.err);
  const manifest = JSON.parse(readFileSync(join(root, 'piped', 'manifest.json'), 'utf8'));
  assert.equal(manifest.source.graph.sha256, createHash('sha256').update(captionText).digest('hex'));
});

test("blip compile prints the check's warnings (BLIP2030) on stderr, as blip check does", () => {
  assert.equal(unused.code, 0, unused.err);
  assert.equal((unused.err.match(/ - warning BLIP2030: /g) ?? []).length, 2, unused.err);
  assert.match(unused.err, /graphs\/blip2-opt\.blip:\d+:\d+ - warning BLIP2030: /);
  assert.match(unused.out, /^compiled skip /);
  assert.doesNotMatch(unused.out, /warning/);
});

test("blip compile's own warnings go to stderr; stdout holds the summary alone", () => {
  assert.equal(tokenizerless.code, 0, tokenizerless.err);
  assert.match(tokenizerless.out, /^compiled blip_caption /);
  assert.doesNotMatch(tokenizerless.out, /warning/);
  assert.match(tokenizerless.err, /^warning: .*no-tokenizer has no tokenizer files \(tokenizer\.json/m);
});

test('blip compile --dtype fp16 --target cpu warns about float16 on the CPU, but not when --quantize makes the products MatMulNBits', () => {
  assert.equal(half.code, 0, half.err);
  assert.match(half.err, /^warning: float16 for the CPU target saves disk only/m);
  assert.equal(halfInt8.code, 0, halfInt8.err);
  assert.equal(halfInt8.err, '');
});

test('blip compile: a misspelt option names the nearest one', () => {
  assert.equal(typo.code, 2);
  assert.equal(typo.err.split('\n')[0], "blip compile: unknown option '--wieghts'; did you mean '--weights'?");
});
