// Staged loading (LoadOptions.staged, runtime/stagedSession.ts; `blip run` over one batch): the
// image encoder is released before the decoder is opened, so the two are never loaded together;
// the results are the resident model's, token for token; the time spent opening graphs is reported
// apart (timingsMs.load) instead of inflating the encode and prefill; a graph whose names are not
// the manifest's is refused.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { load, UNPACKED_DECODER_RUNS } from '../../../runtime/model.js';
import { StagedSession } from '../../../runtime/stagedSession.js';
import { compileFixture, expected, imagesOf, tempDir } from './harness.js';

const tmp = tempDir('blip-staged-');
after(() => tmp.remove());

/** Records, while `fn` runs, every session onnxruntime opens (with "unpacked" when prepacking is off) and releases. */
async function sessionLog<T>(fn: () => Promise<T>): Promise<{ result: T; events: string[]; maxOpen: number }> {
  const Session = ort.InferenceSession as unknown as { create: (...a: unknown[]) => Promise<ort.InferenceSession> };
  const create = Session.create;
  const events: string[] = [];
  let open = 0;
  let maxOpen = 0;
  Session.create = async (...a: unknown[]) => {
    const s = await create.apply(ort.InferenceSession, a);
    const what = s.outputNames.includes('logits') ? 'decoder' : s.inputNames.includes('pixel_values') && s.outputNames.some((n) => n.startsWith('cross.') || n === 'prefix_embeds') ? 'encode' : 'other';
    const unpacked = (a[1] as { extra?: { session?: Record<string, string> } } | undefined)?.extra?.session?.disable_prepacking === '1';
    events.push(`open ${what}${unpacked ? ' unpacked' : ''}`);
    maxOpen = Math.max(maxOpen, ++open);
    const release = s.release.bind(s);
    s.release = async () => {
      events.push(`release ${what}`);
      open--;
      return release();
    };
    return s;
  };
  try {
    return { result: await fn(), events, maxOpen };
  } finally {
    Session.create = create;
  }
}

for (const fixture of ['blip-caption-a', 'blip2-opt-a']) {
  test(`${fixture}: staged loading never holds encode.onnx and decoder.onnx at once and gives the resident model's tokens`, async () => {
    const dir = await compileFixture(fixture, tmp.dir);
    const images = imagesOf(expected(fixture)).slice(0, 2);
    const resident = await load(dir, { threads: 1 });
    const want = await resident.generate(images, { maxNewTokens: 6, batchSize: 2 });
    await resident.close();
    assert.equal(want[0].timingsMs.load, undefined);

    const { result: got, events, maxOpen } = await sessionLog(async () => {
      const staged = await load(dir, { threads: 1, staged: true });
      try {
        const one = await staged.generate(images, { maxNewTokens: 6, batchSize: 2 });
        // a further batch loads both again, in the same order; calls made together take turns
        const [two, three] = await Promise.all([staged.generate(images, { maxNewTokens: 6, batchSize: 1 }), staged.generate(images, { maxNewTokens: 6, batchSize: 2 })]);
        return [one, two, three];
      } finally {
        await staged.close();
      }
    });
    assert.equal(maxOpen, 1, events.join(', '));
    // The encoder runs once per opening and the decoder 6 times here: neither copies its weights
    // into packed buffers at load (UNPACKED_DECODER_RUNS).
    const cycle = ['open encode unpacked', 'release encode', 'open decoder unpacked', 'release decoder'];
    assert.deepEqual(events, [...cycle, ...cycle, ...cycle, ...cycle]);
    for (const res of got) {
      assert.deepEqual(
        res.map((r) => r.tokenIds),
        want.map((r) => r.tokenIds),
      );
      assert.deepEqual(
        res.map((r) => r.text),
        want.map((r) => r.text),
      );
      for (const r of res) {
        const t = r.timingsMs;
        assert.ok(t.load !== undefined && t.load > 0);
        assert.ok(Math.abs(t.preprocess + t.encode + t.prefill + t.decode + t.load - t.total) < 1, JSON.stringify(t));
      }
    }
  });
}

test('a staged decoder run more than UNPACKED_DECODER_RUNS times (new tokens x beams) is prepacked; same tokens', async () => {
  const dir = await compileFixture('blip-caption-a', tmp.dir);
  const images = imagesOf(expected('blip-caption-a')).slice(0, 1);
  const resident = await load(dir, { threads: 1 });
  assert.equal(UNPACKED_DECODER_RUNS, 64, 'the cases straddle it (the fixture decoder has 32 positions)');
  const cases = [
    { opts: { maxNewTokens: 16, numBeams: 4 }, decoder: 'open decoder unpacked' },
    { opts: { maxNewTokens: 17, numBeams: 4 }, decoder: 'open decoder' },
    { opts: { maxNewTokens: 22, numBeams: 3 }, decoder: 'open decoder' },
    { opts: { maxNewTokens: 21, numBeams: 3 }, decoder: 'open decoder unpacked' },
  ];
  try {
    for (const c of cases) {
      const want = await resident.generate(images, c.opts);
      const { result: got, events } = await sessionLog(async () => {
        const staged = await load(dir, { threads: 1, staged: true });
        try {
          return await staged.generate(images, c.opts);
        } finally {
          await staged.close();
        }
      });
      assert.deepEqual(events, ['open encode unpacked', 'release encode', c.decoder, 'release decoder'], JSON.stringify(c.opts));
      assert.deepEqual(
        got.map((r) => r.tokenIds),
        want.map((r) => r.tokenIds),
      );
    }
  } finally {
    await resident.close();
  }
});

test('staged loading is for the CPU: a resident model elsewhere, and retrieval models are never staged', async () => {
  const itm = await compileFixture('blip-itm-a', tmp.dir);
  const { events } = await sessionLog(async () => {
    const m = await load(itm, { threads: 1, staged: true });
    await m.close();
  });
  assert.deepEqual(events, ['open other', 'release other']); // retrieval.onnx, opened at load
});

test('a staged graph whose inputs are not the manifest\'s is refused (BLIP5044) and released', async () => {
  let released = 0;
  const fake = { inputNames: ['pixel_values'], outputNames: ['other'], release: async () => void released++, run: async () => ({}) } as unknown as ort.InferenceSession;
  const s = new StagedSession({ file: 'encode.onnx', inputs: [{ name: 'pixel_values', type: 'float32', shape: [1] }], outputs: [{ name: 'cross.0.key', type: 'float32', shape: [1] }], nodes: 1 }, async () => ({ session: fake, provider: 'cpu', fallbacks: [] }));
  await assert.rejects(s.run({}), (e: Error & { code?: string }) => e.code === 'BLIP5044' && /encode\.onnx declares .*outputs \[other\].*recompile/.test(e.message));
  assert.equal(released, 1);
  assert.equal(s.isOpen, false);
});
