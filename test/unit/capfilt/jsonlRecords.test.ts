// What docs/capfilt.md says of a JSONL sample's record, with the TEST DOUBLE models: `text` is the
// web text when a line has `caption` too, an image file without an extension is named by the format
// its bytes have (a JPEG's name ends in .jpg), and `kept` has no duplicates when the captioner
// draws the same caption twice (or draws the web text), while `synthetic` and the stats count
// every candidate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCapfilt, type CapfiltModels, type FinalStats, type SampleRecord } from '../../../src/capfilt/index.js';
import { image, readTar } from './helpers/fixtures.js';
import { testDoubleModels } from './helpers/testDoubleModels.js';
import sharp from 'sharp';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'capfilt-jsonl-records-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh folder under the test's root. */
async function folder(name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** Runs CapFilt over `lines` (one JSONL shard in `dir`) and returns the output tar's entries and stats.json. */
async function run(dir: string, lines: object[], models: CapfiltModels, captionsPerImage: number) {
  const out = join(dir, 'out');
  await writeFile(join(dir, 'in.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  await runCapfilt({ captioner: join(dir, 'cap'), filter: join(dir, 'itm'), inputs: [join(dir, 'in.jsonl')], output: out, captionsPerImage, batchSize: 2, seed: 7, minItm: 0 }, async () => models);
  const entries = await readTar(join(out, 'in-00000.tar'));
  const stats: FinalStats = JSON.parse(await readFile(join(out, 'stats.json'), 'utf8'));
  return { entries, stats };
}

test('a JSONL line with both "text" and "caption": the web text is "text" ("caption" is read only when "text" is absent)', async () => {
  const dir = await folder('both');
  await writeFile(join(dir, 'r.png'), await image('red', 'png'));
  const lines = [
    { image: 'r.png', text: 'a red card', caption: 'a green wall' },
    { image: 'r.png', caption: 'a green wall' },
  ];
  const { entries } = await run(dir, lines, testDoubleModels(), 0);
  const records = entries.filter((e) => e.name.endsWith('.json')).map((e) => JSON.parse(e.data.toString('utf8')) as SampleRecord);
  assert.deepEqual(records.map((r) => r.web?.text), ['a red card', 'a green wall']);
  // "caption" is the web text, not metadata, in either line
  assert.deepEqual(records.map((r) => r.meta), [undefined, undefined]);
});

test("an image file without an extension is named by its bytes' format: a JPEG .jpg (not .jpeg), a PNG .png, a WebP .webp", async () => {
  const dir = await folder('sniffed');
  await writeFile(join(dir, 'a'), await image('red', 'jpeg'));
  await writeFile(join(dir, 'b'), await image('green', 'png'));
  await writeFile(join(dir, 'c.bin'), await image('blue', 'webp'));
  const lines = [{ image: 'a', text: 'x' }, { image: 'b', text: 'y' }, { image: 'c.bin', text: 'z' }];
  const { entries } = await run(dir, lines, testDoubleModels(), 0);
  assert.deepEqual(entries.map((e) => e.name), ['000000000.jpg', '000000000.json', '000000001.png', '000000001.json', '000000002.webp', '000000002.json']);
  const records = entries.filter((e) => e.name.endsWith('.json')).map((e) => JSON.parse(e.data.toString('utf8')) as SampleRecord);
  assert.deepEqual(records.map((r) => r.image), ['000000000.jpg', '000000001.png', '000000002.webp']);
});

test('kept lists each kept text once, web text first, when the captioner draws the same caption twice or draws the web text; synthetic and the stats count every candidate', async () => {
  const dir = await folder('dups');
  await writeFile(join(dir, 'r.png'), await image('red', 'png'));
  // the test double's ITM filter, and a captioner whose draws repeat (as sampling may)
  const models: CapfiltModels = { ...testDoubleModels(), captioner: { caption: async (images, o) => images.map(() => ['a small red tile', 'a red card', 'a small red tile'].slice(0, o.k)) } };
  const { entries, stats } = await run(dir, [{ image: 'r.png', text: 'a red card' }], models, 3);
  const rec = JSON.parse(entries.find((e) => e.name === '000000000.json')!.data.toString('utf8')) as SampleRecord;
  assert.deepEqual(rec.synthetic.map((c) => c.text), ['a small red tile', 'a red card', 'a small red tile']);
  assert.ok(rec.web!.kept && rec.synthetic.every((c) => c.kept));
  assert.deepEqual(rec.kept, ['a red card', 'a small red tile']);
  assert.deepEqual(stats.texts, { web: { kept: 1, dropped: 0, missing: 0 }, synthetic: { kept: 3, dropped: 0 } });
});

test('an AVIF without an extension is written KEY.avif (sharp calls its format heif), and the output shard reads back as input without error records', async () => {
  const dir = await folder('avif');
  await writeFile(join(dir, 'a'), await sharp({ create: { width: 16, height: 12, channels: 3, background: { r: 220, g: 30, b: 30 } } }).avif().toBuffer());
  const { entries } = await run(dir, [{ image: 'a', text: 'a red card' }], testDoubleModels(), 0);
  assert.deepEqual(entries.map((e) => e.name), ['000000000.avif', '000000000.json']);
  const again = join(dir, 'again');
  await runCapfilt({ captioner: join(dir, 'cap'), filter: join(dir, 'itm'), inputs: [join(dir, 'out', 'in-00000.tar')], output: again, captionsPerImage: 0, batchSize: 2, seed: 7, minItm: 0 }, async () => testDoubleModels());
  assert.equal(await readFile(join(again, 'errors.jsonl'), 'utf8'), '');
  assert.deepEqual((await readTar(join(again, 'in-00000.tar'))).map((e) => e.name), ['000000000.avif', '000000000.json']);
});
