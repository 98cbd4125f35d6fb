// CapFilt in one process over small WebDataset shards, with the TEST DOUBLE models.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { finalize, OutputDir, resolveSettings, runCapfilt, type CapfiltModels, type ImageInput, type Pixels, type RunOptions, type SampleRecord, type FinalStats, type ModelLoader } from '../../../src/capfilt/index.js';
import { BlipError, UsageError } from '../../../src/cli/Command.js';
import { buildFixture, image, readTar, treeDigest, writeTar, type Fixture } from './helpers/fixtures.js';
import { testDoubleModels } from './helpers/testDoubleModels.js';
import sharp from 'sharp';
import { IMAGE_EXTENSIONS } from '../../../runtime/preprocess/imageExtensions.js';
import { IMAGE_EXTENSIONS as cliImageExtensions } from '../../../src/cli/imageList.js';

let root: string;
let fx: Fixture;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'capfilt-pipeline-'));
  fx = await buildFixture(root);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const load: ModelLoader = async () => testDoubleModels();
const opts = (output: string, more: Partial<RunOptions> = {}): RunOptions => ({
  captioner: join(root, 'models/captioner'),
  filter: join(root, 'models/itm'),
  inputs: [fx.input],
  output,
  captionsPerImage: 3,
  batchSize: 2,
  seed: 7,
  ...more,
});

test('output shards mirror the input: image bytes untouched, one .json per sample, deterministic tar headers', async () => {
  const out = join(root, 'out-basic');
  const summary = await runCapfilt(opts(out), load);
  assert.equal(summary.processed, 4);
  assert.ok(summary.final);
  for (const id of fx.ids) {
    const entries = await readTar(join(out, id));
    const inEntries = await readTar(join(fx.input, id));
    const keys = fx.validKeys.get(id)!;
    assert.deepEqual(entries.map((e) => e.name.split('.')[0]), keys.flatMap((k) => [k, k]), id);
    for (const e of entries) {
      assert.deepEqual([e.mtime, e.uid, e.gid, e.mode], [0, 0, 0, 0o644]);
      if (e.name.endsWith('.json')) continue;
      const src = inEntries.find((x) => x.name === e.name);
      assert.ok(src, `${e.name} comes from the input`);
      assert.ok(src.data.equals(e.data), `${e.name}: image bytes untouched`);
    }
  }

  const s0 = await readTar(join(out, '00000.tar'));
  const rec = (key: string): SampleRecord => JSON.parse(s0.find((e) => e.name === `${key}.json`)!.data.toString('utf8'));
  const r0 = rec('00000000');
  assert.equal(r0.image, '00000000.jpg');
  assert.equal(r0.web?.text, 'a red square on a wall');
  assert.equal(r0.synthetic.length, 3);
  assert.deepEqual(r0.meta, { url: 'https://example.com/a.jpg', caption: 'a red square on a wall', width: 16, height: 12 });
  for (const t of [r0.web!, ...r0.synthetic]) {
    assert.ok(t.itm >= 0 && t.itm <= 1);
    assert.equal(t.kept, t.itm >= 0.5);
  }
  assert.deepEqual(r0.kept, [...new Set([r0.web!, ...r0.synthetic].filter((t) => t.kept).map((t) => t.text))]);
  assert.equal(rec('00000002').web, null, 'missing text');
  assert.equal(rec('00000005').web, null, 'whitespace-only text counts as missing');
  const huge = rec('00000003');
  assert.ok(huge.web!.text.length > 1_000_000, 'a huge text is kept whole');
  assert.ok(huge.web!.text.startsWith('a blue very very'));

  const stats: FinalStats = JSON.parse(await readFile(join(out, 'stats.json'), 'utf8'));
  assert.equal(stats.shards, 4);
  assert.equal(stats.images_seen, 6 + 8 + 6 + 6);
  assert.equal(stats.images_ok, 5 + 6 + 6 + 6);
  assert.equal(stats.errors, 3);
  assert.equal(stats.texts.web.missing, 2);
  assert.equal(stats.texts.web.kept + stats.texts.web.dropped, stats.images_ok - 2);
  assert.equal(stats.texts.synthetic.kept + stats.texts.synthetic.dropped, stats.images_ok * 3);
  assert.ok(stats.texts.synthetic.kept > 0 && stats.texts.synthetic.dropped > 0, 'the filter keeps some and drops some');
  assert.ok(stats.texts.web.kept > 0 && stats.texts.web.dropped > 0);

  const errors = (await readFile(join(out, 'errors.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(errors.map((e) => [e.shard, e.key]), [['00000.tar', '00000001'], ['00001.tar', '00010000'], ['00001.tar', '00010001']]);
  assert.match(errors[0].error, /^cannot read image 00000001\.jpg: not a supported image/);
  assert.match(errors[1].error, /^cannot read image 00010000\.jpg: the file is (truncated|corrupt)/);
  assert.match(errors[2].error, /^no image/);
  assert.deepEqual(await readdir(join(out, '_capfilt', 'tmp')), [], 'no temp file left');
});

test('captions and scores do not depend on the batch size; a different seed changes captions', async () => {
  const a = join(root, 'out-b2');
  const b = join(root, 'out-b5');
  const c = join(root, 'out-seed');
  await runCapfilt(opts(a, { inputs: [join(fx.input, '00003.tar')] }), load);
  await runCapfilt(opts(b, { inputs: [join(fx.input, '00003.tar')], batchSize: 5 }), load);
  await runCapfilt(opts(c, { inputs: [join(fx.input, '00003.tar')], seed: 8 }), load);
  const ta = await readTar(join(a, '00003.tar'));
  const tb = await readTar(join(b, '00003.tar'));
  const tc = await readTar(join(c, '00003.tar'));
  assert.deepEqual(ta.map((e) => e.data.toString('base64')), tb.map((e) => e.data.toString('base64')));
  assert.notDeepEqual(ta.map((e) => e.data.toString('base64')), tc.map((e) => e.data.toString('base64')));
});

test('a negative --seed is a seed like any other (as blip run and blip serve take it): -1 samples other captions than 1, the same on a rerun', async () => {
  const input = join(fx.input, '00003.tar');
  const minus = join(root, 'out-seed-minus1');
  const again = join(root, 'out-seed-minus1-again');
  const plus = join(root, 'out-seed-plus1');
  await runCapfilt(opts(minus, { inputs: [input], seed: -1 }), load);
  await runCapfilt(opts(again, { inputs: [input], seed: -1 }), load);
  await runCapfilt(opts(plus, { inputs: [input], seed: 1 }), load);
  const shard = async (out: string) => (await readTar(join(out, '00003.tar'))).map((e) => e.data.toString('base64'));
  assert.deepEqual(await shard(minus), await shard(again));
  assert.notDeepEqual(await shard(minus), await shard(plus));
  assert.equal(JSON.parse(await readFile(join(minus, '_capfilt', 'run.json'), 'utf8')).settings.seed, -1);
});

test('a re-run skips complete shards without loading models; other settings are refused', async () => {
  const out = join(root, 'out-rerun');
  await runCapfilt(opts(out), load);
  const before = await treeDigest(out);
  const noModels: ModelLoader = async () => {
    throw new Error('models must not be loaded when every shard is complete');
  };
  const s = await runCapfilt(opts(out), noModels);
  assert.equal(s.skipped, 4);
  assert.equal(s.processed, 0);
  assert.deepEqual(await treeDigest(out), before);
  await assert.rejects(runCapfilt(opts(out, { topP: 0.5 }), load), (e: BlipError) => e.code === 'BLIP5803' && /top_p/.test(e.message));
  await assert.rejects(runCapfilt(opts(out, { inputs: [join(fx.input, '00000.tar')] }), load), (e: BlipError) => e.code === 'BLIP5803' && /other inputs/.test(e.message));
});

test('a shard whose sidecar was written but whose tar was not (a crash between the two) is processed again on resume', async () => {
  const out = join(root, 'out-no-tar');
  await runCapfilt(opts(out), load);
  const before = await treeDigest(out);
  const id = fx.ids[0];
  // processShard writes the sidecar, then commits the tar: leave the state a crash between them leaves
  await rm(join(out, id));
  assert.ok(before[`_capfilt/shards/${id}.json`], 'the sidecar stays');
  const s = await runCapfilt(opts(out), load);
  assert.deepEqual([s.processed, s.skipped], [1, 3]);
  assert.deepEqual(await treeDigest(out), before);
});

test('finalize writes no stats.json while a shard\'s tar is missing, though every sidecar is there', async () => {
  const out = join(root, 'out-finalize-no-tar');
  await runCapfilt(opts(out), load);
  await rm(join(out, 'stats.json'));
  await rm(join(out, 'errors.jsonl'));
  // the state a crash between a shard's sidecar and its tar leaves, in the last shard to complete
  await rm(join(out, fx.ids[1]));
  assert.equal(await finalize(new OutputDir(out)), undefined);
  await assert.rejects(stat(join(out, 'stats.json')), { code: 'ENOENT' });
  await assert.rejects(stat(join(out, 'errors.jsonl')), { code: 'ENOENT' });
});

test('settings at the edges of their ranges: --top-p 0 and a min length above the max are refused, 100 captions per image are not', async () => {
  const settings = (more: Partial<RunOptions>) => resolveSettings(opts(join(root, 'out-ranges'), more));
  await assert.rejects(settings({ topP: 0 }), (e: Error) => e instanceof UsageError && e.message === '--top-p must be in (0, 1], got 0');
  assert.equal((await settings({ topP: 1 })).topP, 1);
  assert.equal((await settings({ captionsPerImage: 100 })).captionsPerImage, 100);
  await assert.rejects(settings({ captionsPerImage: 101 }), (e: Error) => e instanceof UsageError && e.message === '--captions-per-image must be an integer from 0 to 100, got 101');
  const same = await settings({ minLength: 30, maxLength: 30 });
  assert.deepEqual([same.minLength, same.maxLength], [30, 30]);
  await assert.rejects(settings({ minLength: 31, maxLength: 30 }), (e: Error) => e instanceof UsageError && e.message === 'min length must be an integer from 0 to the max length, got 31');
});

test('the K captions of an image are drawn with K distinct seeds', async () => {
  const seeds: number[][] = [];
  const recording: ModelLoader = async () => {
    const m = testDoubleModels();
    const caption = m.captioner.caption.bind(m.captioner);
    m.captioner.caption = async (images, o) => {
      seeds.push(...o.seeds);
      return caption(images, o);
    };
    return m;
  };
  const s = await runCapfilt(opts(join(root, 'out-seeds'), { inputs: [join(fx.input, '00003.tar')] }), recording);
  assert.equal(seeds.length, s.final?.images_ok);
  for (const k of seeds) assert.equal(new Set(k).size, 3, `seeds ${JSON.stringify(k)}`);
  assert.equal(new Set(seeds.flat()).size, seeds.length * 3, 'no seed is shared between images either');
});

test('--min-itm keeps a text whose (6-decimal) score equals it, as docs/capfilt.md says: kept is itm >= --min-itm', async () => {
  const input = join(fx.input, '00003.tar');
  const texts = async (out: string) =>
    (await readTar(join(out, '00003.tar'))).filter((e) => e.name.endsWith('.json')).flatMap((e) => {
      const r: SampleRecord = JSON.parse(e.data.toString('utf8'));
      return [...(r.web ? [r.web] : []), ...r.synthetic];
    });
  const scored = join(root, 'out-tie-scores');
  await runCapfilt(opts(scored, { inputs: [input] }), load);
  // a recorded score as the threshold: the median, so some texts score below it
  const scores = (await texts(scored)).map((t) => t.itm).sort((a, b) => a - b);
  const itm = scores[Math.floor(scores.length / 2)];
  const out = join(root, 'out-tie');
  await runCapfilt(opts(out, { inputs: [input], minItm: itm }), load);
  const judged = await texts(out);
  const tied = judged.filter((t) => t.itm === itm);
  assert.ok(tied.length > 0 && judged.some((t) => t.itm < itm), `a text scored ${itm} and one below it`);
  for (const t of tied) assert.equal(t.kept, true, `${JSON.stringify(t.text)} scored ${t.itm} = --min-itm`);
  for (const t of judged) assert.equal(t.kept, t.itm >= itm, `${JSON.stringify(t.text)} scored ${t.itm}`);
});

test('--samples-per-shard is part of the settings only where the plan has JSONL shards: a tar-only run resumes with another', async () => {
  const out = join(root, 'out-sps');
  await runCapfilt(opts(out, { inputs: [join(fx.input, '00003.tar')], samplesPerShard: 1000 }), load);
  const run = JSON.parse(await readFile(join(out, '_capfilt', 'run.json'), 'utf8'));
  assert.equal('samples_per_shard' in run.settings, false);
  assert.equal((await runCapfilt(opts(out, { inputs: [join(fx.input, '00003.tar')], samplesPerShard: 5 }), load)).skipped, 1);
  // with a JSONL input it decides the shards: recorded, and a change refused
  const dir = join(root, 'sps');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'r.jpg'), await image('red', 'jpeg'));
  await writeFile(join(dir, 'p.jsonl'), JSON.stringify({ image: 'r.jpg', text: 'a red card' }) + '\n');
  const jl = join(root, 'out-sps-jsonl');
  await runCapfilt(opts(jl, { inputs: [join(dir, 'p.jsonl')], samplesPerShard: 1000 }), load);
  assert.equal(JSON.parse(await readFile(join(jl, '_capfilt', 'run.json'), 'utf8')).settings.samples_per_shard, 1000);
  await assert.rejects(runCapfilt(opts(jl, { inputs: [join(dir, 'p.jsonl')], samplesPerShard: 5 }), load), (e: BlipError) => e.code === 'BLIP5803' && /samples_per_shard = 1000, this run has 5/.test(e.message));
});

test('a truncated tar keeps the samples before the damage and records one shard error', async () => {
  const dir = join(root, 'truncated');
  await writeTar(join(dir, 'full.tar'), [
    ['a.jpg', await image('red', 'jpeg')],
    ['a.txt', 'a red thing'],
    ['b.png', await image('blue', 'png')],
    ['b.txt', 'x'.repeat(5000)],
  ]);
  const full = await readFile(join(dir, 'full.tar'));
  await writeFile(join(dir, 'cut.tar'), full.subarray(0, full.length - 1024 - 2000)); // cut inside b.txt
  await rm(join(dir, 'full.tar'));
  const out = join(root, 'out-truncated');
  const s = await runCapfilt(opts(out, { inputs: [dir] }), load);
  assert.equal(s.final?.errors, 2);
  const errors = (await readFile(join(out, 'errors.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(errors.map((e) => e.key), ['b', null]);
  assert.match(errors[0].error, /breaks off in b\.txt/);
  assert.match(errors[1].error, /^tar: /);
  assert.deepEqual((await readTar(join(out, 'cut.tar'))).map((e) => e.name), ['a.jpg', 'a.json']);
});

test('a tar cut off exactly at an entry boundary (no end-of-archive zero blocks) is a break: its last sample and the shard get error records; one zero block is an end', async () => {
  const dir = join(root, 'boundary');
  await writeTar(join(dir, 'full.tar'), [
    ['a.jpg', await image('red', 'jpeg')],
    ['a.txt', 'a red thing'],
    ['b.jpg', await image('blue', 'jpeg')],
  ]);
  const full = await readFile(join(dir, 'full.tar'));
  assert.ok(full.subarray(full.length - 1024).every((b) => b === 0), 'tar-stream ends an archive with two zero blocks');
  await writeFile(join(dir, 'cut.tar'), full.subarray(0, full.length - 1024)); // b.txt (say) never written
  await writeFile(join(dir, 'lone.tar'), full.subarray(0, full.length - 512)); // GNU tar: "a lone zero block", read on
  await rm(join(dir, 'full.tar'));
  const out = join(root, 'out-boundary');
  const s = await runCapfilt(opts(out, { inputs: [dir] }), load);
  const errors = (await readFile(join(out, 'errors.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(errors.map((e) => [e.shard, e.key]), [['cut.tar', 'b'], ['cut.tar', null]]);
  assert.equal(errors[0].error, 'the shard breaks off after this sample, which may have had more files (the archive ends after b.jpg without the zero blocks that end a tar: the file was cut off)');
  assert.equal(errors[1].error, 'tar: the archive ends after b.jpg without the zero blocks that end a tar: the file was cut off');
  assert.deepEqual((await readTar(join(out, 'cut.tar'))).map((e) => e.name), ['a.jpg', 'a.json']);
  assert.deepEqual((await readTar(join(out, 'lone.tar'))).map((e) => e.name), ['a.jpg', 'a.json', 'b.jpg', 'b.json']);
  assert.equal(s.final?.images_ok, 3);
});

test("a tar that breaks off in a sample's first file blames that sample and keeps the one before", async () => {
  const dir = join(root, 'truncated-first');
  const a = await image('red', 'jpeg');
  const b = Buffer.concat([await image('blue', 'png'), Buffer.alloc(3000, 7)]); // PNG ignores what follows IEND
  await writeTar(join(dir, 'full.tar'), [
    ['a.jpg', a],
    ['a.txt', 'a red thing'],
    ['b.png', b],
    ['b.txt', 'a blue thing'],
  ]);
  const full = await readFile(join(dir, 'full.tar'));
  const bStart = 512 + Math.ceil(a.length / 512) * 512 + 1024; // a.jpg, a.txt: header and body each
  await writeFile(join(dir, 'cut.tar'), full.subarray(0, bStart + 512 + 100)); // 100 bytes into b.png
  await rm(join(dir, 'full.tar'));
  const out = join(root, 'out-truncated-first');
  const s = await runCapfilt(opts(out, { inputs: [dir] }), load);
  const errors = (await readFile(join(out, 'errors.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(errors.map((e) => e.key), ['b', null]);
  assert.match(errors[0].error, /breaks off in b\.png/);
  assert.equal(s.final?.images_ok, 1);
  assert.deepEqual((await readTar(join(out, 'cut.tar'))).map((e) => e.name), ['a.jpg', 'a.json']);
});

test('WebDataset refusals are error records: a key used twice, a file name twice in a sample, a .txt not UTF-8; a GIF is an image; an empty file a shard error', async () => {
  const dir = join(root, 'odd');
  const gif = await sharp({ create: { width: 8, height: 6, channels: 3, background: 'green' } }).gif().toBuffer();
  await writeTar(join(dir, 'odd.tar'), [
    ['a.jpg', await image('red', 'jpeg')],
    ['a.txt', 'first a'],
    ['b.jpg', await image('blue', 'jpeg')],
    ['b.txt', 'b'],
    ['a.jpg', await image('red', 'jpeg')],
    ['a.txt', 'a again'],
    ['c.jpg', await image('red', 'jpeg')],
    ['c.txt', Buffer.from('caf\xe9 cr\xe8me', 'latin1')],
    ['d.gif', gif],
    ['d.txt', 'a green gif'],
    ['e.jpg', await image('red', 'jpeg')],
    ['e.txt', 'one'],
    ['e.txt', 'two'],
  ]);
  await writeFile(join(dir, 'zero.tar'), '');
  const out = join(root, 'out-odd');
  await runCapfilt(opts(out, { inputs: [dir] }), load);
  const errors = (await readFile(join(out, 'errors.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(errors.map((e) => [e.shard, e.key]), [['odd.tar', 'a'], ['odd.tar', 'c'], ['odd.tar', 'e'], ['zero.tar', null]]);
  assert.match(errors[0].error, /key a is used by an earlier sample/);
  assert.match(errors[1].error, /c\.txt is not UTF-8 text/);
  assert.match(errors[2].error, /e\.txt appears twice in the sample/);
  assert.match(errors[3].error, /the file is empty, not a tar archive/);
  const names = (await readTar(join(out, 'odd.tar'))).map((e) => e.name);
  assert.deepEqual(names, ['a.jpg', 'a.json', 'b.jpg', 'b.json', 'd.gif', 'd.json']);
});

test("a tar sample's fields are its extensions lower-cased, as WebDataset's: a.JPG is its jpg, and a.JPG beside a.jpg (or a.TXT beside a.txt) is a file twice, an error record naming both", async () => {
  const dir = join(root, 'case');
  const red = await image('red', 'jpeg');
  await writeTar(join(dir, 'case.tar'), [
    ['a.JPG', red],
    ['a.jpg', await image('blue', 'jpeg')],
    ['a.txt', 'which image?'],
    ['b.JPG', red],
    ['b.Txt', 'an upper-case jpg'],
    ['b.JSON', '{"url": "b"}'],
    ['c.jpg', red],
    ['c.TXT', 'first text'],
    ['c.txt', 'second text'],
    ['d.png', await image('green', 'png')],
    ['d.Json', '{"m": 1}'],
    ['d.json', '{"m": 2}'],
    ['e.PNG', await image('green', 'png')],
  ]);
  const out = join(root, 'out-case');
  await runCapfilt(opts(out, { inputs: [dir] }), load);
  const entries = await readTar(join(out, 'case.tar'));
  assert.deepEqual(entries.map((e) => e.name), ['b.JPG', 'b.json', 'e.PNG', 'e.json']);
  const b: SampleRecord = JSON.parse(entries.find((e) => e.name === 'b.json')!.data.toString('utf8'));
  assert.equal(b.image, 'b.JPG');
  assert.equal(b.web?.text, 'an upper-case jpg');
  assert.deepEqual(b.meta, { url: 'b' });
  const errors = (await readFile(join(out, 'errors.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  const twice = (x: string, y: string, field: string): string => `${x} and ${y} are both the sample's "${field}" file: WebDataset lower-cases extensions and refuses a file twice in a sample`;
  assert.deepEqual(errors.map((e) => [e.shard, e.key, e.error]), [
    ['case.tar', 'a', twice('a.JPG', 'a.jpg', 'jpg')],
    ['case.tar', 'c', twice('c.TXT', 'c.txt', 'txt')],
    ['case.tar', 'd', twice('d.Json', 'd.json', 'json')],
  ]);
});

test("a tar sample's image is found by blip run's extensions (.jpe, .jfif, .apng too: one shared list); a .bmp is an unsupported format, not a missing image", async () => {
  assert.equal(cliImageExtensions, IMAGE_EXTENSIONS, 'blip run and CapFilt share one list');
  const dir = join(root, 'exts');
  await writeTar(join(dir, 'x.tar'), [
    ['a.jpe', await image('red', 'jpeg')],
    ['a.txt', 'jpe'],
    ['b.jfif', await image('blue', 'jpeg')],
    ['c.apng', await image('green', 'png')],
    ['d.bmp', Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)])],
    ['d.txt', 'a bitmap'],
    ['e.cls', '3'],
    ['e.txt', 'a label and a text'],
  ]);
  const out = join(root, 'out-exts');
  await runCapfilt(opts(out, { inputs: [dir] }), load);
  assert.deepEqual((await readTar(join(out, 'x.tar'))).map((e) => e.name), ['a.jpe', 'a.json', 'b.jfif', 'b.json', 'c.apng', 'c.json']);
  const errors = (await readFile(join(out, 'errors.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  const files = 'a .jpg, .jpeg, .jpe, .jfif, .png, .apng, .webp, .gif, .tif, .tiff or .avif file';
  assert.deepEqual(errors.map((e) => [e.key, e.error]), [
    ['d', `d.bmp: not a supported image format (${files} expected)`],
    ['e', `no image (${files})`],
  ]);
});

test('sample messages say why: a key with a dot, an empty image file (tar and JSONL), a URL for a JSONL image', async () => {
  const dir = join(root, 'messages');
  await writeTar(join(dir, 'm.tar'), [
    ['a.b.jpg', await image('red', 'jpeg')],
    ['a.b.txt', 'a red thing'],
    ['c.d.e.png', await image('blue', 'png')],
    ['z.jpg', Buffer.alloc(0)],
    ['z.txt', 'nothing'],
  ]);
  await writeFile(join(dir, 'empty.jpg'), '');
  await writeFile(join(dir, 'p.jsonl'), [JSON.stringify({ image: 'empty.jpg', text: 'x' }), JSON.stringify({ image: 'https://example.com/a.jpg', text: 'y' })].join('\n') + '\n');
  const out = join(root, 'out-messages');
  await runCapfilt(opts(out, { inputs: [join(dir, 'm.tar'), join(dir, 'p.jsonl')] }), load);
  const errors = (await readFile(join(out, 'errors.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(errors.map((e) => [e.shard, e.key, e.error]), [
    ['m.tar', 'a', `no image: the key is the file name up to its first dot (WebDataset's rule), so a.b.jpg, a.b.txt are sample a's "b.jpg", "b.txt" files; name them without a dot in the key`],
    ['m.tar', 'c', `no image: the key is the file name up to its first dot (WebDataset's rule), so c.d.e.png is sample c's "d.e.png" file; name it without a dot in the key`],
    ['m.tar', 'z', 'cannot read image z.jpg: the file is empty'],
    ['p-00000.tar', '000000000', 'cannot read image empty.jpg: the file is empty'],
    ['p-00000.tar', '000000001', 'line 2: "image" is a URL (https://example.com/a.jpg): CapFilt reads image files and does not download them; download the images first (img2dataset, say) and give their paths'],
  ]);
});

test('a file:// URL as a JSONL image names its file (percent-escapes decoded); one this system cannot open is a record', async () => {
  const dir = join(root, 'file-urls');
  await mkdir(dir, { recursive: true });
  const red = await image('red', 'jpeg');
  await writeFile(join(dir, 'a red.jpg'), red);
  const good = pathToFileURL(join(dir, 'a red.jpg')).href; // …/a%20red.jpg
  const missing = pathToFileURL(join(dir, 'gone.jpg')).href;
  await writeFile(join(dir, 'u.jsonl'), [{ image: good, text: 'a red card' }, { image: missing, text: 'x' }, { image: 'file://otherhost/x.jpg', text: 'y' }].map((l) => JSON.stringify(l)).join('\n') + '\n');
  const out = join(root, 'out-file-urls');
  await runCapfilt(opts(out, { inputs: [join(dir, 'u.jsonl')] }), load);
  const entries = await readTar(join(out, 'u-00000.tar'));
  assert.deepEqual(entries.find((e) => e.name === '000000000.jpg')?.data, red);
  const errors = (await readFile(join(out, 'errors.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(errors.map((e) => e.key), ['000000001', '000000002']);
  assert.equal(errors[0].error, `cannot read image ${missing} (${join(dir, 'gone.jpg')}): no such file`);
  // (Node's reason ends with the platform's name)
  assert.match(errors[1].error, /^line 3: "image" file:\/\/otherhost\/x\.jpg is not a file URL this system can open: File URL host must be "localhost" or empty on \w+$/);
});

test("as docs/capfilt.md says: a .json that is not JSON passes through as {unparsed}; the web text is the .txt only (not a .caption, not the .json's caption); a repeated key keeps the first sample", async () => {
  const dir = join(root, 'documented');
  await writeTar(join(dir, 'd.tar'), [
    ['a.jpg', await image('red', 'jpeg')],
    ['a.txt', 'a red thing'],
    ['a.json', '{"url": "https://example.com/a.jpg",'],
    ['b.jpg', await image('blue', 'jpeg')],
    ['b.caption', 'a blue thing'],
    ['b.json', JSON.stringify({ caption: 'a blue thing' })],
    ['a.jpg', await image('green', 'jpeg')],
    ['a.txt', 'a green thing'],
  ]);
  const out = join(root, 'out-documented');
  await runCapfilt(opts(out, { inputs: [dir] }), load);
  const entries = await readTar(join(out, 'd.tar'));
  assert.deepEqual(entries.map((e) => e.name), ['a.jpg', 'a.json', 'b.jpg', 'b.json']);
  const rec = (name: string): SampleRecord => JSON.parse(entries.find((e) => e.name === name)!.data.toString('utf8'));
  assert.deepEqual(rec('a.json').meta, { unparsed: '{"url": "https://example.com/a.jpg",' });
  assert.equal(rec('a.json').web?.text, 'a red thing', 'the first sample with key a');
  assert.equal(rec('b.json').web, null);
  const errors = (await readFile(join(out, 'errors.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(errors.map((e) => e.key), ['a']);
});

test('run.json is never overwritten: unreadable, not a run file, or missing beside written shards is BLIP5803', async () => {
  const out = join(root, 'out-runjson');
  await runCapfilt(opts(out), load);
  const path = join(out, '_capfilt', 'run.json');
  const saved = await readFile(path, 'utf8');
  for (const [content, re] of [['', /cannot read .*run\.json/], ['[1, 2]', /is not a CapFilt run file/]] as const) {
    await writeFile(path, content);
    await assert.rejects(runCapfilt(opts(out, { seed: 8 }), load), (e: BlipError) => e.code === 'BLIP5803' && re.test(e.message));
    assert.equal(await readFile(path, 'utf8'), content);
  }
  // written by an earlier blip capfilt, whose captions and scores differ
  await writeFile(path, saved.replace('"version": 2', '"version": 1'));
  await assert.rejects(runCapfilt(opts(out), load), (e: BlipError) => e.code === 'BLIP5803' && /an earlier blip capfilt \(run\.json version 1, this one writes 2\)/.test(e.message));
  await rm(path);
  await assert.rejects(runCapfilt(opts(out, { seed: 8 }), load), (e: BlipError) => e.code === 'BLIP5803' && /holds shards of a run but no _capfilt\/run\.json/.test(e.message));
  await writeFile(path, saved);
  assert.equal((await runCapfilt(opts(out), load)).skipped, 4);
});

test('JSONL input: {"image": path, "text": ...} lines become shards; unreadable lines are errors', async () => {
  const dir = join(root, 'jsonl');
  await mkdir(join(dir, 'img'), { recursive: true });
  await writeFile(join(dir, 'img', 'r.jpg'), await image('red', 'jpeg'));
  await writeFile(join(dir, 'img', 'g.webp'), await image('green', 'webp'));
  await writeFile(join(dir, 'img', 'noext'), await image('blue', 'png'));
  const lines = [
    JSON.stringify({ image: 'img/r.jpg', text: 'a red card', id: 1 }),
    'not json',
    JSON.stringify({ image: 'img/missing.jpg', text: 'gone' }),
    '',
    JSON.stringify({ image: 'img/g.webp', caption: 'a green card' }),
    JSON.stringify({ image: 'img/noext' }),
  ];
  await writeFile(join(dir, 'pairs.jsonl'), lines.join('\n') + '\n');
  const out = join(root, 'out-jsonl');
  const s = await runCapfilt(opts(out, { inputs: [join(dir, 'pairs.jsonl')], samplesPerShard: 4 }), load);
  assert.equal(s.planned, 2);
  const t0 = await readTar(join(out, 'pairs-00000.tar'));
  const t1 = await readTar(join(out, 'pairs-00001.tar'));
  assert.deepEqual(t0.map((e) => e.name), ['000000000.jpg', '000000000.json']);
  assert.deepEqual(t1.map((e) => e.name), ['000000004.webp', '000000004.json', '000000005.png', '000000005.json']);
  const r0: SampleRecord = JSON.parse(t0[1].data.toString('utf8'));
  assert.equal(r0.web?.text, 'a red card');
  assert.deepEqual(r0.meta, { id: 1 });
  const r4: SampleRecord = JSON.parse(t1[1].data.toString('utf8'));
  assert.equal(r4.web?.text, 'a green card');
  const errors = (await readFile(join(out, 'errors.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(errors.map((e) => e.key), ['000000001', '000000002']);
  assert.equal(errors[1].error, `cannot read image img/missing.jpg (${join(dir, 'img', 'missing.jpg')}: relative paths are read from the JSONL file's folder): no such file`);
});

test('JSONL: a text that is not a string is an error record, and a bad image is named by its path in the file', async () => {
  const dir = join(root, 'jsonl-types');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'r.jpg'), await image('red', 'jpeg'));
  await writeFile(join(dir, 'bad.bmp'), 'BM not really');
  const lines = [JSON.stringify({ image: 'r.jpg', text: 42 }), JSON.stringify({ image: 'bad.bmp', text: 'x' }), JSON.stringify({ image: 'r.jpg', text: 'ok' })];
  await writeFile(join(dir, 'p.jsonl'), lines.join('\n') + '\n');
  const out = join(root, 'out-jsonl-types');
  await runCapfilt(opts(out, { inputs: [join(dir, 'p.jsonl')] }), load);
  const errors = (await readFile(join(out, 'errors.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(errors.map((e) => e.key), ['000000000', '000000001']);
  assert.match(errors[0].error, /"text" is number, not a string/);
  assert.match(errors[1].error, /bad\.bmp/);
});

test("models with a prepare() get each image prepared as soon as it is decoded, never its full-size pixels (a batch holds none)", async () => {
  const dir = join(root, 'prepared');
  const big = (colour: string) => sharp({ create: { width: 640, height: 480, channels: 3, background: colour } }).jpeg().toBuffer();
  await writeTar(join(dir, 'p.tar'), [
    ['a.jpg', await big('red')],
    ['b.jpg', await big('blue')],
    ['c.jpg', await big('green')],
  ]);
  const events: string[] = [];
  const double = testDoubleModels();
  // the test double reads `pixels`: give it the prepared ones
  const seen = (images: ImageInput[]): ImageInput[] =>
    images.map((im) => {
      assert.equal(im.pixels, undefined, `${im.key} reached the models with its full-size pixels`);
      return { ...im, pixels: im.prepared!.get('small') };
    });
  const models: CapfiltModels = {
    prepare(px: Pixels) {
      events.push(`prepare ${px.width}x${px.height}`);
      return new Map([['small', { data: px.data.subarray(0, 2 * 2 * 3), width: 2, height: 2, channels: 3 as const }]]);
    },
    captioner: {
      caption(images, o) {
        events.push(`caption ${images.length}`);
        return double.captioner.caption(seen(images), o);
      },
    },
    matcher: { itm: (images, texts) => double.matcher.itm(seen(images), texts) },
  };
  const s = await runCapfilt(opts(join(root, 'out-prepared'), { inputs: [dir], batchSize: 2 }), async () => models);
  assert.equal(s.final?.images_ok, 3);
  assert.deepEqual(events, ['prepare 640x480', 'prepare 640x480', 'caption 2', 'prepare 640x480', 'caption 1']);
});
