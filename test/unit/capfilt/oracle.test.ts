// CapFilt against BLIP's CapFilt as transformers computes it (test/oracle/capfilt_cases.py): the
// captioner's settings (repetition penalty 1.1, BLIP's cut of the prompt's characters) with the
// nucleus shrunk to one token, and the filter's ITM probabilities of texts cut to 35 tokens.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runCapfilt, type SampleRecord } from '../../../src/capfilt/index.js';
import { loadModels } from '../../../src/capfilt/loadModels.js';
import { readTar } from './helpers/fixtures.js';
import { compileTinyModels } from './helpers/tinyModels.js';

interface Oracle {
  captions: Array<{ image: string; caption: string }>;
  itm: Array<{ image: string; text: string; itm: number }>;
}

let root: string;
let oracle: Oracle;
let records: SampleRecord[];

before(async () => {
  oracle = JSON.parse(await readFile('test/fixtures/capfilt/oracle.json', 'utf8'));
  root = await mkdtemp(join(tmpdir(), 'capfilt-oracle-'));
  const models = await compileTinyModels(join(root, 'models'));
  // one line per (image, web text) the oracle scored, the captions aside
  const captions = new Set(oracle.captions.map((c) => c.caption));
  const lines = oracle.itm.filter((r) => !captions.has(r.text)).map((r) => JSON.stringify({ image: resolve('test/fixtures/images', r.image), text: r.text }));
  await writeFile(join(root, 'in.jsonl'), lines.join('\n') + '\n');
  const out = join(root, 'out');
  await runCapfilt({ ...models, inputs: [join(root, 'in.jsonl')], output: out, captionsPerImage: 1, topP: 1e-6, threads: 1 }, loadModels);
  records = (await readTar(join(out, 'in-00000.tar'))).filter((e) => e.name.endsWith('.json')).map((e) => JSON.parse(e.data.toString('utf8')));
  assert.equal(records.length, lines.length);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const itmOf = (image: string, text: string): number => oracle.itm.find((o) => o.image === image && o.text === text)!.itm;

test("captions are BLIP's: repetition penalty 1.1, the prompt's characters cut from the whole decoded sequence", () => {
  const lines = oracle.itm.filter((r) => !oracle.captions.some((c) => c.caption === r.text));
  records.forEach((r, i) => {
    const want = oracle.captions.find((c) => c.image === lines[i].image)!.caption;
    assert.equal(r.synthetic[0].text, want, `${lines[i].image}`);
  });
});

test('the filter scores web texts and captions cut to 35 tokens as BLIP does (CJK, emoji, a 5000-character word)', () => {
  const lines = oracle.itm.filter((r) => !oracle.captions.some((c) => c.caption === r.text));
  records.forEach((r, i) => {
    const image = lines[i].image;
    assert.equal(r.web!.text, lines[i].text);
    assert.ok(Math.abs(r.web!.itm - lines[i].itm) < 2e-6, `${image} ${JSON.stringify(lines[i].text.slice(0, 20))}: ${r.web!.itm} vs ${lines[i].itm}`);
    const cap = r.synthetic[0];
    assert.ok(Math.abs(cap.itm - itmOf(image, cap.text)) < 2e-6, `${image} caption: ${cap.itm} vs ${itmOf(image, cap.text)}`);
  });
});
