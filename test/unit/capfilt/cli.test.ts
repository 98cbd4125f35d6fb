// `blip capfilt` user errors: one line each, exit 2 for usage errors and 1 for failures.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../src/cli/main.js';
import capfiltCommand from '../../../src/cli/commands/capfilt.js';
import { readTar, writeTar, image } from './helpers/fixtures.js';
import { load } from '../../../runtime/model.js';
import { captionSeed } from '../../../src/capfilt/model.js';
import { CAPTION_PROMPT } from '../../../src/capfilt/runtimeModels.js';
import { compileFixture, compileTinyModels } from './helpers/tinyModels.js';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'capfilt-cli-'));
  await writeTar(join(root, 'in', '00000.tar'), [
    ['a.jpg', await image('red', 'jpeg')],
    ['a.txt', 'a red thing'],
  ]);
  await writeFile(join(root, 'a-file'), 'not a folder');
  await writeFile(join(root, 'empty.jsonl'), '');
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Run `blip ARGV` in-process, capturing stderr (stdout is left alone: the test reporter writes there). */
async function blip(...argv: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const ew = process.stderr.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: await main(argv), err };
  } finally {
    process.stderr.write = ew;
  }
}

const base = (): string[] => ['capfilt', '--captioner', join(root, 'no-captioner'), '--filter', join(root, 'no-itm'), '--quiet'];

test('capfilt has help with every option and examples', () => {
  for (const opt of ['--captioner', '--filter', '--input', '--output', '--captions-per-image', '--top-p', '--min-itm', '--batch-size', '--device', '--shard', '--seed', '--redis', '--exit-when-idle']) {
    assert.ok(capfiltCommand.help.includes(opt), opt);
  }
  assert.match(capfiltCommand.help, /Examples:\n  blip capfilt /);
});

test('usage errors exit 2 with one line', async () => {
  const cases: Array<[string[], RegExp]> = [
    [[...base(), '--input', join(root, 'in'), '--output', join(root, 'o1'), '--shard', '2/2'], /--shard expects I\/N/],
    [[...base(), '--input', join(root, 'in'), '--output', join(root, 'o1'), '--shard', 'x'], /--shard expects I\/N/],
    [[...base(), '--input', join(root, 'in'), '--output', join(root, 'o1'), '--bach-size', '2'], /unknown option '--bach-size'; did you mean '--batch-size'\?$/],
    [[...base(), '--output', join(root, 'o1')], /--input is required/],
    [['capfilt', '--input', join(root, 'in'), '--output', join(root, 'o1')], /--captioner is required/],
    [[...base(), '--input', join(root, 'in'), '--output', join(root, 'o1'), '--top-p', '2'], /--top-p must be in \(0, 1\]/],
    [[...base(), '--input', join(root, 'in'), '--output', join(root, 'o1'), '--batch-size', 'many'], /--batch-size expects an integer/],
    [[...base(), '--input', join(root, 'in'), '--output', join(root, 'o1'), '--seed', '0x10'], /--seed expects an integer, got '0x10'/],
    [[...base(), '--input', join(root, 'in'), '--output', join(root, 'o1'), '--seed', '1e3'], /--seed expects an integer, got '1e3'/],
    [['capfilt', 'workr', '--redis', 'redis://x'], /unknown subcommand 'workr' \(did you mean 'worker'\?\)/],
    [['capfilt', 'worker'], /--redis is required/],
    [['capfilt', 'enqueue', '--redis', 'redis://127.0.0.1:1', '--shard', '0/2'], /--shard does not apply to enqueue/],
    [[...base(), '--input', join(root, 'in'), '--output', join(root, 'o1'), '--device', 'tpu'], /unknown device 'tpu'.*expected one of cpu, cuda/],
    [['capfilt', 'worker', '--redis', 'redis://127.0.0.1:1', '--device', 'tpu'], /unknown device 'tpu'/],
    [['capfilt', 'worker', '--redis', 'redis://127.0.0.1:1', '--lock-duration', '-5'], /--lock-duration must be at least 1 \(milliseconds\), got -5/],
    [['capfilt', 'worker', '--redis', 'redis://127.0.0.1:1', '--stalled-interval', '0'], /--stalled-interval must be at least 1/],
    // (BullMQ refuses these names only when it builds the queue: an internal error and a process kept alive)
    [['capfilt', 'worker', '--redis', 'redis://127.0.0.1:1', '--queue', 'a:b'], /^blip capfilt: --queue 'a:b' contains ':', which BullMQ keeps for its Redis keys/],
    [['capfilt', 'worker', '--redis', 'redis://127.0.0.1:1', '--queue', ''], /^blip capfilt: --queue expects a queue name, got ''$/],
    [['capfilt', 'enqueue', '--redis', 'redis://127.0.0.1:1', '--queue', '', '--captioner', 'c', '--filter', 'f', '--input', join(root, 'in'), '--output', join(root, 'oq')], /--queue expects a queue name/],
  ];
  for (const [argv, re] of cases) {
    const r = await blip(...argv);
    assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err}`);
    assert.match(r.err.split('\n')[0], re);
    assert.equal(r.err.trim().split('\n').length, 2, r.err); // the message and the --help hint
  }
});

test('failures exit 1 with one line: missing input, output that is a file, a captioner that is not a compiled model', async () => {
  const cases: Array<[string[], RegExp]> = [
    [[...base(), '--input', join(root, 'missing', '{00000..00003}.tar'), '--output', join(root, 'o2')], /^error BLIP5801: input .*00000\.tar does not exist$/],
    [[...base(), '--input', join(root, 'in', '*.tgz'), '--output', join(root, 'o2')], /^error BLIP5801: input '.*' matches no file$/],
    [[...base(), '--input', join(root, 'in'), '--output', join(root, 'a-file')], /^error BLIP5802: output .*a-file exists and is not a folder$/],
    [[...base(), '--input', join(root, 'in'), '--output', join(root, 'o3')], /^error BLIP5001: .*no-captioner does not exist/],
    [[...base(), '--input', join(root, 'empty.jsonl'), '--output', join(root, 'o4')], /^error BLIP5801: no input shard to process: the \.jsonl input is empty \(no samples\)$/],
    [[...base(), '--input', join(root, 'in'), '--output', join(root, 'in')], /^error BLIP5801: input folder .*in is the output folder or inside it/],
  ];
  for (const [argv, re] of cases) {
    const r = await blip(...argv);
    assert.equal(r.code, 1, `${argv.join(' ')}: ${r.err}`);
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
    assert.match(r.err.trim(), re);
  }
});

test('--quiet keeps the note that an input was skipped (a pipe named *.tar in an input folder): only progress and messages are quieted', async () => {
  const dir = join(root, 'with-pipe');
  await writeTar(join(dir, '00000.tar'), [['a.jpg', await image('red', 'jpeg')]]);
  assert.equal(spawnSync('mkfifo', [join(dir, 'pipe.tar')]).status, 0);
  const note = `capfilt: note: skipped 1 entry named *.tar in ${dir} that is not a regular file (a pipe, socket or device): pipe.tar`;
  // (the models are checked after the plan, so the missing ones end the run right after the note)
  for (const quiet of [true, false]) {
    const argv = ['capfilt', '--captioner', join(root, 'no-captioner'), '--filter', join(root, 'no-itm'), '--input', dir, '--output', join(root, 'o-pipe'), ...(quiet ? ['--quiet'] : [])];
    const r = await blip(...argv);
    assert.equal(r.code, 1, r.err);
    const lines = r.err.trim().split('\n');
    assert.deepEqual(lines.filter((l) => l.includes('skipped')), [note], r.err);
    assert.match(lines[lines.length - 1], /^error BLIP5001: .*no-captioner does not exist/);
  }
});

test('the model folders are checked: a compiled ITM model is refused as --captioner, a captioner as --filter', async () => {
  const { captioner: cap, filter: itm } = await compileTinyModels(join(root, 'models'));
  const run = (c: string, f: string, out: string) => blip('capfilt', '--captioner', c, '--filter', f, '--input', join(root, 'in'), '--output', join(root, out), '--quiet');
  let r = await run(itm, itm, 'o5');
  assert.equal(r.code, 1, r.err);
  assert.match(r.err.trim(), /^error BLIP5805: --captioner .* is a retrieval model, not a captioning one/);
  // a VQA model generates, but answers "a picture of" as a question
  const vqa = await compileFixture('graphs/blip-vqa.blip', 'test/fixtures/blip-vqa-a/checkpoint', join(root, 'models', 'vqa'));
  r = await run(vqa, itm, 'o5');
  assert.equal(r.code, 1, r.err);
  assert.match(r.err.trim(), /^error BLIP5805: --captioner .* is a vqa model, not a captioning one/);
  // a captioning graph whose decoder reads no text cannot continue CapFilt's prompt
  const noText = join(root, 'cap-no-text.blip');
  await writeFile(noText, 'model cap {\n  input image: image\n  node vision: vit(image) @ "vision_model" { config: "vision_config" }\n  node decoder: bert(cross: vision) @ "text_decoder" { config: "text_config", causal: true }\n  output caption: generate(decoder)\n}\n');
  const silent = await compileFixture(noText, 'test/fixtures/blip-caption-a/checkpoint', join(root, 'models', 'no-text'));
  r = await run(silent, itm, 'o5');
  assert.equal(r.code, 1, r.err);
  assert.match(r.err.trim(), /^error BLIP5805: --captioner .* reads no text input, but CapFilt's captioner continues the prompt "a picture of "/);
  // a BLIP-2 model continues the prompt in its language model: its new text, stripped, is the caption
  const blip2 = await compileFixture('graphs/blip2-opt.blip', 'test/fixtures/blip2-opt-a/checkpoint', join(root, 'models', 'blip2'));
  // (seed 1: one of the six captions starts with a spaced token, which BLIP's cut would keep)
  r = await blip('capfilt', '--captioner', blip2, '--filter', itm, '--input', join(root, 'in'), '--output', join(root, 'o-blip2'), '--captions-per-image', '6', '--seed', '1', '--quiet');
  assert.equal(r.code, 0, r.err);
  const rec = JSON.parse((await readTar(join(root, 'o-blip2', '00000.tar'))).find((e) => e.name === 'a.json')!.data.toString('utf8'));
  // each caption is generate()'s text for its seed, as the library gives it (stripped; no BLIP cut)
  const entries = await readTar(join(root, 'in', '00000.tar'));
  const model = await load(blip2, { threads: 1 });
  try {
    const seeds = Array.from({ length: 6 }, (_, j) => captionSeed(1, '00000.tar', 'a', j));
    const [res] = await model.generate([{ name: 'a.jpg', bytes: entries.find((e) => e.name === 'a.jpg')!.data }], {
      prompt: CAPTION_PROMPT, doSample: true, topP: 0.9, topK: 50, temperature: 1, numBeams: 1, repetitionPenalty: 1.1, maxLength: 30, minLength: 5, minNewTokens: 0, numReturnSequences: 6, seed: seeds,
    });
    assert.deepEqual(rec.synthetic.map((c: { text: string }) => c.text), res!.sequences!.map((q) => q.text));
  } finally {
    await model.close();
  }
  r = await run(cap, cap, 'o6');
  assert.equal(r.code, 1, r.err);
  assert.match(r.err.trim(), /^error BLIP5805: --filter .* has no ITM output/);
  // refused before anything is written: no run.json recording the wrong folder to bar the rerun
  assert.ok(!existsSync(join(root, 'o5')) && !existsSync(join(root, 'o6')));
  r = await run(join(root, 'no-captioner'), itm, 'o5');
  assert.equal(r.code, 1, r.err);
  assert.ok(!existsSync(join(root, 'o5')));
  r = await run(cap, itm, 'o5');
  assert.equal(r.code, 0, r.err);
  assert.ok(existsSync(join(root, 'o5', 'stats.json')));
});

test('a run in which no sample could be read exits 1 with one line (its outputs written as usual); one readable sample is a success', async () => {
  const { captioner: cap, filter: itm } = await compileTinyModels(join(root, 'models'));
  await writeTar(join(root, 'bad', '00000.tar'), [
    ['a.jpg', Buffer.from('not a jpeg')],
    ['a.txt', 'text'],
    ['b.png', Buffer.from('not a png either')],
  ]);
  const r = await blip('capfilt', '--captioner', cap, '--filter', itm, '--input', join(root, 'bad'), '--output', join(root, 'o-bad'), '--quiet');
  assert.equal(r.code, 1, r.err);
  assert.equal(r.err, 'blip capfilt: none of the 2 samples could be read (2 error records in errors.jsonl)\n');
  assert.ok(existsSync(join(root, 'o-bad', 'stats.json')) && existsSync(join(root, 'o-bad', 'errors.jsonl')));
  await writeTar(join(root, 'mixed', '00000.tar'), [
    ['a.jpg', Buffer.from('not a jpeg')],
    ['b.jpg', await image('red', 'jpeg')],
  ]);
  const ok = await blip('capfilt', '--captioner', cap, '--filter', itm, '--input', join(root, 'mixed'), '--output', join(root, 'o-mixed'), '--quiet');
  assert.equal(ok.code, 0, ok.err);
});
