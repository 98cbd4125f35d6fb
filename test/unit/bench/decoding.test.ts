// The bench's decoding settings (bench/decoding.ts) must reproduce transformers' plain greedy decoding
// even on a graph whose `generation` block says otherwise: instructblip-vicuna.blip carries LAVIS's
// repetition_penalty 1.5, which the bench once let through on blip-graph's side only, so the
// full-size InstructBLIP case generated different tokens from transformers after the first. The
// beam-search case passes the beam settings on both sides the same way.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from '../../../src/index.js';
import { oursGenerateOptions, torchGenerateArgs } from '../../../bench/decoding.js';
import { compileFixture, expected, imagesOf, repoRoot, tempDir } from '../tasks/harness.js';

const tmp = tempDir('blip-bench-decoding-');
after(() => tmp.remove());

test('bench decoding == transformers greedy on a graph with a repetition penalty default (instructblip-vicuna-b)', async () => {
  const fixture = 'instructblip-vicuna-b';
  const model = await load(await compileFixture(fixture, tmp.dir), { threads: 1 });
  try {
    // the premise: the artifact's own defaults would change greedy scores
    assert.equal(model.manifest.generation?.repetition_penalty, 1.5);
    const exp = expected(fixture);
    const c = exp.cases!.find((x) => x.name === 'instruction')!;
    const g = c.generation.find((x) => x.name === 'greedy')!;
    assert.deepEqual(Object.keys(g.kwargs).sort(), ['do_sample', 'max_new_tokens', 'num_beams']);
    const tokens = g.kwargs.max_new_tokens as number;
    assert.ok(g.new_tokens.every((row) => row.length === tokens && !row.includes(2)), 'transformers ran the full length');
    const images = imagesOf(exp);
    const res = await model.generate(images, oursGenerateOptions({ tokens, repetitionPenalty: 1, beams: 1 }, c.prompt as string[], images.length));
    res.forEach((r, b) => assert.deepEqual(r.tokenIds, g.new_tokens[b], `row ${b}`));
  } finally {
    await model.close();
  }
});

test('bench decoding with 3 beams == transformers beam search (blip-caption-a, 12 tokens, none of them EOS)', async () => {
  const fixture = 'blip-caption-a';
  const model = await load(await compileFixture(fixture, tmp.dir), { threads: 1 });
  try {
    const exp = expected(fixture);
    const c = exp.cases!.find((x) => x.name === 'prompt')!;
    const g = c.generation.find((x) => x.name === 'beam3')!;
    assert.deepEqual(g.kwargs, { do_sample: false, max_new_tokens: 12, num_beams: 3 });
    const tokens = g.kwargs.max_new_tokens as number;
    assert.ok(g.new_tokens.every((row) => row.length === tokens), 'transformers ran the full length');
    const images = imagesOf(exp);
    const res = await model.generate(images, oursGenerateOptions({ tokens, repetitionPenalty: 1, beams: 3 }, c.prompt as string, images.length));
    res.forEach((r, b) => {
      assert.deepEqual(r.tokenIds, g.new_tokens[b], `row ${b}`);
      assert.ok(Math.abs(r.score! - g.sequences_scores![b]) < 1e-3, `row ${b}: score ${r.score} vs ${g.sequences_scores![b]}`);
    });
  } finally {
    await model.close();
  }
});

test('bench/torch_generate.py takes every setting bench/decoding.ts gives it and passes it to generate', () => {
  const py = readFileSync(join(repoRoot(), 'bench', 'torch_generate.py'), 'utf8');
  const args = torchGenerateArgs({ tokens: 7, repetitionPenalty: 1.5, beams: 3 });
  assert.deepEqual(args, ['--max-new-tokens', '7', '--repetition-penalty', '1.5', '--num-beams', '3']);
  for (const flag of args.filter((a) => a.startsWith('--'))) {
    assert.ok(py.includes(`ap.add_argument("${flag}"`), `torch_generate.py parses ${flag}`);
    const kw = flag.slice(2).replace(/-/g, '_');
    assert.ok(new RegExp(`model\\.generate\\([^)]*${kw}=`, 's').test(py) || kw === 'max_new_tokens', `torch_generate.py passes ${kw} to generate`);
  }
});
