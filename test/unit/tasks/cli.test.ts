// `blip run` as a user runs it, in a child process (the test runner owns this process's stdout):
// captions streamed and as JSON lines equal to transformers' greedy records, ITM pairs, a folder
// with a corrupt image (an error record, the others still run, exit 1), and every kind of bad
// input as a one-line error with its exit code (2 usage, 1 failure).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { runCliBatch, type CliResult } from '../cliHarness.js';
import { compileFixture, expected, fixturePath, imagesOf, repoRoot, tempDir } from './harness.js';
import { compile } from '../../../src/index.js';
import { load } from '../../../runtime/model.js';
import sharp from 'sharp';
import { candidates, providerStatus } from '../../../runtime/providers.js';
import { pyStrip } from '../../../runtime/generation/pythonSpace.js';
import { chunks, readForModel, runItm, timingsRecord } from '../../../src/cli/commands/run.js';
import { expandImages } from '../../../src/cli/imageList.js';
import { preprocessFromManifest } from '../../../runtime/preprocess/index.js';
import type { BlipModel, DecodedImage } from '../../../runtime/model.js';

type Result = CliResult;

const tmp = tempDir('blip-tasks-cli-');
after(() => tmp.remove());
let caption: string;
let itm: string;
let vqa: string;
let vicuna: string;
let opt: string;
let old: string;
let folder: string;
let mixed: string;
let noImages: string;
let locked: string | undefined;
let half: string;
let textFile: string;
let manyTexts: string;
let blankTexts: string;
let halfInt8: string;
let noResize: string;
let img32: string;
let R: Record<string, Result>;

const [IMG_A, IMG_B] = imagesOf(expected('blip-caption-a'));
const OPT_IMAGE = fixturePath('images', 'photo_64x48.jpg');
const OPT_QUESTION = 'Question: how many cats are there? Answer:';
/**
 * transformers 5.12.1 on blip2-opt-a, OPT_IMAGE and OPT_QUESTION:
 * Blip2ForConditionalGeneration.generate(**processor(images=image, text=OPT_QUESTION), num_beams=3,
 * max_new_tokens=6, early_stopping=..., output_scores=True, return_dict_in_generate=True): the new
 * tokens (without the padding after EOS) and sequences_scores. Greedy gives [467, 2].
 */
const HF_EARLY_STOPPING = {
  true: { tokens: [[467, 261, 2]], scores: [-4.73419189453125] },
  false: { tokens: [[467, 261, 261, 2]], scores: [-4.685962200164795] },
  never: { tokens: [[467, 261, 261, 261, 261, 261]], scores: [-4.660431385040283] },
  // num_return_sequences=3
  never3: { tokens: [[467, 261, 261, 261, 261, 261], [467, 261, 261, 2], [467, 261, 261, 261, 261, 2]], scores: [-4.660431385040283, -4.685962200164795, -4.686698913574219] },
};

before(async () => {
  caption = await compileFixture('blip-caption-a', tmp.dir);
  itm = await compileFixture('blip-itm-a', tmp.dir);
  vqa = await compileFixture('blip-vqa-a', tmp.dir);
  vicuna = await compileFixture('instructblip-vicuna-a', tmp.dir); // its generation config searches with 5 beams
  opt = await compileFixture('blip2-opt-a', tmp.dir); // greedy answers OPT_QUESTION on OPT_IMAGE with one token and EOS
  half = join(tmp.dir, 'half');
  await compile(join(repoRoot(), 'graphs', 'blip-caption.blip'), { weights: fixturePath('blip-caption-a', 'checkpoint'), out: half, dtype: 'fp16' });
  halfInt8 = join(tmp.dir, 'half-int8');
  await compile(join(repoRoot(), 'graphs', 'blip-caption.blip'), { weights: fixturePath('blip-caption-a', 'checkpoint'), out: halfInt8, dtype: 'fp16', target: 'cpu', quantize: 'int8' });
  old = join(tmp.dir, 'old');
  cpSync(caption, old, { recursive: true });
  const m = JSON.parse(readFileSync(join(old, 'manifest.json'), 'utf8'));
  writeFileSync(join(old, 'manifest.json'), JSON.stringify({ ...m, version: 0 }));
  // a model whose generation config samples (do_sample true): sampling flags need no --sample
  const sampling = join(tmp.dir, 'sampling');
  cpSync(caption, sampling, { recursive: true });
  writeFileSync(join(sampling, 'manifest.json'), JSON.stringify({ ...m, generation: { ...m.generation, do_sample: true } }));
  // a processor that does not resize: the encoder takes 32x32 images only
  const noResizeCkpt = join(tmp.dir, 'no-resize-checkpoint');
  cpSync(fixturePath('blip-caption-a', 'checkpoint'), noResizeCkpt, { recursive: true });
  const proc = JSON.parse(readFileSync(join(noResizeCkpt, 'processor_config.json'), 'utf8'));
  proc.image_processor.do_resize = false;
  writeFileSync(join(noResizeCkpt, 'processor_config.json'), JSON.stringify(proc));
  noResize = join(tmp.dir, 'no-resize');
  await compile(join(repoRoot(), 'graphs', 'blip-caption.blip'), { weights: noResizeCkpt, out: noResize });
  img32 = join(tmp.dir, 'square-32.png');
  await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 200, g: 40, b: 90 } } }).png().toFile(img32);
  folder = join(tmp.dir, 'images');
  mkdirSync(folder);
  copyFileSync(IMG_A, join(folder, 'a.png'));
  writeFileSync(join(folder, 'b.png'), Buffer.concat([readFileSync(IMG_A).subarray(0, 60)])); // truncated PNG
  copyFileSync(IMG_B, join(folder, 'c.jpg'));
  writeFileSync(join(folder, 'notes.txt'), 'not an image');
  // a folder with every kind of entry: images under PIL's other extensions (.jpe, .jfif, .apng), a
  // dangling link (an error line), a BMP (the decoder does not read it), a file without an
  // extension and a text file (skipped, named in one note), a subfolder (not recursive)
  mixed = join(tmp.dir, 'mixed');
  mkdirSync(mixed);
  copyFileSync(IMG_A, join(mixed, 'a.apng'));
  copyFileSync(IMG_B, join(mixed, 'b.jfif'));
  writeFileSync(join(mixed, 'c.bmp'), bmp2x1());
  symlinkSync(join(tmp.dir, 'gone.jpg'), join(mixed, 'd_broken.jpg'));
  copyFileSync(IMG_B, join(mixed, 'e.JPE'));
  copyFileSync(IMG_A, join(mixed, 'f_noext'));
  writeFileSync(join(mixed, 'g.txt'), 'not an image');
  mkdirSync(join(mixed, 'h.png'));
  noImages = join(tmp.dir, 'no-images');
  mkdirSync(noImages);
  writeFileSync(join(noImages, 'readme.md'), '# none');
  // a folder that cannot be listed (root lists it anyway)
  if (process.getuid?.() !== 0) {
    locked = join(tmp.dir, 'locked');
    mkdirSync(locked);
    copyFileSync(IMG_A, join(locked, 'a.png'));
    chmodSync(locked, 0);
  }
  const cap = (...a: string[]) => ['run', caption, ...a];
  textFile = join(tmp.dir, 'texts.txt');
  writeFileSync(textFile, 'two dogs\r\n\n  \nthree cats\n');
  manyTexts = join(tmp.dir, 'many-texts.txt');
  writeFileSync(manyTexts, Array.from({ length: 1500 }, (_, i) => `a photo of object number ${i + 1} on a table`).join('\n'));
  blankTexts = join(tmp.dir, 'blank.txt');
  writeFileSync(blankTexts, '\n \n');
  const stop = stopOf(pyStrip(greedy().text[0]));
  const ask = (...a: string[]) => ['run', opt, '--image', OPT_IMAGE, '--prompt', OPT_QUESTION, ...a];
  const batch: Record<string, string[]> = {
    // transformers' generate() arguments blip run takes as flags
    maxLength: cap('--image', IMG_A, '--max-length', '5', '--json'),
    minLength: ask('--min-length', '31', '--max-new-tokens', '6', '--json'),
    beamsJson: cap('--image', IMG_A, '--image', IMG_B, '--max-new-tokens', '12', '--beams', '3', '--json'),
    earlyTrue: ask('--beams', '3', '--max-new-tokens', '6', '--early-stopping', 'true', '--json'),
    earlyFalse: ask('--beams', '3', '--max-new-tokens', '6', '--early-stopping', 'false', '--json'),
    earlyNever: ask('--beams', '3', '--max-new-tokens', '6', '--early-stopping=never', '--json'),
    returnBeams: ask('--beams', '3', '--max-new-tokens', '6', '--early-stopping', 'never', '--num-return-sequences', '3', '--json'),
    returnBeamsText: ask('--beams', '3', '--max-new-tokens', '6', '--early-stopping', 'never', '--num-return-sequences', '3'),
    returnBeamsLines: ['run', opt, '--image', OPT_IMAGE, '--image', OPT_IMAGE, '--prompt', OPT_QUESTION, '--beams', '3', '--max-new-tokens', '6', '--num-return-sequences', '2'],
    returnSamples: cap('--image', IMG_A, '--sample', '--seed', '4', '--num-return-sequences', '2', '--max-new-tokens', '8', '--json'),
    samplingBeams1: ['run', sampling, '--image', IMG_A, '--beams', '1', '--max-new-tokens', '12', '--json'],
    noSample: ['run', sampling, '--image', IMG_A, '--no-sample', '--max-new-tokens', '12', '--json'],
    noSampleBeams: ['run', sampling, '--image', IMG_A, '--image', IMG_B, '--no-sample', '--beams', '3', '--max-new-tokens', '12', '--json'],
    maxLengthBelowPrompt: ask('--max-length', '20'),
    json: cap('--image', IMG_A, '--image', IMG_B, '--max-new-tokens', '12', '--json'),
    jsonAuto: cap('--image', IMG_A, '--image', IMG_B, '--max-new-tokens', '12', '--json', '--device', 'auto'),
    jsonTwoBatches: cap('--image', IMG_A, '--image', IMG_B, '--max-new-tokens', '12', '--json', '--batch-size', '1'),
    stream: cap('--image', IMG_A, '--max-new-tokens', '12'),
    lines: cap('--image', IMG_A, '--image', IMG_B, '--max-new-tokens', '12', '--beams', '3'),
    folderJson: cap('--image', folder, '--max-new-tokens', '5', '--json', '--batch-size', '2'),
    folderText: cap('--image', folder, '--max-new-tokens', '5'),
    sample1: cap('--image', IMG_A, '--sample', '--top-p', '0.9', '--seed', '5', '--json'),
    sameTwice: cap('--image', IMG_A, '--image', IMG_A, '--sample', '--seed', '3', '--max-new-tokens', '8', '--json'),
    seedNegative: cap('--image', IMG_A, '--sample', '--seed', '-1', '--max-new-tokens', '8', '--json'),
    sample2: cap('--image', IMG_A, '--sample', '--top-p=0.9', '--seed=5', '--json', '--threads', '1'),
    // top-p is in (0, 1]: 1 keeps every token, as top-p unset (transformers' default 1.0) does
    topPOne: cap('--image', IMG_A, '--sample', '--top-p', '1', '--seed', '5', '--max-new-tokens', '8', '--json'),
    topPUnset: cap('--image', IMG_A, '--sample', '--seed', '5', '--max-new-tokens', '8', '--json'),
    stopJson: cap('--image', IMG_A, '--image', IMG_B, '--max-new-tokens', '12', '--json', '--stop', stop, '--stop', 'zzz-never'),
    stopStream: cap('--image', IMG_A, '--max-new-tokens', '12', '--stop', stop),
    logprobsJson: cap('--image', IMG_A, '--max-new-tokens', '12', '--json', '--logprobs', '2'),
    samplingModel: ['run', sampling, '--image', IMG_A, '--temperature', '0.7', '--seed', '5', '--max-new-tokens', '6', '--json'],
    samplingFlag: cap('--image', IMG_A, '--sample', '--temperature', '0.7', '--seed', '5', '--max-new-tokens', '6', '--json'),
    itm: ['run', itm, '--image', IMG_A, '--text', 'a photo of a cat sitting on a red couch', '--text', 'two dogs'],
    half: ['run', half, '--image', IMG_A, '--max-new-tokens', '3', '--json'],
    halfInt8: ['run', halfInt8, '--image', IMG_A, '--max-new-tokens', '3', '--json'],
    noResize: ['run', noResize, '--image', IMG_A, '--image', img32, '--max-new-tokens', '3', '--json'],
    help: ['run', '--help'],
    helpCommand: ['help', 'run'],
    // usage errors (2)
    unknownFlag: cap('--image', IMG_A, '--beam', '3'),
    textOnCaption: cap('--image', IMG_A, '--text', 'a cat'),
    promptOnItm: ['run', itm, '--image', IMG_A, '--prompt', 'a cat', '--text', 'x'],
    itmNoText: ['run', itm, '--image', IMG_A],
    beamsOnItm: ['run', itm, '--image', IMG_A, '--text', 'x', '--beams', '2'],
    vqaNoPrompt: ['run', vqa, '--image', IMG_A],
    device: cap('--image', IMG_A, '--device', 'gpu'),
    topPNoSample: cap('--image', IMG_A, '--top-p', '0.9'),
    badInt: cap('--image', IMG_A, '--beams', 'three'),
    hugeInt: cap('--image', IMG_A, '--sample', '--seed', '99999999999999999999999'),
    topPZero: cap('--image', IMG_A, '--sample', '--top-p', '0'),
    topPAboveOne: cap('--image', IMG_A, '--sample', '--top-p', '1.01'),
    manyBeams: cap('--image', IMG_A, '--beams', '100000'),
    vqaBlankPrompt: ['run', vqa, '--image', IMG_A, '--prompt', '   '],
    helpAsValue: cap('--image', IMG_A, '--prompt', '--help'),
    noImage: cap(),
    emptyImage: cap('--image', ''),
    urlImage: cap('--image', 'https://example.com/cat.jpg'),
    emptyStop: cap('--image', IMG_A, '--stop', ''),
    manyStops: cap('--image', IMG_A, ...['a', 'b', 'c', 'd', 'e'].flatMap((x) => ['--stop', x])),
    stopOnItm: ['run', itm, '--image', IMG_A, '--text', 'x', '--stop', '.'],
    logprobsNoJson: cap('--image', IMG_A, '--logprobs', '2'),
    logprobsBeams: cap('--image', IMG_A, '--json', '--logprobs', '2', '--beams', '3'),
    logprobsMany: cap('--image', IMG_A, '--json', '--logprobs', '21'),
    logprobsBeamModel: ['run', vicuna, '--image', IMG_A, '--prompt', 'Describe it.', '--json', '--logprobs', '1'],
    logprobsBeamModelGreedy: ['run', vicuna, '--image', IMG_A, '--prompt', 'Describe it.', '--json', '--logprobs', '1', '--beams', '1', '--max-new-tokens', '4'],
    maxLengthAndNew: cap('--image', IMG_A, '--max-length', '5', '--max-new-tokens', '3'),
    minLengthAndNew: cap('--image', IMG_A, '--min-length', '5', '--min-new-tokens', '3'),
    maxLengthZero: cap('--image', IMG_A, '--max-length', '0'),
    minLengthNegative: cap('--image', IMG_A, '--min-length=-1'),
    earlyStoppingYes: cap('--image', IMG_A, '--beams', '3', '--early-stopping', 'yes'),
    earlyStoppingOnItm: ['run', itm, '--image', IMG_A, '--text', 'x', '--early-stopping', 'never'],
    sampleNoSample: cap('--image', IMG_A, '--sample', '--no-sample'),
    noSampleTopP: ['run', sampling, '--image', IMG_A, '--no-sample', '--top-p', '0.9'],
    noSampleOnItm: ['run', itm, '--image', IMG_A, '--text', 'x', '--no-sample'],
    returnGreedy: cap('--image', IMG_A, '--num-return-sequences', '2'),
    returnMoreThanBeams: cap('--image', IMG_A, '--beams', '2', '--num-return-sequences', '3'),
    returnMoreThanModelBeams: ['run', vicuna, '--image', IMG_A, '--prompt', 'Describe it.', '--num-return-sequences', '6'],
    returnZero: cap('--image', IMG_A, '--num-return-sequences', '0'),
    returnMany: cap('--image', IMG_A, '--sample', '--num-return-sequences', '1000'),
    returnNoSampleModel: ['run', sampling, '--image', IMG_A, '--no-sample', '--num-return-sequences', '2'],
    noDir: ['run', '--image', IMG_A],
    // failures (1)
    missingImage: cap('--image', join(tmp.dir, 'nope.jpg')),
    oldVersion: ['run', old, '--image', IMG_A],
    notCompiled: ['run', folder, '--image', IMG_A],
    tooManyTokens: cap('--image', IMG_A, '--max-new-tokens', '10000'),
    // bad entries among good ones: each an error line in its place, the others run
    mixedJson: cap('--image', mixed, '--max-new-tokens', '3', '--json', '--batch-size', '2'),
    missingAmongJson: cap('--image', IMG_A, '--image', join(tmp.dir, 'nope.jpg'), '--image', IMG_B, '--max-new-tokens', '3', '--json'),
    missingAmongText: cap('--image', IMG_A, '--image', join(tmp.dir, 'nope.jpg'), '--image', IMG_B, '--max-new-tokens', '3'),
    noImagesJson: cap('--image', noImages, '--json'),
    ...(locked ? { lockedJson: cap('--image', IMG_A, '--image', locked, '--max-new-tokens', '3', '--json') } : {}),
    itmBatch: ['run', itm, '--image', IMG_A, '--image', IMG_B, '--image', IMG_A, '--text', 'a cat on a couch', '--text', 'two dogs', '--batch-size', '2'],
    globShell: cap('--image', IMG_A, IMG_B, IMG_A, '--max-new-tokens', '3'),
    globQuoted: cap('--image', join(folder, '*.png'), '--image', IMG_A, '--max-new-tokens', '3', '--json'),
    missingThenOneText: cap('--image', join(tmp.dir, 'nope.jpg'), '--image', IMG_A, '--max-new-tokens', '3'),
    stdinImage: cap('--image', '-'),
    // texts from a file: one a line, blank lines skipped; many of them, beyond what a command line holds safely
    itmTextFile: ['run', itm, '--image', IMG_A, '--text', 'a cat on a couch', '--text-file', textFile],
    itmManyTexts: ['run', itm, '--image', IMG_A, '--text-file', manyTexts],
    textFileMissing: ['run', itm, '--image', IMG_A, '--text-file', join(tmp.dir, 'no-such-texts.txt')],
    textFileEmpty: ['run', itm, '--image', IMG_A, '--text-file', blankTexts],
  };
  const names = Object.keys(batch);
  const res = runCliBatch(names.map((n) => batch[n]));
  R = Object.fromEntries(names.map((n, i) => [n, res[i]]));
});

const greedy = () => expected('blip-caption-a').cases![0].generation.find((g) => g.name === 'greedy')!;
const beam = () => expected('blip-caption-a').cases![0].generation.find((g) => g.name === 'beam3')!;
const lines = (s: string) => s.split('\n').filter(Boolean);
/** Two characters from the middle of a text: a stop string that cuts it. */
const stopOf = (text: string) => [...text].slice(Math.floor([...text].length / 2), Math.floor([...text].length / 2) + 2).join('');

test('--stop: the text ends before the stop, token_ids through the token that completed it, "stop" named; streamed the same', () => {
  assert.equal(R.stopJson.code, 0, R.stopJson.err);
  const full = pyStrip(greedy().text[0]);
  const stop = stopOf(full);
  const [a, b] = lines(R.stopJson.out).map((l) => JSON.parse(l));
  assert.equal(a.text, pyStrip(full.slice(0, full.indexOf(stop))));
  assert.equal(a.stop, stop);
  assert.ok(a.token_ids.length < greedy().new_tokens[0].length);
  assert.deepEqual(a.token_ids, greedy().new_tokens[0].slice(0, a.token_ids.length));
  // the other image: cut too where its text holds the stop, else all of it and no "stop" key
  const other = pyStrip(greedy().text[1]);
  if (other.includes(stop)) assert.equal(b.stop, stop);
  else assert.deepEqual([b.text, b.token_ids, 'stop' in b], [other, greedy().new_tokens[1], false]);
  assert.equal(R.stopStream.code, 0, R.stopStream.err);
  assert.equal(R.stopStream.out, `${a.text}\n`);
});

test('--logprobs N: each token\'s log-probability and the N most likely of its step, in the JSON line; the same tokens', () => {
  assert.equal(R.logprobsJson.code, 0, R.logprobsJson.err);
  const r = JSON.parse(R.logprobsJson.out);
  assert.deepEqual(r.token_ids, greedy().new_tokens[0]);
  assert.deepEqual(r.logprobs.map((e: { id: number }) => e.id), r.token_ids);
  // a model whose config searches with beams runs with --beams 1
  assert.equal(R.logprobsBeamModelGreedy.code, 0, R.logprobsBeamModelGreedy.err);
  const v = JSON.parse(R.logprobsBeamModelGreedy.out);
  assert.equal(v.logprobs.length, v.token_ids.length);
  for (const e of r.logprobs) {
    assert.deepEqual(Object.keys(e), ['id', 'token', 'bytes', 'logprob', 'top']);
    assert.equal(e.top.length, 2);
    assert.equal(e.top[0].id, e.id); // greedy: the most likely
    assert.ok(e.logprob <= 0 && e.top[1].logprob <= e.top[0].logprob);
  }
});

test('--json: one line per image with transformers greedy tokens, text and timings', () => {
  assert.equal(R.json.code, 0, R.json.err);
  assert.equal(R.json.err, '');
  const recs = lines(R.json.out).map((l) => JSON.parse(l));
  assert.equal(recs.length, 2);
  recs.forEach((r, b) => {
    assert.equal(r.image, [IMG_A, IMG_B][b]);
    assert.deepEqual(r.token_ids, greedy().new_tokens[b]);
    assert.equal(r.text, pyStrip(greedy().text[b]));
    // one batch: staged loading, so the time spent opening the graphs is reported apart
    assert.deepEqual(Object.keys(r.timings_ms), ['preprocess', 'encode', 'prefill', 'decode', 'load', 'total']);
    const t = r.timings_ms;
    assert.ok(Math.abs(t.preprocess + t.encode + t.prefill + t.decode + t.load - t.total) < 0.01, JSON.stringify(t));
  });
});

test("--json timings_ms has load only when the batch opened the graphs itself (all images in one batch, on the CPU), as --help says", () => {
  assert.equal(R.jsonTwoBatches.code, 0, R.jsonTwoBatches.err);
  const recs = lines(R.jsonTwoBatches.out).map((l) => JSON.parse(l));
  assert.deepEqual(recs.map((r) => r.token_ids), greedy().new_tokens);
  for (const r of recs) assert.deepEqual(Object.keys(r.timings_ms), ['preprocess', 'encode', 'prefill', 'decode', 'total']);
  assert.match(R.help.out, /"timings_ms": \{preprocess, encode, prefill, decode, load\?, total\}/);
  assert.match(R.help.out, /When all\s+images fit in one --batch-size batch\s+and the model runs on the CPU,[^)]*load is then the time that took\.[^)]*there is no load\./);
});

test('--device auto where only the CPU provider can start runs as --device cpu: the same tokens, staged (a load time)', (t) => {
  if (candidates('auto').some((p) => p !== 'cpu' && providerStatus(p).installed)) return t.skip('a GPU provider is installed here');
  assert.equal(R.jsonAuto.code, 0, R.jsonAuto.err);
  const recs = lines(R.jsonAuto.out).map((l) => JSON.parse(l));
  assert.deepEqual(recs.map((r) => r.token_ids), greedy().new_tokens);
  for (const r of recs) assert.ok(typeof r.timings_ms.load === 'number', JSON.stringify(r.timings_ms));
});

test('the same image given twice is two rows, each printed with its own result (sampling draws differ by row)', async () => {
  assert.equal(R.sameTwice.code, 0, R.sameTwice.err);
  const recs = lines(R.sameTwice.out).map((l) => JSON.parse(l));
  const model = await load(caption);
  try {
    const want = await model.generate([IMG_A, IMG_A], { doSample: true, seed: 3, maxNewTokens: 8 });
    assert.deepEqual(recs.map((r) => r.token_ids), want.map((r) => r.tokenIds));
    assert.notDeepEqual(want[0]!.tokenIds, want[1]!.tokenIds, 'the two rows should differ for this to test anything');
  } finally {
    await model.close();
  }
});

test('--seed takes any integer the library takes, negative too, and samples what generate({ seed }) does', async () => {
  assert.equal(R.seedNegative.code, 0, R.seedNegative.err);
  const model = await load(caption);
  try {
    const [want] = await model.generate([IMG_A], { doSample: true, seed: -1, maxNewTokens: 8 });
    assert.deepEqual(JSON.parse(R.seedNegative.out).token_ids, want!.tokenIds);
  } finally {
    await model.close();
  }
});

test('a model that does not resize (do_resize false): an image of another size is an error record of its own naming it, the others run', async () => {
  assert.equal(R.noResize.code, 1, R.noResize.err);
  const [bad, good] = lines(R.noResize.out).map((l) => JSON.parse(l));
  assert.equal(bad.image, IMG_A);
  assert.equal(bad.code, 'BLIP5011');
  assert.equal(bad.error, `${IMG_A} is 37x23, but this model takes 32x32 images and does not resize them (do_resize false in its preprocessing): resize it first`);
  assert.equal(good.image, img32);
  assert.equal(good.token_ids.length, 3);
  // the library says the same, naming the file
  const model = await load(noResize);
  try {
    await assert.rejects(model.generate([img32, IMG_A], { maxNewTokens: 2 }), (e: Error & { code?: string }) => e.code === 'BLIP5011' && e.message.startsWith(`${IMG_A} is 37x23`));
  } finally {
    await model.close();
  }
});

test('one image streams its text to stdout; several print IMAGE: TEXT lines (beam search here)', () => {
  assert.equal(R.stream.code, 0, R.stream.err);
  assert.equal(R.stream.out, pyStrip(greedy().text[0]) + '\n');
  assert.equal(R.lines.code, 0, R.lines.err);
  assert.deepEqual(lines(R.lines.out), [`${IMG_A}: ${pyStrip(beam().text[0])}`, `${IMG_B}: ${pyStrip(beam().text[1])}`]);
});

test('a folder: images in name order, a corrupt one gets an error record, the rest run, exit 1', () => {
  assert.equal(R.folderJson.code, 1);
  const recs = lines(R.folderJson.out).map((l) => JSON.parse(l));
  assert.deepEqual(recs.map((r) => r.image), ['a.png', 'b.png', 'c.jpg'].map((f) => join(folder, f)));
  assert.equal(recs[1].code, 'BLIP5010');
  assert.match(recs[1].error, /cannot read image .*b\.png/);
  assert.deepEqual(recs[0].token_ids, greedy().new_tokens[0].slice(0, 5));
  assert.deepEqual(recs[2].token_ids, greedy().new_tokens[1].slice(0, 5));
  // no progress bar when stderr is not a terminal; the file that is no image is named in a note
  const note = `note: skipped 1 file in ${folder} that is not an image file by its extension or kind: notes.txt\n`;
  assert.equal(R.folderJson.err, note);
  assert.equal(R.folderText.code, 1);
  assert.equal(lines(R.folderText.out).length, 2);
  assert.equal(R.folderText.err.slice(0, note.length), note);
  assert.match(R.folderText.err.slice(note.length), /^error BLIP5010: cannot read image .*b\.png: .*\n$/);
});

test("a model whose generation config samples takes --temperature / --seed without --sample, and samples as --sample does", () => {
  assert.equal(R.samplingModel.code, 0, R.samplingModel.err);
  assert.deepEqual(JSON.parse(R.samplingModel.out).token_ids, JSON.parse(R.samplingFlag.out).token_ids);
});

test('sampling with a seed is reproducible', () => {
  assert.equal(R.sample1.code, 0, R.sample1.err);
  assert.equal(JSON.parse(R.sample1.out).text, JSON.parse(R.sample2.out).text);
  assert.deepEqual(JSON.parse(R.sample1.out).token_ids, JSON.parse(R.sample2.out).token_ids);
});

test('--top-p 1 is taken (top-p is in (0, 1]) and samples what top-p unset does', () => {
  assert.equal(R.topPOne.code, 0, R.topPOne.err);
  assert.equal(R.topPUnset.code, 0, R.topPUnset.err);
  assert.equal(R.topPOne.err, '');
  assert.deepEqual(JSON.parse(R.topPOne.out).token_ids, JSON.parse(R.topPUnset.out).token_ids);
});

test('ITM models print one JSON line per image-text pair', () => {
  assert.equal(R.itm.code, 0, R.itm.err);
  const recs = lines(R.itm.out).map((l) => JSON.parse(l));
  assert.equal(recs.length, 2);
  const e = expected('blip-itm-a').retrieval!;
  assert.equal(recs[0].text, e.texts[0]);
  assert.ok(Math.abs(recs[0].itm - e.itm_probs[0]) < 1e-4);
  assert.ok(Math.abs(recs[0].itc - e.itc_scores[0]) < 1e-4);
  assert.ok(recs[1].itm >= 0 && recs[1].itm <= 1);
});

test('help lists every option with examples', () => {
  assert.equal(R.help.code, 0);
  const options = ['--image', '--prompt', '--text', '--text-file', '--max-new-tokens', '--max-length', '--min-new-tokens', '--min-length', '--beams', '--length-penalty', '--early-stopping', '--num-return-sequences', '--repetition-penalty', '--no-repeat-ngram', '--no-sample', '--sample', '--top-p', '--top-k', '--temperature', '--seed', '--stop', '--logprobs', '--batch-size', '--device', '--threads', '--json'];
  for (const o of options) assert.match(R.help.out, new RegExp(`^ +${o} `, 'm'), o);
  assert.match(R.help.out, /Examples:\n {2}blip run /);
  assert.deepEqual(R.helpCommand, R.help); // `blip help run`
});

test('usage errors exit 2 with one line (and the --help hint)', () => {
  const cases: Array<[string, RegExp]> = [
    ['maxLengthAndNew', /^blip run: --max-length and --max-new-tokens both bound the length: give one \(--max-length counts the whole sequence, --max-new-tokens the new tokens\)$/],
    ['minLengthAndNew', /^blip run: --min-length and --min-new-tokens both bound the length: give one/],
    ['maxLengthZero', /^blip run: --max-length must be at least 1, found 0$/],
    ['minLengthNegative', /^blip run: --min-length must be at least 0, found -1$/],
    ['earlyStoppingYes', /^blip run: --early-stopping expects true, false or never, found 'yes'$/],
    ['earlyStoppingOnItm', /^blip run: --early-stopping is a generation setting, but .* is a BLIP retrieval model/],
    ['sampleNoSample', /^blip run: --sample and --no-sample contradict each other: give one$/],
    ['noSampleTopP', /^blip run: --top-p applies to sampling, which --no-sample turns off$/],
    ['noSampleOnItm', /^blip run: --no-sample is a generation setting, but .* is a BLIP retrieval model/],
    ['returnGreedy', /^blip run: --num-return-sequences 2 needs --beams 2 \(or more\) or --sample: greedy decoding returns one sequence$/],
    ['returnNoSampleModel', /^blip run: --num-return-sequences 2 needs --beams 2 \(or more\) or --sample/],
    ['returnMoreThanBeams', /^blip run: --num-return-sequences 3 is more than the 2 beams: beam search returns at most one sequence a beam; add --beams 3$/],
    ['returnMoreThanModelBeams', /^blip run: --num-return-sequences 6 is more than the 5 beams .*instructblip-vicuna-a searches with by default: beam search returns at most one sequence a beam; add --beams 6$/],
    ['returnZero', /^blip run: --num-return-sequences must be at least 1, found 0$/],
    ['returnMany', /^blip run: --num-return-sequences is 1000, more than the 256 this runtime takes$/],
    ['unknownFlag', /unknown option '--beam'; did you mean '--beams'\?$/],
    ['textOnCaption', /--text is for image-text matching, but .* is a BLIP captioning model/],
    ['promptOnItm', /--prompt is for generating models, but .* is a BLIP retrieval model/],
    ['itmNoText', /--text \(or --text-file\) is required/],
    ['textFileMissing', /^blip run: --text-file .*no-such-texts\.txt: cannot read it: no such file or folder \(ENOENT\)$/m],
    ['textFileEmpty', /^blip run: --text-file .*blank\.txt holds no texts: expected one text a line$/m],
    ['beamsOnItm', /--beams is a generation setting/],
    ['vqaNoPrompt', /--prompt is required: .* needs the question/],
    ['device', /unknown device 'gpu'.*expected one of cpu, cuda, tensorrt, webgpu, auto/],
    ['topPNoSample', /--top-p applies to sampling; add --sample/],
    ['badInt', /--beams expects an integer, found 'three'/],
    ['hugeInt', /--seed is 99999999999999999999999, beyond the integers a double holds exactly/],
    ['topPZero', /^blip run: --top-p must be in \(0, 1\], found 0$/m],
    ['topPAboveOne', /^blip run: --top-p must be in \(0, 1\], found 1\.01$/m],
    ['manyBeams', /--beams is 100000, more than the 256 this runtime takes/],
    ['vqaBlankPrompt', /--prompt is empty: .* needs the question/],
    ['helpAsValue', /--prompt expects a value/], // not the help: --help stands where --prompt's value belongs
    ['noImage', /--image PATH is required/],
    ['noDir', /expected OUTDIR/],
    ['emptyImage', /--image is empty: expected the path of an image file or folder/],
    ['urlImage', /--image https:\/\/example\.com\/cat\.jpg: expected a local file or folder \(blip run downloads nothing; save the image first\)/],
    ['emptyStop', /--stop is empty: a stop string needs at least one character/],
    ['manyStops', /--stop gives 5 different strings; at most 4/],
    ['stopOnItm', /--stop is a generation setting, but .* is a BLIP retrieval model/],
    ['logprobsNoJson', /--logprobs needs --json/],
    ['logprobsBeams', /--logprobs is for greedy decoding and --sample, not --beams/],
    ['logprobsMany', /--logprobs lists at most 20 alternatives, found 21/],
    ['logprobsBeamModel', /--logprobs is for greedy decoding and --sample, not beam search, and .* decodes with 5 beams by default: add --beams 1/],
    // a shell-expanded glob is the paths after --image: said in a line, not a usage error listing them all
    ['globShell', /^blip run: --image takes one path; 2 more paths follow it \(a shell-expanded glob\?\): pass the folder, or repeat --image$/],
    ['stdinImage', /--image -: reading an image from stdin is not supported; save it to a file and give its path$/],
  ];
  for (const [name, re] of cases) {
    const r = R[name];
    assert.equal(r.code, 2, `${name}: ${r.err}`);
    assert.equal(r.out, '', name);
    const l = lines(r.err);
    assert.equal(l.length, 2, `${name}: ${r.err}`);
    assert.match(l[0], re, name);
    assert.match(l[1], /Run 'blip run --help'/);
  }
});

test('failures exit 1 with one line: missing image, another format version, a folder that is not a model', () => {
  const cases: Array<[string, RegExp]> = [
    ['missingImage', /^error BLIP5010: cannot read image .*nope\.jpg: no such file or folder$/],
    ['oldVersion', /^error BLIP5003: .*format version 0.*reads version 1\. Recompile/],
    ['notCompiled', /^error BLIP5001: .* is not a compiled model/],
    // the library's message names its option; the command names its flag
    ['tooManyTokens', /^error BLIP5032: with no prompt, the start tokens take 1 position and up to 10000 new tokens were asked for; the decoder has \d+ positions: lower --max-new-tokens$/],
    // 8 image placeholders, BOS and 19 prompt tokens
    ['maxLengthBelowPrompt', /^error BLIP5030: the input \(start tokens, any image prefix and the prompt\) is 28 tokens but --max-length is 20, which counts them: raise --max-length or set --max-new-tokens$/],
  ];
  for (const [name, re] of cases) {
    const r = R[name];
    assert.equal(r.code, 1, `${name}: ${r.err}`);
    assert.equal(r.out, '');
    assert.equal(lines(r.err).length, 1, r.err);
    assert.match(r.err.trim(), re, name);
  }
});

test('a float16 model on the CPU runs, with one warning on stderr that it costs memory there and why', () => {
  const r = R.half;
  assert.equal(r.code, 0, r.err);
  assert.equal(lines(r.out).length, 1);
  assert.ok(JSON.parse(r.out).token_ids.length > 0);
  assert.equal(lines(r.err).length, 1, r.err);
  assert.match(r.err, /^warning: .*half is a float16 model; the CPU provider runs its matrix products in float32 .*compile with --dtype fp32, or --quantize int8/);
  // The float32 model says nothing.
  assert.equal(R.json.err, '');
  // nor does a quantized float16 one: its products are MatMulNBits over the int8 weights
  assert.equal(R.halfInt8.code, 0, R.halfInt8.err);
  assert.equal(R.halfInt8.err, '');
});

/** A 2x1 24-bit BMP (which PIL opens and the decoder, sharp, does not). */
function bmp2x1(): Buffer {
  const b = Buffer.alloc(54 + 8);
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(b.length, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(2, 18);
  b.writeInt32LE(1, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(8, 34);
  b.set([0, 0, 255, 0, 255, 0], 54); // red, green (BGR), padded to 8 bytes
  return b;
}

const EXTENSIONS = '.jpg, .jpeg, .jpe, .jfif, .png, .apng, .webp, .gif, .tif, .tiff, .avif';

test('a folder: images by any extension PIL opens them under run; a dangling link is an error line in its place; other files (a BMP too) are named in one note', () => {
  const r = R.mixedJson;
  assert.equal(r.code, 1, r.err);
  const recs = lines(r.out).map((l) => JSON.parse(l));
  assert.deepEqual(recs.map((x) => x.image), ['a.apng', 'b.jfif', 'd_broken.jpg', 'e.JPE'].map((f) => join(mixed, f)));
  assert.deepEqual(recs[0].token_ids, greedy().new_tokens[0].slice(0, 3));
  assert.deepEqual(recs[1].token_ids, greedy().new_tokens[1].slice(0, 3));
  assert.deepEqual(recs[3].token_ids, greedy().new_tokens[1].slice(0, 3));
  assert.deepEqual([recs[2].code, recs[2].error], ['BLIP5010', `cannot read image ${join(mixed, 'd_broken.jpg')}: it is a link to ${join(tmp.dir, 'gone.jpg')}, which does not exist`]);
  assert.equal(r.err, `note: skipped 3 files in ${mixed} that are not image files by their extension or kind: c.bmp, f_noext, g.txt\n`);
});

test('a quoted glob is a missing file that says globs are not supported, in its place; the image after it runs', () => {
  const r = R.globQuoted;
  assert.equal(r.code, 1, r.err);
  const [bad, good] = lines(r.out).map((l) => JSON.parse(l));
  assert.deepEqual(bad, { image: join(folder, '*.png'), error: `cannot read image ${join(folder, '*.png')}: no such file or folder (globs are not supported: pass the folder, or repeat --image for each file)`, code: 'BLIP5010' });
  assert.deepEqual(good.token_ids, greedy().new_tokens[0].slice(0, 3));
});

test('text output with an error entry before the one image: the caption is labelled on its own line, not streamed into the error', () => {
  const r = R.missingThenOneText;
  assert.equal(r.code, 1, r.err);
  assert.equal(r.err, `error BLIP5010: cannot read image ${join(tmp.dir, 'nope.jpg')}: no such file or folder\n`);
  assert.deepEqual(lines(r.out), [`${IMG_A}: ${lines(R.missingAmongText.out)[0]!.slice(`${IMG_A}: `.length)}`]);
});

test('a missing image among good ones is an error line in its place (a JSON record with --json); the others run; exit 1', () => {
  const bad = `cannot read image ${join(tmp.dir, 'nope.jpg')}: no such file or folder`;
  const j = R.missingAmongJson;
  assert.equal(j.code, 1, j.err);
  assert.equal(j.err, '');
  const recs = lines(j.out).map((l) => JSON.parse(l));
  assert.deepEqual(recs[1], { image: join(tmp.dir, 'nope.jpg'), error: bad, code: 'BLIP5010' });
  assert.deepEqual([recs[0].token_ids, recs[2].token_ids], greedy().new_tokens.map((t: number[]) => t.slice(0, 3)));
  const t = R.missingAmongText;
  assert.equal(t.code, 1, t.err);
  assert.deepEqual(lines(t.out), [`${IMG_A}: ${recs[0].text}`, `${IMG_B}: ${recs[2].text}`]);
  assert.equal(t.err, `error BLIP5010: ${bad}\n`);
  // a folder without images: its error record and the note; nothing to run
  assert.equal(R.noImagesJson.code, 1, R.noImagesJson.err);
  assert.deepEqual(JSON.parse(R.noImagesJson.out), { image: noImages, error: `cannot read image ${noImages}: the folder has no images (${EXTENSIONS})`, code: 'BLIP5010' });
  assert.equal(R.noImagesJson.err, `note: skipped 1 file in ${noImages} that is not an image file by its extension or kind: readme.md\n`);
});

test('a folder that cannot be listed is an error record naming it; the image beside it runs', (t) => {
  if (!locked) return t.skip('running as root, which lists any folder');
  const r = R.lockedJson;
  assert.equal(r.code, 1, r.err);
  const [good, bad] = lines(r.out).map((l) => JSON.parse(l));
  assert.deepEqual(good.token_ids, greedy().new_tokens[0].slice(0, 3));
  assert.deepEqual(bad, { image: locked, error: `cannot list folder ${locked}: permission denied (EACCES)`, code: 'BLIP5010' });
});

test('the image list: entries in input order, bad ones with their error; batches of --batch-size images to run', () => {
  const { entries, notes } = expandImages([IMG_A, join(mixed, 'd_broken.jpg'), mixed]);
  assert.deepEqual(entries.map((e) => [e.file, e.error?.code]), [
    [IMG_A, undefined],
    [join(mixed, 'd_broken.jpg'), 'BLIP5010'],
    [join(mixed, 'a.apng'), undefined],
    [join(mixed, 'b.jfif'), undefined],
    [join(mixed, 'd_broken.jpg'), 'BLIP5010'],
    [join(mixed, 'e.JPE'), undefined],
  ]);
  assert.equal(entries[1]!.error!.message, `cannot read image ${join(mixed, 'd_broken.jpg')}: it is a link to ${join(tmp.dir, 'gone.jpg')}, which does not exist`);
  assert.equal(notes.length, 1);
  // an entry in error takes no place in a batch
  assert.deepEqual(chunks(entries, 2).map((c) => c.length), [3, 3]);
});

test('the image list: a loop of links says so; a pipe named like an image is skipped as it always was', (t) => {
  const dir = join(tmp.dir, 'odd');
  mkdirSync(dir);
  symlinkSync('l2.png', join(dir, 'l1.png'));
  symlinkSync('l1.png', join(dir, 'l2.png'));
  const loop = expandImages([join(dir, 'l1.png')]);
  assert.equal(loop.entries[0]!.error!.message, `cannot read image ${join(dir, 'l1.png')}: it is a link to l2.png, in a loop of links that never reaches a file`);
  rmSync(join(dir, 'l1.png'));
  rmSync(join(dir, 'l2.png'));
  copyFileSync(IMG_A, join(dir, 'a.png'));
  if (spawnSync('mkfifo', [join(dir, 'pipe.png')]).status !== 0) return t.skip('needs mkfifo');
  const { entries, notes } = expandImages([dir]);
  assert.deepEqual(entries.map((e) => e.file), [join(dir, 'a.png')]);
  assert.deepEqual(notes, [`note: skipped 1 file in ${dir} that is not an image file by its extension or kind: pipe.png`]);
});

test('an image is resized for the model as soon as it is decoded (a batch holds no full-size image), to the pixels the library makes of it', async () => {
  const m = JSON.parse(readFileSync(join(caption, 'manifest.json'), 'utf8'));
  const cfg = preprocessFromManifest(m.preprocess);
  const px = await readForModel(IMG_B, cfg);
  assert.deepEqual([px.width, px.height], [cfg.image_size.width, cfg.image_size.height]);
  assert.notDeepEqual([64, 48], [px.width, px.height]);
  // the same tokens as the library given the file
  const model = await load(caption);
  try {
    const [fromFile, fromPixels] = await Promise.all([model.generate([IMG_B], { maxNewTokens: 6 }), model.generate([px], { maxNewTokens: 6 })]);
    assert.deepEqual(fromPixels[0]!.tokenIds, fromFile[0]!.tokenIds);
  } finally {
    await model.close();
  }
});

test('ITM: one itm() call per --batch-size chunk, each image paired with every text; the scores the library gives image by image', async () => {
  // the call the command makes
  const calls: Array<{ images: number; texts: string[]; batchSize?: number }> = [];
  const fake = { itm: async (images: DecodedImage[], texts: string[], o: { batchSize?: number }) => (calls.push({ images: new Set(images).size, texts, batchSize: o.batchSize }), texts.map((_, k) => ({ itm: k, itc: k + 0.5 }))) } as unknown as BlipModel;
  const px = (w: number): DecodedImage => ({ data: new Uint8Array(w * 3), width: w, height: 1, channels: 3 });
  const got = await runItm(fake, [{ file: 'a', pixels: px(1) }, { file: 'b', pixels: px(2) }], ['x', 'y'], 3);
  // at most --batch-size pairs a model call (its memory: not all of a chunk's pairs at once)
  assert.deepEqual(calls, [{ images: 2, texts: ['x', 'y', 'x', 'y'], batchSize: 3 }]);
  assert.deepEqual(got.map((g) => lines(g).map((l) => JSON.parse(l))), [
    [{ image: 'a', text: 'x', itm: 0, itc: 0.5 }, { image: 'a', text: 'y', itm: 1, itc: 1.5 }],
    [{ image: 'b', text: 'x', itm: 2, itc: 2.5 }, { image: 'b', text: 'y', itm: 3, itc: 3.5 }],
  ]);
  // the command's scores: those of one image at a time, exactly
  assert.equal(R.itmBatch.code, 0, R.itmBatch.err);
  const recs = lines(R.itmBatch.out).map((l) => JSON.parse(l));
  const texts = ['a cat on a couch', 'two dogs'];
  const model = await load(itm);
  try {
    const want: unknown[] = [];
    for (const image of [IMG_A, IMG_B, IMG_A]) (await model.itm([image], texts)).forEach((r, j) => want.push({ image, text: texts[j], itm: r.itm, itc: r.itc }));
    assert.deepEqual(recs, want);
  } finally {
    await model.close();
  }
});

test('--text-file: its texts, one a line (CR LF, blank lines skipped), after --text in order; 1500 of them run (as --text flags, 56 KB of command line crashed onnxruntime)', async () => {
  assert.equal(R.itmTextFile.code, 0, R.itmTextFile.err);
  const recs = lines(R.itmTextFile.out).map((l) => JSON.parse(l));
  const texts = ['a cat on a couch', 'two dogs', 'three cats'];
  const model = await load(itm);
  try {
    const want = (await model.itm([IMG_A], texts)).map((r, j) => ({ image: IMG_A, text: texts[j], itm: r.itm, itc: r.itc }));
    assert.deepEqual(recs, want);
  } finally {
    await model.close();
  }
  assert.equal(R.itmManyTexts.code, 0, R.itmManyTexts.err);
  const many = lines(R.itmManyTexts.out).map((l) => JSON.parse(l));
  assert.equal(many.length, 1500);
  assert.equal(many[1499].text, 'a photo of object number 1500 on a table');
});

test('--json timings_ms: preprocess and total count the time the command spent reading and decoding the batch', () => {
  assert.deepEqual(timingsRecord({ preprocess: 1, encode: 2, prefill: 3, decode: 4, total: 10 }, 5), { preprocess: 6, encode: 2, prefill: 3, decode: 4, total: 15 });
  assert.deepEqual(timingsRecord({ preprocess: 1, encode: 2, prefill: 3, decode: 4, load: 7, total: 17 }, 0.5), { preprocess: 1.5, encode: 2, prefill: 3, decode: 4, load: 7, total: 17.5 });
});

/** The JSON line's sequences as [token_ids, score]. */
const beamsOf = (r: { token_ids: number[]; score?: number; sequences?: Array<{ token_ids: number[]; score?: number }> }) => (r.sequences ?? [r]).map((q) => ({ tokens: q.token_ids, score: q.score }));
const close = (a: number | undefined, b: number, tol = 1e-5) => typeof a === 'number' && Math.abs(a - b) <= tol;
/** transformers' beam rows through their first EOS (token_ids leave out the padding after it). */
const beamTokens = () => {
  const eos: number[] = JSON.parse(readFileSync(join(caption, 'manifest.json'), 'utf8')).text.eos_token_id;
  return beam().new_tokens.map((t) => (t.findIndex((x) => eos.includes(x)) < 0 ? t : t.slice(0, t.findIndex((x) => eos.includes(x)) + 1)));
};

test('--max-length counts the whole sequence, as transformers\' max_length: for BLIP captioning [DEC] and the prompt', () => {
  assert.equal(R.maxLength.code, 0, R.maxLength.err);
  // no prompt: [DEC] and 4 new tokens, the first 4 of transformers' greedy caption (12 tokens, no EOS)
  assert.deepEqual(JSON.parse(R.maxLength.out).token_ids, greedy().new_tokens[0].slice(0, 4));
});

test('--min-length counts the whole sequence (image placeholders, BOS and prompt for BLIP-2 OPT): EOS waits, as the library does it', async () => {
  assert.equal(R.minLength.code, 0, R.minLength.err);
  const got = JSON.parse(R.minLength.out).token_ids as number[];
  const model = await load(opt);
  try {
    const [alone] = await model.generate([OPT_IMAGE], { prompt: OPT_QUESTION, maxNewTokens: 6 });
    const [want] = await model.generate([OPT_IMAGE], { prompt: OPT_QUESTION, minLength: 31, maxNewTokens: 6 });
    assert.deepEqual(alone!.tokenIds, [467, 2]); // EOS second without it
    assert.deepEqual(got, want!.tokenIds);
    assert.ok(got.length >= 3 && !got.slice(0, 3).includes(2), JSON.stringify(got)); // 31 - 28 = 3 tokens before EOS may come
  } finally {
    await model.close();
  }
});

test('--json: beam search gives each line its score, transformers\' sequences_scores; greedy lines have none', () => {
  assert.equal(R.beamsJson.code, 0, R.beamsJson.err);
  const recs = lines(R.beamsJson.out).map((l) => JSON.parse(l));
  recs.forEach((r, b) => {
    assert.deepEqual(r.token_ids, beamTokens()[b]);
    assert.ok(close(r.score, beam().sequences_scores![b]!, 1e-4), `${r.score} vs ${beam().sequences_scores![b]}`);
    assert.deepEqual(Object.keys(r), ['image', 'text', 'token_ids', 'score', 'timings_ms']);
  });
  for (const r of lines(R.json.out).map((l) => JSON.parse(l))) assert.equal('score' in r, false);
});

test('--early-stopping true / false / never: the beams and scores transformers gives for each', () => {
  for (const [name, key] of [['earlyTrue', 'true'], ['earlyFalse', 'false'], ['earlyNever', 'never']] as const) {
    const r = R[name]!;
    assert.equal(r.code, 0, r.err);
    const [got] = beamsOf(JSON.parse(r.out));
    const want = HF_EARLY_STOPPING[key];
    assert.deepEqual(got!.tokens, want.tokens[0], name);
    assert.ok(close(got!.score, want.scores[0]!), `${name}: ${got!.score}`);
  }
});

test('--num-return-sequences N with beams: one JSON line per image, the N best beams in "sequences" (the first also at the top), as transformers returns them', () => {
  assert.equal(R.returnBeams.code, 0, R.returnBeams.err);
  const r = JSON.parse(R.returnBeams.out);
  const want = HF_EARLY_STOPPING.never3;
  const got = beamsOf(r);
  assert.deepEqual(got.map((g) => g.tokens), want.tokens);
  got.forEach((g, k) => assert.ok(close(g.score, want.scores[k]!), `${k}: ${g.score}`));
  assert.deepEqual([r.text, r.token_ids, r.score], [r.sequences[0].text, r.sequences[0].token_ids, r.sequences[0].score]);
  assert.deepEqual(Object.keys(r), ['image', 'text', 'token_ids', 'score', 'sequences', 'timings_ms']);
  assert.deepEqual(Object.keys(r.sequences[1]), ['text', 'token_ids', 'score']);
  // without --json: each sequence a line (one image: the texts alone; several: IMAGE: TEXT)
  assert.equal(R.returnBeamsText.code, 0, R.returnBeamsText.err);
  assert.deepEqual(lines(R.returnBeamsText.out), r.sequences.map((q: { text: string }) => q.text));
  assert.equal(R.returnBeamsLines.code, 0, R.returnBeamsLines.err);
  const two = lines(R.returnBeamsLines.out);
  assert.equal(two.length, 4);
  for (const l of two) assert.ok(l.startsWith(`${OPT_IMAGE}: `), l);
});

test('--num-return-sequences N with --sample: N samples per image, those the library draws for the seed', async () => {
  assert.equal(R.returnSamples.code, 0, R.returnSamples.err);
  const r = JSON.parse(R.returnSamples.out);
  const model = await load(caption);
  try {
    const [want] = await model.generate([IMG_A], { doSample: true, seed: 4, numReturnSequences: 2, maxNewTokens: 8 });
    assert.deepEqual(r.sequences.map((q: { token_ids: number[] }) => q.token_ids), want!.sequences!.map((q) => q.tokenIds));
    assert.notDeepEqual(want!.sequences![0]!.tokenIds, want!.sequences![1]!.tokenIds, 'two samples should differ for this to test anything');
    assert.equal('score' in r, false);
  } finally {
    await model.close();
  }
});

test('--no-sample: a model whose generation config samples decodes greedily (transformers\' do_sample=False), or searches with --beams; --beams 1 alone still samples', () => {
  assert.equal(R.samplingBeams1.code, 0, R.samplingBeams1.err);
  assert.notDeepEqual(JSON.parse(R.samplingBeams1.out).token_ids, greedy().new_tokens[0], 'the model should sample without --no-sample');
  assert.equal(R.noSample.code, 0, R.noSample.err);
  assert.deepEqual(JSON.parse(R.noSample.out).token_ids, greedy().new_tokens[0]);
  assert.equal(R.noSampleBeams.code, 0, R.noSampleBeams.err);
  const recs = lines(R.noSampleBeams.out).map((l) => JSON.parse(l));
  assert.deepEqual(recs.map((r) => r.token_ids), beamTokens());
  recs.forEach((r, b) => assert.ok(close(r.score, beam().sequences_scores![b]!, 1e-4)));
});
