// blip serve with a model whose graph reads no text input: a text part is 400 unexpected_prompt,
// not fed to the decoder; the image alone is answered; /v1/models says the model takes no text.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { compile } from '../../../src/index.js';
import type { BlipServer } from '../../../runtime/server/index.js';
import { fixturePath, repoRoot } from '../runtime/fixtures.js';
import { chatBody, post, serve } from './helpers.js';

let s: BlipServer;

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'blip-serve-no-prompt-'));
  const graph = join(dir, 'no-text.blip');
  const graphs = relative(dir, join(repoRoot(), 'graphs'));
  writeFileSync(graph, `import "${graphs}/blip2-opt.blip"\nmodel x extends blip2_opt {\n  override node llm: opt(prefix: projection) frozen @ "language_model" { config: "text_config" }\n}\n`);
  await compile(graph, { weights: fixturePath('blip2-opt-a', 'checkpoint'), out: join(dir, 'out') });
  s = await serve({ models: [{ id: 'notext', dir: join(dir, 'out') }] });
});

after(async () => {
  await s?.close();
});

test('a text part for a model that takes no text is 400 unexpected_prompt; the image alone is answered', async () => {
  const refused = await post(`${s.url}/v1/chat/completions`, chatBody('notext', { max_tokens: 3 }, 'a photo of'));
  assert.equal(refused.status, 400);
  assert.equal(refused.json.error.code, 'unexpected_prompt');
  assert.match(refused.json.error.message, /takes no text: its graph reads no text input/);
  const ok = await post(`${s.url}/v1/chat/completions`, chatBody('notext', { max_tokens: 3 }));
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  const models = await (await fetch(`${s.url}/v1/models`)).json();
  assert.equal(models.data[0].prompt.none, true);
});
