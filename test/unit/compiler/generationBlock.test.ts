// The generation block's max_length, min_length and early_stopping "never": compiled into the
// manifest with the graph as their source (blip inspect), replacing the base's and
// generation_config.json's bound of the same length, and generating transformers' tokens.
// transformers 5.12.1 (test/oracle/generation_block.py) on the tiny fixtures: blip2-opt-a with the
// photo and its question (28 input tokens: 8 image placeholders, BOS and 19), blip-caption-a with
// no prompt ([DEC] counts).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compile, load } from '../../../src/index.js';
import { main } from '../../../src/cli/main.js';
import { loadProgram } from '../../../src/syntax/load.js';
import { FIXTURES, tmp } from './harness.js';

const root = tmp('generation-block-');
after(() => rmSync(root, { recursive: true, force: true }));

const QUESTION = 'Question: how many cats are there? Answer:';
const PHOTO = join(FIXTURES, 'images', 'photo_64x48.jpg');
const RGB = join(FIXTURES, 'images', 'rgb_37x23.png');
/** transformers' new tokens (EOS included) and sequences_scores, from test/oracle/generation_block.py. */
const HF = {
  // num_beams=3, max_new_tokens=6, early_stopping="never"
  never: { tokens: [467, 261, 261, 261, 261, 261], score: -4.660431385040283 },
  // min_length=31, max_new_tokens=30 (graphs/blip2-opt.blip's); greedy alone gives [467, 2]
  minLength31: [467, 144, 261, 2],
  // max_length=30, min_length=30: two new tokens, EOS held back for both
  lengths30: [467, 144],
  // blip-caption-a, no prompt, max_length=5: [DEC] and 4 new tokens
  captionMaxLength5: [13, 20, 254, 321],
};

const GRAPHS = `import "${resolve('graphs/blip2-opt.blip')}"
import "${resolve('graphs/blip-caption.blip')}"

model opt_never extends blip2_opt {
  generation { num_beams: 3, max_new_tokens: 6, early_stopping: never }
}
model opt_min extends blip2_opt {
  generation { min_length: 31 }
}
model opt_lengths extends blip2_opt {
  generation { max_length: 30, min_length: 30 }
}
model caption_max extends blip_caption {
  generation { max_length: 5 }
}
model caption_both extends blip_caption {
  generation { max_length: 5, max_new_tokens: 3 }
}
`;
const graph = join(root, 'lengths.blip');
writeFileSync(graph, GRAPHS);

async function compiled(model: string, weights: string) {
  return compile(graph, { weights, out: join(root, `${model}-${weights.split('/').at(-2)}`), model });
}
const ckpt = (fixture: string) => join(FIXTURES, fixture, 'checkpoint');

async function generated(dir: string, image: string, prompt?: string) {
  const m = await load(dir);
  try {
    const [r] = await m.generate([image], prompt === undefined ? {} : { prompt });
    return r!;
  } finally {
    await m.close();
  }
}

/** `blip inspect DIR`'s text. Only strings are captured: the test runner's reports (binary chunks) pass through. */
async function inspect(dir: string): Promise<string> {
  const out: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((s: unknown, ...rest: unknown[]) =>
    typeof s === 'string' ? (out.push(s), true) : (write as (...a: unknown[]) => boolean).call(process.stdout, s, ...rest)) as typeof process.stdout.write;
  try {
    assert.equal(await main(['inspect', dir]), 0);
  } finally {
    process.stdout.write = write;
  }
  return out.join('');
}

test('early_stopping: never compiles from the block, blip inspect names the graph, and beam search gives transformers\' beam and score', async () => {
  const r = await compiled('opt_never', ckpt('blip2-opt-a'));
  // (the file's check warnings come first, as blip compile prints them: caption_both's BLIP2043 below)
  assert.deepEqual(r.warnings.filter((w) => !/^\S+:\d+:\d+ BLIP\d{4}: /.test(w)), []);
  const g = r.manifest.generation!;
  assert.deepEqual([g.early_stopping, g.num_beams, g.max_new_tokens], ['never', 3, 6]);
  assert.deepEqual([g.source.early_stopping, g.source.num_beams, g.source.max_new_tokens], ['graph', 'graph', 'graph']);
  assert.match(await inspect(r.out), /\n  generation  graph: max_new_tokens 6, num_beams 3, early_stopping "never"; default: do_sample false\n/);
  const got = await generated(r.out, PHOTO, QUESTION);
  assert.deepEqual(got.tokenIds, HF.never.tokens);
  assert.ok(Math.abs(got.score! - HF.never.score) < 1e-4, String(got.score));
});

test("min_length counts the whole sequence: EOS waits until 31 (28 input tokens), with the base graph's max_new_tokens kept", async () => {
  const r = await compiled('opt_min', ckpt('blip2-opt-a'));
  const g = r.manifest.generation!;
  assert.deepEqual([g.min_length, g.source.min_length, g.max_new_tokens, g.source.max_new_tokens], [31, 'graph', 30, 'graph']);
  assert.match(await inspect(r.out), /\n  generation  graph: max_new_tokens 30, min_length 31; default: num_beams 1, do_sample false\n/);
  assert.deepEqual((await generated(r.out, PHOTO, QUESTION)).tokenIds, HF.minLength31);
});

test("max_length in a derived model's block replaces the base's max_new_tokens (else that would win), and bounds the whole sequence as transformers' does", async () => {
  const r = await compiled('opt_lengths', ckpt('blip2-opt-a'));
  const g = r.manifest.generation!;
  assert.deepEqual([g.max_length, g.min_length, g.max_new_tokens], [30, 30, undefined]);
  assert.deepEqual(g.source, { max_length: 'graph', min_length: 'graph', num_beams: 'default', do_sample: 'default' });
  assert.deepEqual((await generated(r.out, PHOTO, QUESTION)).tokenIds, HF.lengths30);
  const c = await compiled('caption_max', ckpt('blip-caption-a'));
  assert.deepEqual([c.manifest.generation!.max_length, c.manifest.generation!.source.max_length, c.manifest.generation!.max_new_tokens], [5, 'graph', undefined]);
  assert.deepEqual((await generated(c.out, RGB)).tokenIds, HF.captionMaxLength5);
});

test("a length the block bounds either way is the block's: generation_config.json's bound of it is left out, its other settings kept", async () => {
  const dir = join(root, 'caption-config', 'checkpoint');
  cpSync(ckpt('blip-caption-a'), dir, { recursive: true });
  const file = JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8'));
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ ...file, max_new_tokens: 12, min_new_tokens: 2, early_stopping: 'never' }));
  const r = await compiled('caption_max', dir);
  const g = r.manifest.generation!;
  // the file's max_new_tokens 12 would win over the block's max_length 5 (as in transformers)
  assert.deepEqual(g.source, { max_length: 'graph', min_new_tokens: 'generation_config.json', early_stopping: 'generation_config.json', num_beams: 'default', do_sample: 'default' });
  assert.deepEqual((await generated(r.out, RGB)).tokenIds, HF.captionMaxLength5);
  // and the other way: the shipped block's max_new_tokens 20 leaves the file's max_length out
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ ...file, max_length: 7 }));
  const shipped = await compile('graphs/blip-caption.blip', { weights: dir, out: join(root, 'caption-shipped') });
  assert.deepEqual(shipped.manifest.generation!.source, { max_new_tokens: 'graph', num_beams: 'default', do_sample: 'default' });
});

test('a block with both max_length and max_new_tokens is a check warning at max_length (BLIP2043, blip check and blip compile alike): max_new_tokens wins, as in transformers', async () => {
  const warnings = loadProgram(graph).diagnostics.filter((d) => d.severity === 'warning');
  assert.deepEqual(
    warnings.map((d) => [d.code, `${d.loc.line}:${d.loc.column}`, d.message, d.related?.map((r) => `${r.loc.line}:${r.loc.column} ${r.message}`)]),
    [['BLIP2043', '17:16', 'the generation block sets both max_length 5 and max_new_tokens 3: max_new_tokens wins, as in transformers, and max_length is not used; give one of them', ['17:31 max_new_tokens is set here']]],
  );
  // the library's compile() returns it, once, as the check gives it: the compile adds no second,
  // codeless note of it
  const r = await compiled('caption_both', ckpt('blip-caption-a'));
  assert.deepEqual(r.warnings, [`${graph}:17:16 BLIP2043: ${warnings[0]!.message}`]);
  assert.deepEqual((await generated(r.out, RGB)).tokenIds, HF.captionMaxLength5.slice(0, 3));
});
