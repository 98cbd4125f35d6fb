// Generation length against the generating decoder's positions, as transformers 5.12 resolves it
// (test/oracle/position_cap.py, test/fixtures/position-cap/expected.json): with no length set anywhere,
// its model-agnostic default of 20 new tokens is capped so that the whole sequence fits the model's
// max_position_embeddings (BLIP's BERT decoder, OPT, and LLaMA though its positions are rotary; T5 has
// none), and an input that fills them is refused; an explicit max_new_tokens / max_length is not
// capped (BLIP and OPT then run off their position tables, an IndexError). Each variant's checkpoint
// is rebuilt here from its base fixture (text_config.max_position_embeddings set, the learned
// position tables cut to their first rows, generation_config.json keys set) and compiled with a
// shipped graph whose generation block is left out, so that nothing but the checkpoint sets a length.
// Where transformers generates, the tokens must be its tokens; where it fails, the run is one
// BLIP5032 line. A generation_config.json length transformers leaves unapplied (BLIP, BLIP-2 and
// InstructBLIP do not hand the file to their inner decoder) is applied, as that variant's
// `same_as` (the same length given to generate()) records.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, load } from '../../../src/index.js';
import { SafetensorsFile, encodeSafetensors } from '../../../src/weights/safetensors.js';
import { GRAPH_OF, expectedRow, fixturePath, repoRoot, tempDir } from './harness.js';

interface GenerationRecord {
  new_tokens: number[][];
  margins: number[][];
}
interface Variant {
  name: string;
  fixture: string;
  positions: number | null;
  tables: Record<string, number>;
  generation_config: Record<string, unknown>;
  case: { prompt?: string | null; questions?: string[]; fixture_case?: string; legacy?: boolean };
  images: string[];
  kwargs: { max_new_tokens?: number; max_length?: number };
  result?: GenerationRecord;
  error?: { type: string; message: string };
  max_length?: number;
  same_as?: string;
}

const oracle = JSON.parse(readFileSync(fixturePath('position-cap', 'expected.json'), 'utf8')) as { transformers_version: string; variants: Variant[] };
const byName = new Map(oracle.variants.map((v) => [v.name, v]));
const tmp = tempDir('blip-position-cap-');
after(() => tmp.remove());

/** The shipped graphs without their generation blocks: no length but the checkpoint's and transformers' default. */
const bareGraphs = join(tmp.dir, 'graphs');
cpSync(join(repoRoot(), 'graphs'), bareGraphs, { recursive: true });
for (const dir of [bareGraphs, join(bareGraphs, 'examples')]) {
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (!f.endsWith('.blip') || !statSync(p).isFile()) continue;
    writeFileSync(p, readFileSync(p, 'utf8').replace(/\n[ \t]*generation \{[^}]*\}[ \t]*\n/, '\n'));
  }
}

/** The variant's checkpoint, edited as test/oracle/position_cap.py edits it. */
function editedCheckpoint(v: Variant): string {
  const src = fixturePath(v.fixture, 'checkpoint');
  const dir = join(tmp.dir, v.name);
  cpSync(src, dir, { recursive: true });
  if (v.positions !== null) {
    const st = SafetensorsFile.open(join(src, 'model.safetensors'));
    const tensors = [...st.tensors.values()].map((t) => {
      const data = st.readRaw(t.name);
      const rows = v.tables[t.name];
      if (rows === undefined) return { name: t.name, dtype: t.dtype, shape: t.shape, data };
      const row = data.length / t.shape[0];
      return { name: t.name, dtype: t.dtype, shape: [rows, ...t.shape.slice(1)], data: data.slice(0, rows * row) };
    });
    st.close();
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
    const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
    cfg.text_config.max_position_embeddings = v.positions;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg, null, 2));
  }
  if (Object.keys(v.generation_config).length) {
    const g = JSON.parse(readFileSync(join(src, 'generation_config.json'), 'utf8'));
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ ...g, ...v.generation_config }, null, 2));
  }
  return dir;
}

/** The prompt the variant's case gives: a caption prefix, the questions, or the base fixture case's prompt. */
function promptOf(v: Variant): string | string[] | undefined {
  if (v.case.questions) return v.case.questions;
  if (v.case.fixture_case) {
    const base = JSON.parse(readFileSync(fixturePath(v.fixture, 'expected.json'), 'utf8')) as { cases: Array<{ name: string; prompt?: string | string[] | null }> };
    return base.cases.find((c) => c.name === v.case.fixture_case)!.prompt ?? undefined;
  }
  return v.case.prompt ?? undefined;
}

test(`the oracle is transformers 5.12 (${oracle.transformers_version}) and covers BLIP, BLIP-2 OPT (placeholders and legacy) / LLaMA / T5 and InstructBLIP`, () => {
  assert.match(oracle.transformers_version, /^5\.12\./);
  assert.deepEqual([...new Set(oracle.variants.map((v) => v.fixture))].sort(), ['blip-caption-a', 'blip-vqa-a', 'blip2-llama-a', 'blip2-opt-a', 'blip2-opt-legacy', 'blip2-t5-a', 'instructblip-vicuna-b']);
});

for (const v of oracle.variants) {
  // blip-graph applies a generation_config.json length: its reference is that length given to generate()
  const ref = v.same_as ? byName.get(v.same_as)! : v;
  const what = ref.error ? `BLIP5032 (transformers: ${ref.error.type})` : `transformers' tokens${v.max_length !== undefined && !v.same_as ? ` (its default max_length ${v.max_length})` : ''}`;
  test(`generation length against the positions: ${v.name}: ${what}`, async (t) => {
    const out = join(tmp.dir, `${v.name}-out`);
    await compile(join(bareGraphs, `${GRAPH_OF[v.fixture]}.blip`), { weights: editedCheckpoint(v), out });
    const model = await load(out, { threads: 1 });
    try {
      const images = v.images.map((n) => fixturePath('images', n));
      const opts = { prompt: promptOf(v), numBeams: 1, doSample: false, maxNewTokens: v.kwargs.max_new_tokens, maxLength: v.kwargs.max_length };
      if (ref.error) {
        await assert.rejects(model.generate(images, opts), (e: Error & { code?: string }) => {
          assert.equal(e.code, 'BLIP5032', e.message);
          assert.doesNotMatch(e.message, /\n/);
          t.diagnostic(e.message);
          return true;
        });
        return;
      }
      const res = await model.generate(images, opts);
      const eos = model.manifest.text.eos_token_id;
      const g = ref.result!;
      res.forEach((r, b) => {
        // transformers' new tokens through the first EOS, up to a near tie
        const { ids, certain } = expectedRow(g, b, eos);
        assert.deepEqual(r.tokenIds.slice(0, certain), ids.slice(0, certain), `${v.name} row ${b}`);
        if (certain === ids.length) assert.equal(r.tokenIds.length, ids.length, `${v.name} row ${b}: length`);
      });
      t.diagnostic(`${res.map((r) => r.tokenIds.length).join(', ')} new tokens`);
    } finally {
      await model.close();
    }
  });
}
