// A port's name is the kind's own business (what a `.blip` file writes); what the port is, the
// checks, the compile and blip graph ask of its role (PortSpec.role, docs/architecture.md#adding-a-node-kind).
// Clones of the shipped kinds with every port renamed, written as kinds with those names would be,
// must check, draw, compile and run as the originals. An opt clone whose soft prompt was `visual:`
// compiled without text.prefix_length, and a prefix read from the ViT (17 positions) then failed
// at run time (BLIP5044, "built for 8"); a Q-Former clone's renamed instruction went through the
// LLM's tokenizer. The clones are registered in a file of their own, before the checker and
// compiler are imported (the IR schema takes the kinds at import), so that the messages listing
// the kinds in clonedKinds.test.ts stay those of its clones.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeKinds, type NodeKind } from '../../../src/nodes/index.js';
import type { Flow, LowerContext } from '../../../src/lower/contract.js';
import type { IrModel } from '../../../src/ir/types.js';

/** The shipped kinds' ports, renamed ('' is the positional one): their clones take `KIND_r`. */
const RENAMES: Record<string, Record<string, string>> = {
  vit: { '': 'pixels' },
  qformer: { '': 'image_features', text: 'passage', instruction: 'task' },
  linear: { '': 'features' },
  opt: { prefix: 'visual', text: 'words' },
  llama: { prefix: 'visual', text: 'words' },
  t5: { prefix: 'visual', text: 'words' },
  classifier: { '': 'fused' },
  embed: { '': 'features' },
};

/**
 * A clone of `kind` whose ports have other names, written as a kind with those names would be:
 * its hooks and lowering are asked by the new names and ask the graph by them.
 */
function withPortsRenamed(kind: NodeKind, name: string, renames: Record<string, string>): NodeKind {
  const original = (port: string) => Object.keys(renames).find((p) => renames[p] === port) ?? port;
  const byNewNames = (connected: (port: string) => boolean) => (port: string) => connected(renames[port] ?? port);
  const inputs = (given: Record<string, Flow>) => Object.fromEntries(Object.entries(given).map(([port, f]) => [original(port), f]));
  const context = (ctx: LowerContext): LowerContext => ({ ...ctx, connected: byNewNames(ctx.connected) });
  const lw = kind.lowering!;
  const dec = lw.decoder;
  return {
    ...kind,
    kind: name,
    attrSchema: { ...kind.attrSchema, $id: `blip:node/${name}` },
    ports: kind.ports.map((p) => ({ ...p, name: renames[p.name] ?? p.name })),
    inputWidth: kind.inputWidth && ((port, attrs) => kind.inputWidth!(original(port), attrs)),
    drawnSizes: kind.drawnSizes && ((attrs, connected) => kind.drawnSizes!(attrs, byNewNames(connected))),
    lowering: {
      ...lw,
      ignored: lw.ignored && ((attrs, connected) => lw.ignored!(attrs, byNewNames(connected))),
      lower: lw.lower && ((ctx, given) => lw.lower!(context(ctx), inputs(given))),
      decoder: dec && {
        ...dec,
        facts: (ctx) => dec.facts(context(ctx)),
        encode: (ctx, given) => dec.encode(context(ctx), inputs(given)),
        step: (ctx, io) => dec.step(context(ctx), io),
      },
    },
  };
}
for (const [kind, renames] of Object.entries(RENAMES)) nodeKinds[`${kind}_r`] = withPortsRenamed(nodeKinds[kind], `${kind}_r`, renames);

const { compile, load } = await import('../../../src/index.js');
const { loadProgram } = await import('../../../src/syntax/load.js');
const { describeModel } = await import('../../../src/draw/describe.js');
const { pairingProblems } = await import('../../../src/lower/pairing.js');
const { Checkpoint } = await import('../../../src/weights/checkpoint.js');
const { check, simple, BLIP2 } = await import('../frontend/harness.js');
const { tmp } = await import('../compiler/harness.js');

const dir = tmp('blip-renamed-ports-');
after(() => rmSync(dir, { recursive: true, force: true }));

/** `src` with every node of a kind in RENAMES made its clone, its arguments by the clone's port names. */
function renamed(src: string): string {
  return src.replace(/(node\s+\w+\s*:\s*)(\w+)\(([^)]*)\)/g, (all, head: string, kind: string, args: string) => {
    const renames = RENAMES[kind];
    if (!renames) return all;
    const named = args.split(',').map((a) => a.trim()).filter(Boolean).map((a) => {
      const m = /^(\w+)\s*:\s*(\w+)$/.exec(a);
      const [port, source] = m ? [m[1]!, m[2]!] : ['', a];
      const to = renames[port] ?? port;
      return to ? `${to}: ${source}` : source;
    });
    return `${head}${kind}_r(${named.join(', ')})`;
  });
}

// The shipped graphs with the clones, under the same names so that their imports find each other.
const ORIGINALS = join(dir, 'graphs');
const RENAMED = join(dir, 'renamed');
for (const d of [ORIGINALS, RENAMED]) mkdirSync(d);
for (const file of readdirSync('graphs').filter((f) => f.endsWith('.blip'))) {
  const text = readFileSync(join('graphs', file), 'utf8');
  writeFileSync(join(ORIGINALS, file), text);
  writeFileSync(join(RENAMED, file), renamed(text));
}
// blip2-opt with the LLM fed the ViT's 17 outputs instead of the Q-Former's 8 queries
const FROM_VIT = 'blip2-opt-from-vit.blip';
const fromVit = readFileSync('graphs/blip2-opt.blip', 'utf8').replace('opt(prefix: projection, text: prompt)', 'opt(prefix: vision, text: prompt)');
writeFileSync(join(ORIGINALS, FROM_VIT), fromVit);
writeFileSync(join(RENAMED, FROM_VIT), renamed(fromVit));

test('the renamed graphs name the clones by their own ports', () => {
  const text = readFileSync(join(RENAMED, 'blip2-opt.blip'), 'utf8');
  assert.match(text, /node vision: vit_r\(pixels: image\)/);
  assert.match(text, /node qformer: qformer_r\(image_features: vision\)/);
  assert.match(text, /node projection: linear_r\(features: qformer\)/);
  assert.match(text, /node llm: opt_r\(visual: projection, words: prompt\)/);
  assert.match(readFileSync(join(RENAMED, 'instructblip-vicuna.blip'), 'utf8'), /qformer_r\(image_features: vision, task: prompt\)/);
  assert.match(readFileSync(join(RENAMED, 'blip2-itm.blip'), 'utf8'), /qformer_r\(image_features: vision, passage: text\)[^\n]*\n[^\n]*\n\s*node text_only: qformer_r\(passage: text\)/);
});

test('the shipped graphs with renamed ports check as the originals: clean (the ViT-fed one: its Q-Former and projection unused)', () => {
  const diagnostics = (d: string, file: string) => loadProgram(join(d, file)).diagnostics.map(simple);
  for (const file of readdirSync(RENAMED)) assert.deepEqual(diagnostics(RENAMED, file), diagnostics(ORIGINALS, file), file);
  assert.deepEqual(diagnostics(RENAMED, FROM_VIT).map((d) => d.code), ['BLIP2030', 'BLIP2030']);
  assert.deepEqual(readdirSync(RENAMED).filter((f) => f !== FROM_VIT).flatMap((f) => diagnostics(RENAMED, f)), []);
});

const IMAGES = ['test/fixtures/images/rgb_37x23.png', 'test/fixtures/images/gray_45x31.png'];

/** The manifest less where the graph came from. */
function manifestOf(out: string): Record<string, unknown> {
  const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
  delete m.source.graph;
  return m;
}

/** Compile `file` from the originals' folder and the renamed one against a fixture; the two artifact folders. */
async function bothCompiled(file: string, fixture: string): Promise<[string, string]> {
  const outs: [string, string] = [join(dir, `${fixture}-${file}-original`), join(dir, `${fixture}-${file}-renamed`)];
  const weights = join('test/fixtures', fixture, 'checkpoint');
  await compile(join(ORIGINALS, file), { weights, out: outs[0] });
  await compile(join(RENAMED, file), { weights, out: outs[1] });
  return outs;
}

/** Greedy tokens of a few generate() runs, with and without a prompt. */
async function tokens(out: string, prompts: Array<string | undefined>): Promise<unknown[]> {
  const m = await load(out);
  try {
    const all: unknown[] = [];
    for (const prompt of prompts) all.push((await m.generate(IMAGES, { maxNewTokens: 6, numBeams: 1, ...(prompt === undefined ? {} : { prompt }) })).map((r) => r.tokenIds));
    return all;
  } finally {
    await m.close();
  }
}

for (const [file, fixture, prompts] of [
  ['blip2-opt.blip', 'blip2-opt-a', [undefined, 'Question: what is this? Answer:']],
  [FROM_VIT, 'blip2-opt-a', [undefined, 'Question: what is this? Answer:']],
  ['instructblip-vicuna.blip', 'instructblip-vicuna-a', ['What is in the picture?', 'Describe it.']],
  ['instructblip-t5.blip', 'instructblip-t5-a', ['What is in the picture?', 'Describe it.']],
] as Array<[string, string, Array<string | undefined>]>)
  test(`${file} with renamed ports compiles to the same manifest and weights as the original on ${fixture}, and generates the same tokens`, async () => {
    const [original, clone] = await bothCompiled(file, fixture);
    assert.deepEqual(manifestOf(clone), manifestOf(original));
    assert.ok(readFileSync(join(clone, 'weights.bin')).equals(readFileSync(join(original, 'weights.bin'))), 'weights.bin');
    const want = await tokens(original, prompts);
    assert.ok(want.flat().every((ids) => (ids as number[]).length > 0));
    assert.deepEqual(await tokens(clone, prompts), want);
  });

test('the ViT fed to a renamed soft-prompt port records its 17 positions (text.prefix_length), not num_query_tokens', async () => {
  const [, clone] = await bothCompiled(FROM_VIT, 'blip2-opt-a');
  const { text } = manifestOf(clone) as { text: Record<string, unknown> };
  assert.deepEqual([text.num_query_tokens, text.prefix_length], [8, 17]);
});

test('blip2-itm.blip with renamed ports compiles to the same manifest on blip2-itm-a and scores the same (itm, embeddings)', async () => {
  const [original, clone] = await bothCompiled('blip2-itm.blip', 'blip2-itm-a');
  assert.deepEqual(manifestOf(clone), manifestOf(original));
  const scores = async (out: string) => {
    const m = await load(out);
    try {
      return [await m.itm(IMAGES, ['a dog', 'two circles']), await m.embedImages(IMAGES), await m.embedTexts(['a dog', 'two circles'])];
    } finally {
      await m.close();
    }
  };
  assert.deepEqual(await scores(clone), await scores(original));
});

/** A graph's first model. */
function modelOf(file: string): IrModel {
  const r = loadProgram(file);
  assert.ok(r.program, r.diagnostics.map((d) => d.message).join('; '));
  return r.program.models[0];
}

test('the renamed graphs draw as the originals: sizes, shapes along the edges (blip graph)', () => {
  const resolved = { vision: { width: 32, depth: 2, image_size: 32, patch_size: 8 }, qformer: { width: 32, depth: 2, queries: 8 }, projection: {}, llm: { width: 32, depth: 2, vocab_size: 608 } };
  for (const file of readdirSync(RENAMED)) {
    const drawn = (d: string) => {
      const g = describeModel(modelOf(join(d, file)), resolved);
      return { vertices: g.vertices.map((v) => ({ ...v, kind: v.kind.replace(/_r$/, ''), detail: v.detail.replace(/_r\b/g, '') })), shapes: g.edges.map((e) => [e.from, e.to, e.shape]) };
    };
    assert.deepEqual(drawn(RENAMED), drawn(ORIGINALS), file);
  }
});

test("the Q-Former clone's instruction attribute is checked against its renamed instruction port (BLIP2033), and its renamed retrieval text on a generating clone is BLIP2038", () => {
  const src = renamed(BLIP2);
  assert.deepEqual(check(src.replace('qformer_r(image_features: vision) @ "qformer"', 'qformer_r(image_features: vision) @ "qformer" { instruction: true }')).map((d) => [d.code, d.message]), [
    ['BLIP2033', "qformer_r 'qformer' pins instruction: true: expected a 'task: SOURCE' input, found none"],
  ]);
  assert.deepEqual(check(src.replace('qformer_r(image_features: vision) @ "qformer"', 'qformer_r(image_features: vision, task: prompt) @ "qformer" { instruction: false }')).map((d) => [d.code, d.message]), [
    ['BLIP2033', "qformer_r 'qformer' pins instruction: false: expected no 'task:' input, found 'task: prompt'"],
  ]);
  assert.deepEqual(check(src.replace('qformer_r(image_features: vision)', 'qformer_r(image_features: vision, passage: prompt)')).map((d) => [d.code, d.message]), [
    ['BLIP2038', "qformer_r 'qformer' reads passage: prompt and feeds generate() output 'text': expected 'task: prompt', the port a generating Q-Former reads text through (InstructBLIP), found passage:, BLIP-2 retrieval's port for itm() and itc()"],
  ]);
  assert.deepEqual(check(src.replace('qformer_r(image_features: vision)', 'qformer_r(image_features: vision, passage: prompt, task: prompt)')).map((d) => [d.code, d.message]), [
    ['BLIP2038', "qformer_r 'qformer' reads both passage: prompt and task: prompt: expected one, task: for InstructBLIP's instruction beside the queries or passage: for BLIP-2 retrieval's text"],
  ]);
});

test("pooling over the Q-Former clone's query outputs reads through a renamed projection, and a text-only pass is no query outputs (BLIP2037)", () => {
  const itm = readFileSync(join(RENAMED, 'blip2-itm.blip'), 'utf8');
  assert.deepEqual(check(itm.replace('classifier_r(fused: fused)', 'classifier_r(fused: pre)').replace('node itm_head', 'node pre: linear_r(features: fused) @ "pre"\n  node itm_head')), []);
  assert.deepEqual(check(itm.replace('classifier_r(fused: fused)', 'classifier_r(fused: text_only)')).filter((d) => d.code === 'BLIP2037').map((d) => d.message), [
    "classifier_r 'itm_head' pools mean_queries over 'text_only': expected the query outputs of a qformer or qformer_r that reads image features, found qformer_r 'text_only' without image features, a text-only pass whose positions are text tokens; use pool: cls",
  ]);
  assert.deepEqual(check(itm.replace('{ pool: mean_queries }', '{ pool: cls }')).filter((d) => d.code === 'BLIP2037').map((d) => d.message), [
    "classifier_r 'itm_head' pools cls over the query outputs of qformer_r 'fused', which reads image features: expected pool: mean_queries, over every query (the first position is one query alone, no summary of the image), found pool: cls",
  ]);
});

test("the Q-Former clone's renamed instruction is paired with the checkpoint's family (BLIP4019)", () => {
  const problems = (file: string, fixture: string) => {
    const m = modelOf(join(RENAMED, file));
    const ckpt = Checkpoint.open(join('test/fixtures', fixture, 'checkpoint'));
    try {
      return pairingProblems(m, new Set(m.nodes.map((n) => n.name)), ckpt.config, ckpt.keys()).map((p) => p.message);
    } finally {
      ckpt.close();
    }
  };
  assert.deepEqual(problems('instructblip-vicuna.blip', 'instructblip-vicuna-a'), []);
  assert.deepEqual(problems('blip2-itm.blip', 'blip2-itm-a'), []);
  assert.match(problems('instructblip-vicuna.blip', 'blip2-llama-a')[0], /node "qformer" takes an instruction \(InstructBLIP\), but config\.json's model_type is "blip-2"/);
  assert.match(problems('blip2-t5.blip', 'instructblip-t5-a')[0], /node "qformer" takes no instruction, but config\.json's model_type is "instructblip", whose Q-Former reads one/);
});

test('a kind has each role on one port at most (what the compile and the checks ask a port by)', () => {
  for (const kind of Object.values(nodeKinds)) {
    const roles = kind.ports.map((p) => p.role);
    assert.deepEqual(roles, [...new Set(roles)], kind.kind);
  }
});
