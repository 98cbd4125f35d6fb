// blip capfilt --image-backend: both models load with that image backend (runtime/model.ts
// imageBackend), images are prepared with its resize, and run.json records it as image_backend (a
// resume with another is refused; a run.json written before it was recorded ran with pil).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { runCapfilt, type ModelLoader, type ModelSpec, type RunOptions } from '../../../src/capfilt/index.js';
import { loadRuntimeModels } from '../../../src/capfilt/runtimeModels.js';
import { BlipError } from '../../../src/cli/Command.js';
import { main } from '../../../src/cli/main.js';
import { load } from '../../../runtime/model.js';
import { decodeImageBytes } from '../../../runtime/preprocess/image.js';
import { preprocessFromManifest, resizeForModel } from '../../../runtime/preprocess/index.js';
import { buildFixture, type Fixture } from './helpers/fixtures.js';
import { testDoubleModels } from './helpers/testDoubleModels.js';
import { compileTinyModels } from './helpers/tinyModels.js';

let root: string;
let fx: Fixture;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'capfilt-backend-'));
  fx = await buildFixture(root);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const specs: ModelSpec[] = [];
const recording: ModelLoader = async (spec) => (specs.push(spec), testDoubleModels());
const opts = (output: string, more: Partial<RunOptions> = {}): RunOptions => ({
  captioner: join(root, 'models/captioner'),
  filter: join(root, 'models/itm'),
  inputs: [fx.input],
  output,
  captionsPerImage: 1,
  seed: 7,
  ...more,
});
const runJson = async (out: string) => JSON.parse(await readFile(join(out, '_capfilt', 'run.json'), 'utf8')) as { settings: Record<string, string | number> };

test('run.json records image_backend; a resume with the other one is BLIP5803; one recorded before it resumes as pil', async () => {
  const out = join(root, 'out-tv');
  specs.length = 0;
  await runCapfilt(opts(out, { imageBackend: 'torchvision' }), recording);
  assert.deepEqual(specs.map((s) => s.imageBackend), ['torchvision'], 'the models are loaded with it');
  assert.equal((await runJson(out)).settings.image_backend, 'torchvision');
  await assert.rejects(runCapfilt(opts(out), recording), (e: BlipError) => e.code === 'BLIP5803' && /image_backend = "torchvision", this run has "pil"/.test(e.message));
  assert.equal((await runCapfilt(opts(out, { imageBackend: 'torchvision' }), recording)).skipped, 4);

  const old = join(root, 'out-old');
  await runCapfilt(opts(old), recording);
  const run = JSON.parse(await readFile(join(old, '_capfilt', 'run.json'), 'utf8'));
  assert.equal(run.settings.image_backend, 'pil');
  delete run.settings.image_backend;
  await writeFile(join(old, '_capfilt', 'run.json'), JSON.stringify(run));
  assert.equal((await runCapfilt(opts(old), recording)).skipped, 4);
  await assert.rejects(runCapfilt(opts(old, { imageBackend: 'torchvision' }), recording), (e: BlipError) => e.code === 'BLIP5803' && /image_backend = "pil", this run has "torchvision"/.test(e.message));
});

test('blip capfilt --image-backend other than pil or torchvision: a usage error', async () => {
  let err = '';
  const ew = process.stderr.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  let code: number;
  try {
    code = await main(['capfilt', '--captioner', join(root, 'c'), '--filter', join(root, 'f'), '--input', fx.input, '--output', join(root, 'o'), '--image-backend', 'torch', '--quiet']);
  } finally {
    process.stderr.write = ew;
  }
  assert.equal(code, 2);
  assert.match(err, /--image-backend expects pil or torchvision, found 'torch'/);
});

test('tiny BLIP models with imageBackend torchvision: images prepared with torchvision\'s resize, ITM scores of load(filter, { imageBackend })', async () => {
  const models = await compileTinyModels(join(root, 'models-tiny'));
  const noise = Buffer.from(Array.from({ length: 300 * 200 * 3 }, (_, i) => (i * 2654435761) >>> 24));
  const bytes = await sharp(noise, { raw: { width: 300, height: 200, channels: 3 } }).png().toBuffer();
  const rgb = await decodeImageBytes(bytes, 'noise.png');
  const pixels = { data: rgb.data, width: rgb.width, height: rgb.height, channels: 3 as const };
  const texts = [['a noisy picture', 'a dog on a beach']];
  const scores: Record<string, Array<{ itm: number; itc: number }>> = {};
  for (const backend of ['torchvision', 'pil'] as const) {
    const m = await loadRuntimeModels({ captioner: models.captioner, filter: models.filter, device: 'cpu', threads: 1, imageBackend: backend });
    const direct = await load(models.filter, { threads: 1, imageBackend: backend });
    try {
      const prepared = [...m.prepare!(pixels).values()].sort((a, b) => a.width - b.width);
      const want = [models.captioner, models.filter].map((dir) => resizeForModel(rgb, { ...preprocessFromManifest(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).preprocess), backend }));
      assert.deepEqual(prepared.map((p) => p.data), want.map((w) => w.data), `${backend}: prepared as its resize`);
      const got = (await m.matcher.itm([{ key: 'k', bytes, pixels }], texts))[0];
      const ref = await direct.itm([pixels], texts[0]);
      scores[backend] = ref;
      got.forEach((s, i) => assert.equal(s, ref[i].itm, `${backend}: capfilt itm, load() itm`));
    } finally {
      await m.close?.();
      await direct.close();
    }
  }
  assert.notEqual(scores.torchvision[0].itm, scores.pil[0].itm, 'the backends give other scores on noise');
});
