// blip serve --image-backend: every worker loads its model with that image backend (runtime/model.ts
// imageBackend), so /v1/itm scores as transformers' processor of that backend does
// (test/fixtures/torchvision-backend: blip-itm-b under AutoProcessor's default and backend="pil").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { BlipError } from '../../../src/diagnostics/BlipError.js';
import { fixturePath, readFixtureJson } from '../runtime/fixtures.js';
import { runCliBatch } from '../cliHarness.js';
import { compiledFixture, dataUrl, post, serve } from './helpers.js';

interface Itm {
  image: string;
  text: string;
  torchvision: { itm: number; itc: number };
  pil: { itm: number; itc: number };
}

const skip = (!existsSync(fixturePath('torchvision-backend', 'cases.json')) || !existsSync(fixturePath('blip-itm-b', 'expected.json'))) && 'fixtures not present';

test('POST /v1/itm with imageBackend torchvision | pil: the scores of transformers\' processor of that backend', { skip }, async () => {
  const want = readFixtureJson<{ itm: Itm }>('torchvision-backend', 'cases.json').itm;
  const dir = await compiledFixture('blip-itm', 'blip-itm-b');
  for (const backend of ['torchvision', 'pil'] as const) {
    const s = await serve({ models: [{ id: 'itm', dir }], imageBackend: backend });
    try {
      const r = await post(`${s.url}/v1/itm`, { model: 'itm', image: dataUrl(want.image), texts: [want.text] });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const got = r.json.data[0] as { itm_probability: number; itc_similarity: number };
      assert.ok(Math.abs(got.itc_similarity - want[backend].itc) <= 1e-4 * Math.abs(want[backend].itc), `${backend}: itc ${got.itc_similarity}, transformers ${want[backend].itc}`);
      assert.ok(Math.abs(got.itm_probability - want[backend].itm) <= 1e-4 * want[backend].itm, `${backend}: itm ${got.itm_probability}, transformers ${want[backend].itm}`);
    } finally {
      await s.close();
    }
  }
});

test('an image backend other than pil or torchvision: BLIP5901 from startServer, a usage error from blip serve', { skip }, async () => {
  const dir = await compiledFixture('blip-itm', 'blip-itm-b');
  await assert.rejects(serve({ models: [{ id: 'itm', dir }], imageBackend: 'torch' as never }), (e: unknown) => e instanceof BlipError && e.code === 'BLIP5901' && /imageBackend must be "pil" or "torchvision", found "torch"/.test(e.message));
  const [r] = runCliBatch([['serve', dir, '--port', '0', '--image-backend', 'torch']]);
  assert.equal(r.code, 2);
  assert.match(r.err, /--image-backend expects pil or torchvision, found 'torch'/);
});
