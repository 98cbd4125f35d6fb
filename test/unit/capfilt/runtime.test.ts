// CapFilt end to end with real compiled models: the tiny random-weight BLIP captioner and ITM
// fixtures, run by onnxruntime through the runtime's task API. A single run, a --shard split and
// two BullMQ workers give byte-identical folders; the huge text is cut for the ITM head.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { enqueue, runCapfilt, runWorker, type FinalStats, type RunOptions, type SampleRecord } from '../../../src/capfilt/index.js';
import { loadModels } from '../../../src/capfilt/loadModels.js';
import { loadRuntimeModels } from '../../../src/capfilt/runtimeModels.js';
import { decodeImageBytes } from '../../../runtime/preprocess/image.js';
import sharp from 'sharp';
import { buildFixture, readTar, treeDigest, type Fixture } from './helpers/fixtures.js';
import { startRedis, type RedisServer } from './helpers/procs.js';
import { compileTinyModels } from './helpers/tinyModels.js';

let root: string;
let fx: Fixture;
let models: { captioner: string; filter: string };
let redis: RedisServer;
let reference: Record<string, string>;

const opts = (output: string, more: Partial<RunOptions> = {}): RunOptions => ({
  captioner: models.captioner,
  filter: models.filter,
  inputs: [fx.input],
  output,
  captionsPerImage: 2,
  batchSize: 4,
  seed: 3,
  threads: 1,
  ...more,
});

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'capfilt-runtime-'));
  fx = await buildFixture(root);
  models = await compileTinyModels(join(root, 'models'));
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
  await rm(root, { recursive: true, force: true });
});

test('a single run with the tiny BLIP models: captions sampled, every text scored, huge text cut for ITM', async () => {
  const out = join(root, 'single');
  const s = await runCapfilt(opts(out), loadModels);
  assert.ok(s.final);
  reference = await treeDigest(out);
  const stats: FinalStats = JSON.parse(await readFile(join(out, 'stats.json'), 'utf8'));
  assert.equal(stats.images_ok, 23);
  assert.equal(stats.errors, 3);
  assert.equal(stats.texts.synthetic.kept + stats.texts.synthetic.dropped, 23 * 2);
  const recs: SampleRecord[] = (await readTar(join(out, '00000.tar'))).filter((e) => e.name.endsWith('.json')).map((e) => JSON.parse(e.data.toString('utf8')));
  for (const r of recs) {
    assert.equal(r.synthetic.length, 2);
    for (const t of [...(r.web ? [r.web] : []), ...r.synthetic]) {
      assert.ok(t.itm >= 0 && t.itm <= 1, String(t.itm));
      assert.equal(t.kept, t.itm >= 0.5);
    }
    assert.ok(r.synthetic.every((c) => c.text.length > 0));
    assert.notEqual(r.synthetic[0].text, r.synthetic[1].text, 'two samples of one image differ');
  }
  assert.ok(recs.find((r) => r.key === '00000003')!.web!.text.length > 1_000_000);

});

test('tiny BLIP models: --shard 0/2 + 1/2 and two BullMQ workers give the single run byte for byte', async () => {
  const split = join(root, 'split');
  await runCapfilt(opts(split, { shard: { index: 1, count: 2 } }), loadModels);
  await runCapfilt(opts(split, { shard: { index: 0, count: 2 } }), loadModels);
  assert.deepEqual(await treeDigest(split), reference);

  const queued = join(root, 'queued');
  const queue = 'capfilt-runtime-test';
  await enqueue({ ...opts(queued), redis: redis.url, queue });
  const workers = await Promise.all([0, 1].map(() => runWorker({ redis: redis.url, queue, threads: 1, exitWhenIdle: true, stalledInterval: 300 }, loadModels)));
  await Promise.all(workers.map((w) => w.done));
  assert.deepEqual(await treeDigest(queued), reference);
});

test('tiny BLIP models: an image prepared as soon as it is decoded (captioner 32 px, filter 64 px) gives the captions and ITM scores of the full-size one', async () => {
  // noise, so that every resampled pixel depends on the resizing
  const noise = Buffer.from(Array.from({ length: 300 * 200 * 3 }, (_, i) => (i * 2654435761) >>> 24));
  const bytes = await sharp(noise, { raw: { width: 300, height: 200, channels: 3 } }).jpeg().toBuffer();
  const rgb = await decodeImageBytes(bytes, 'noise.jpg');
  const pixels = { data: rgb.data, width: rgb.width, height: rgb.height, channels: 3 as const };
  const m = await loadRuntimeModels({ captioner: models.captioner, filter: models.filter, device: 'cpu', threads: 1 });
  try {
    const prepared = m.prepare!(pixels);
    assert.deepEqual([...prepared.values()].map((p) => [p.width, p.height]).sort(), [[32, 32], [64, 64]], 'one copy per model size');
    const full = { key: 'k', bytes, pixels };
    const early = { key: 'k', bytes, prepared };
    const o = { k: 3, topP: 0.9, seeds: [[11, 12, 13]], maxLength: 30, minLength: 5 };
    const texts = [['a noisy picture', 'a dog on a beach']];
    assert.deepEqual(await m.captioner.caption([early], o), await m.captioner.caption([full], o));
    assert.deepEqual(await m.matcher.itm([early], texts), await m.matcher.itm([full], texts));
  } finally {
    await m.close?.();
  }
});
