// Adding a node kind is adding its file (docs/architecture.md#adding-a-node-kind): a kind
// registered under a new keyword, here a clone of a shipped one, must check, draw and compile as
// the original does, with nothing elsewhere knowing the original by name. The clones are
// registered before the checker and compiler are imported, as a file listed in
// src/nodes/index.ts would be.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { nodeKinds, type NodeKind } from '../../../src/nodes/index.js';
import { Vit } from '../../../src/nodes/vit.js';
import { Opt } from '../../../src/nodes/opt.js';
import { Linear } from '../../../src/nodes/linear.js';
import { QFormer } from '../../../src/nodes/qformer.js';
import { Bert } from '../../../src/nodes/bert.js';
import { Classifier } from '../../../src/nodes/classifier.js';
import { Embed } from '../../../src/nodes/embed.js';
import type { IrModel } from '../../../src/ir/types.js';
import type { CompileResult } from '../../../src/lower/compile.js';

const clone = (kind: NodeKind, name: string): NodeKind => ({ ...kind, kind: name, attrSchema: { ...kind.attrSchema, $id: `blip:node/${name}` } });
nodeKinds.siglip = clone(Vit, 'siglip');
nodeKinds.gpt = clone(Opt, 'gpt');
nodeKinds.proj = clone(Linear, 'proj');
nodeKinds.qf2 = clone(QFormer, 'qf2');
nodeKinds.bert2 = clone(Bert, 'bert2');
nodeKinds.head = clone(Classifier, 'head');
nodeKinds.embed2 = clone(Embed, 'embed2');

const { loadProgram } = await import('../../../src/syntax/load.js');
const { compile } = await import('../../../src/lower/compile.js');
const { describeModel } = await import('../../../src/draw/describe.js');
const { toSvg } = await import('../../../src/draw/svg.js');
const { pairingProblems } = await import('../../../src/lower/pairing.js');
const { Checkpoint } = await import('../../../src/weights/checkpoint.js');
const { validateIr } = await import('../../../src/ir/validate.js');
const { load } = await import('../../../src/index.js');
const { FIXTURES, loadModel, tmp } = await import('../compiler/harness.js');
const { check, edit } = await import('../frontend/harness.js');

const GRAPH = 'graphs/blip2-opt.blip';
const dir = tmp('blip-cloned-kinds-');
after(() => rmSync(dir, { recursive: true, force: true }));

/** A shipped graph's model (blip2-opt's by default), with each node of a kind in `clones` made one of the clone (in the IR). */
function modelOf(graph: string, clones: Record<string, string> = {}): IrModel {
  const r = loadProgram(graph);
  assert.ok(r.program, r.diagnostics.map((d) => d.message).join('; '));
  const m = r.program.models[0];
  for (const n of m.nodes) if (Object.hasOwn(clones, n.kind)) n.kind = clones[n.kind];
  return m;
}
const model = (from?: string, to?: string): IrModel => modelOf(GRAPH, from ? { [from]: to! } : {});

const compiled = new Map<string, Promise<CompileResult>>();
/** modelOf(graph, clones) compiled against a fixture's checkpoint, once. */
function compiledAs(graph: string, fixture: string, clones: Record<string, string> = {}): Promise<CompileResult> {
  const name = [fixture, ...Object.values(clones)].join('-');
  if (!compiled.has(name)) compiled.set(name, compile({ model: modelOf(graph, clones), graphFile: graph, graphText: readFileSync(graph, 'utf8'), weights: join(FIXTURES, fixture, 'checkpoint'), out: join(dir, name) }));
  return compiled.get(name)!;
}
/** model(from, to) compiled against the blip2-opt-a fixture, once. */
const compiledWith = (from?: string, to?: string): Promise<CompileResult> => compiledAs(GRAPH, 'blip2-opt-a', from ? { [from]: to! } : {});

test('a vit clone sizes pixel_values and writes image_embeds as vit does (compile)', async () => {
  const vit = await compiledWith();
  const siglip = await compiledWith('vit', 'siglip');
  assert.deepEqual(siglip.manifest.graphs.encode, vit.manifest.graphs.encode);
  assert.deepEqual(siglip.manifest.preprocess, vit.manifest.preprocess);
  assert.ok(vit.manifest.graphs.encode!.outputs.some((o) => o.name === 'image_embeds'));
});

test('a vit clone draws the image input at its image size', () => {
  const resolved = { vision: { width: 128, depth: 3, image_size: 96, patch_size: 12 } };
  const image = (m: IrModel) => describeModel(m, resolved).vertices.find((v) => v.id === 'input:image')!.detail;
  assert.equal(image(model()), 'pixels (B, 3, 96, 96)');
  assert.equal(image(model('vit', 'siglip')), image(model()));
});

test('a linear clone takes its unknown widths from its neighbours when drawn, as linear does', () => {
  const resolved = { vision: { width: 128 }, qformer: { width: 128, queries: 16 }, projection: {}, llm: { width: 96 } };
  const widths = (m: IrModel) => {
    const g = describeModel(m, resolved);
    return [g.edges.find((e) => e.from === 'projection')!.shape.split(', ').at(-1), g.vertices.find((v) => v.id === 'projection')!.kind];
  };
  assert.deepEqual(widths(model()), ['96)', 'linear']);
  assert.deepEqual(widths(model('linear', 'proj')), ['96)', 'proj']);
});

test('a graph naming a vit clone checks clean: the IR schema takes its kinds from the registry', () => {
  assert.deepEqual(check(edit('vision: vit(image)', 'vision: siglip(image)')), []);
});

test("a vit clone's sizes are checked as vit's: heads divide the width, patches the image", () => {
  for (const kind of ['vit', 'siglip'])
    assert.deepEqual(
      check(edit('vision: vit(image) frozen @ "vision_model"', `vision: ${kind}(image) frozen @ "vision_model" { width: 1000, heads: 16, image_size: 100, patch_size: 16 }`)).map((d) => [d.code, d.message]),
      [
        ['BLIP2041', `${kind} 'vision': width 1000 is not a multiple of heads 16: expected heads to divide width`],
        ['BLIP2041', `${kind} 'vision': image_size 100 is not a multiple of patch_size 16: expected patch_size to divide image_size`],
      ],
    );
});

test('the IR schema still refuses a kind that is not registered', () => {
  const program = loadProgram(GRAPH).program!;
  assert.deepEqual(validateIr(program), []);
  program.models[0].nodes[0].kind = 'unregistered';
  assert.deepEqual(
    validateIr(program).map((e) => [e.instancePath, e.params]),
    [['/models/0/nodes/0/kind', { allowedValues: Object.keys(nodeKinds) }]],
  );
});

test('an opt clone can drive generate(), and the message naming the decoders names it', () => {
  assert.deepEqual(check(edit('llm: opt(', 'llm: gpt(')), []);
  assert.deepEqual(
    check(edit('generate(llm)', 'generate(vision)')).map((d) => d.message),
    ["generate() expects a text decoder (opt, llama, t5, gpt, bert with causal: true, or bert2 with causal: true), found vit 'vision'"],
  );
});

test('the task messages: a bert without causal: true, an input where a node belongs', () => {
  const bert = edit('llm: opt(prefix: projection, text: prompt) frozen @ "language_model"', 'llm: bert(prompt, cross: projection) @ "text_decoder"');
  assert.deepEqual(check(bert).map((d) => d.message), ["generate() expects a text decoder (opt, llama, t5, gpt, bert with causal: true, or bert2 with causal: true), found bert 'llm' without causal: true"]);
  assert.deepEqual(check(edit('@ "text_decoder"', '@ "text_decoder" { causal: true }', bert)), []);
  assert.deepEqual(check(edit('output text: generate(llm)', 'output match: itm(prompt)')).map((d) => d.message), ["itm() expects a classifier or head node (the ITM head), found text input 'prompt'"]);
});

test('an opt clone records its learned positions: a prompt longer than them is BLIP5032, not a failure in onnxruntime', async () => {
  const opt = await compiledWith();
  const gpt = await compiledWith('opt', 'gpt');
  assert.deepEqual(gpt.manifest.text, opt.manifest.text);
  assert.ok(opt.manifest.text.max_positions?.decoder! > 0);
  const m = await load(gpt.out);
  try {
    const prompt = 'Question: how many circles are there? '.repeat(12) + 'Answer:';
    await assert.rejects(m.generate(['test/fixtures/images/rgb_37x23.png'], { prompt, maxNewTokens: 3 }), { code: 'BLIP5032' });
  } finally {
    await m.close();
  }
});

test("a qformer clone's query outputs pool as the Q-Former's, through a linear clone, and its text: is retrieval's", () => {
  const itm = readFileSync('graphs/blip2-itm.blip', 'utf8');
  // the shipped BLIP-2 retrieval graph: mean_queries / queries over the clone's query outputs
  assert.deepEqual(check(itm.replace(/qformer\(/g, 'qf2(')), []);
  assert.deepEqual(check(itm.replace('classifier(fused)', 'classifier(pre)').replace('node itm_head', 'node pre: proj(fused) @ "pre"\n  node itm_head')), []);
  // a text-only pass of the clone is no query outputs
  assert.deepEqual(check(itm.replace(/qformer\(/g, 'qf2(').replace('classifier(fused)', 'classifier(text_only)')).filter((d) => d.code === 'BLIP2037').map((d) => d.message), [
    "classifier 'itm_head' pools mean_queries over 'text_only': expected the query outputs of a qformer or qf2 that reads image features, found qf2 'text_only' without image features, a text-only pass whose positions are text tokens; use pool: cls",
  ]);
  // text: on a generating clone is BLIP2038, as on a qformer
  assert.deepEqual(check(edit('qformer(vision)', 'qf2(vision, text: prompt)')).map((d) => [d.code, d.message]), [
    ['BLIP2038', "qf2 'qformer' reads text: prompt and feeds generate() output 'text': expected 'instruction: prompt', the port a generating Q-Former reads text through (InstructBLIP), found text:, BLIP-2 retrieval's port for itm() and itc()"],
  ]);
});

/** Every .blip file under graphs/. */
function shippedGraphs(dir = 'graphs'): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? shippedGraphs(join(dir, e.name)) : e.name.endsWith('.blip') ? [join(dir, e.name)] : []));
}

/** Each node box's fill and stroke in an SVG picture, by node name. */
const colours = (svg: string) => Object.fromEntries([...svg.matchAll(/<g class="node[^"]*" id="([^"]+)"><rect [^>]*fill="([^"]+)" stroke="([^"]+)"/g)].map((m) => [m[1], [m[2], m[3]]]));

test('each shipped graph draws the same with any one of its kinds replaced by a clone: sizes, shapes along the edges, colours (blip graph)', () => {
  const models: Array<[string, IrModel]> = shippedGraphs().flatMap((file) => {
    const program = loadProgram(file).program;
    assert.ok(program, file);
    return program.models.map((m): [string, IrModel] => [`${file} (${m.name})`, m]);
  });
  models.push([`${GRAPH} with an mlp projection`, model('linear', 'mlp')]);
  const cloned = new Set<string>();
  for (const [what, m] of models) {
    const drawn = describeModel(m);
    const picture = colours(toSvg([drawn]));
    for (const kind of new Set(m.nodes.map((n) => n.kind))) {
      const name = `${kind}_copy`;
      nodeKinds[name] = clone(nodeKinds[kind], name);
      try {
        const copy = structuredClone(m);
        for (const n of copy.nodes) if (n.kind === kind) n.kind = name;
        const g = describeModel(copy);
        const named = { ...g, vertices: g.vertices.map((v) => (v.kind === name ? { ...v, kind } : v)) };
        assert.deepEqual(named, drawn, `${what}, ${kind} cloned`);
        assert.deepEqual(colours(toSvg([g])), picture, `${what}, ${kind} cloned`);
        cloned.add(kind);
      } finally {
        delete nodeKinds[name];
      }
    }
  }
  assert.deepEqual([...cloned].sort(), ['bert', 'classifier', 'embed', 'linear', 'llama', 'mlp', 'opt', 'qformer', 't5', 'vit']);
});

test("the SVG legend names a clone beside its original's colour", () => {
  const svg = toSvg([describeModel(model())]);
  for (const label of ['vision encoder (vit, siglip)', 'Q-Former / BERT (qformer, bert, qf2, bert2)', 'projection / head (linear, mlp, embed, classifier, proj, head, embed2)', 'language model (opt, llama, t5, gpt)'])
    assert.ok(svg.includes(`>${label}</text>`), label);
});

test("a qformer clone's instruction attribute is checked against its instruction: input, as the Q-Former's (BLIP2033)", () => {
  for (const kind of ['qformer', 'qf2']) {
    assert.deepEqual(check(edit('qformer(vision) @ "qformer"', `${kind}(vision) @ "qformer" { instruction: true }`)).map((d) => [d.code, d.message]), [
      ['BLIP2033', `${kind} 'qformer' pins instruction: true: expected an 'instruction: SOURCE' input, found none`],
    ]);
    assert.deepEqual(check(edit('qformer(vision) @ "qformer"', `${kind}(vision, instruction: prompt) @ "qformer" { instruction: false }`)).map((d) => [d.code, d.message]), [
      ['BLIP2033', `${kind} 'qformer' pins instruction: false: expected no 'instruction:' input, found 'instruction: prompt'`],
    ]);
  }
});

test("a qformer clone's instruction: is paired with the checkpoint's family as the Q-Former's (BLIP4019)", () => {
  const problems = (graph: string, fixture: string) => {
    const { model: m } = loadModel(graph);
    for (const n of m.nodes) if (n.kind === 'qformer') n.kind = 'qf2';
    const ckpt = Checkpoint.open(join(FIXTURES, fixture, 'checkpoint'));
    try {
      return pairingProblems(m, new Set(m.nodes.map((n) => n.name)), ckpt.config, ckpt.keys()).map((p) => p.message);
    } finally {
      ckpt.close();
    }
  };
  assert.deepEqual(problems('graphs/instructblip-vicuna.blip', 'instructblip-vicuna-a'), []);
  assert.match(problems('graphs/instructblip-vicuna.blip', 'blip2-llama-a')[0], /node "qformer" takes an instruction \(InstructBLIP\), but config\.json's model_type is "blip-2"/);
  assert.match(problems('graphs/blip2-t5.blip', 'instructblip-t5-a')[0], /node "qformer" takes no instruction, but config\.json's model_type is "instructblip", whose Q-Former reads one/);
});

const IMAGES = ['test/fixtures/images/rgb_37x23.png', 'test/fixtures/images/gray_45x31.png'];

test('itm() takes a classifier clone and itc() embed clones: the retrieval graphs check clean, and BLIP\'s compiles and scores as with the originals', async () => {
  const clones = { classifier: 'head', embed: 'embed2' };
  for (const graph of ['graphs/blip-itm.blip', 'graphs/blip2-itm.blip']) {
    const text = readFileSync(graph, 'utf8');
    assert.deepEqual(check(text.replace(/classifier\(/g, 'head(').replace(/embed\(/g, 'embed2(')), [], graph);
  }
  const original = await compiledAs('graphs/blip-itm.blip', 'blip-itm-a');
  const cloned = await compiledAs('graphs/blip-itm.blip', 'blip-itm-a', clones);
  assert.deepEqual(cloned.manifest, original.manifest);
  for (const file of ['retrieval.onnx', 'weights.bin']) assert.ok(readFileSync(join(cloned.out, file)).equals(readFileSync(join(original.out, file))), file);
  const scores = async (out: string) => {
    const m = await load(out);
    try {
      return await m.itm(IMAGES, ['a dog', 'two circles']);
    } finally {
      await m.close();
    }
  };
  assert.deepEqual(await scores(cloned.out), await scores(original.out));
});

test('itm() and itc() name the kinds they take, clones included, and the node found by its own kind', () => {
  const itm = readFileSync('graphs/blip-itm.blip', 'utf8');
  assert.deepEqual(check(itm.replace('itm(itm_head)', 'itm(image_proj)')).filter((d) => d.code === 'BLIP2026').map((d) => d.message), [
    "itm() expects a classifier or head node (the ITM head), found embed 'image_proj'",
  ]);
  assert.deepEqual(check(itm.replace('embed(unimodal)', 'head(unimodal)')).filter((d) => d.code === 'BLIP2026').map((d) => d.message), [
    "itc() expects an embed or embed2 node, found head 'text_proj'",
  ]);
});

test("a bert clone that generates gets BLIP's prompt layout: [DEC] + the prompt, ending on [SEP] (manifest text, generated tokens)", async () => {
  assert.deepEqual(check(readFileSync('graphs/blip-caption.blip', 'utf8').replace('bert(', 'bert2(')), []);
  const original = await compiledAs('graphs/blip-caption.blip', 'blip-caption-a');
  const cloned = await compiledAs('graphs/blip-caption.blip', 'blip-caption-a', { bert: 'bert2' });
  assert.equal(original.manifest.text.prompt_format, 'blip');
  assert.deepEqual(cloned.manifest.text, original.manifest.text);
  assert.deepEqual(cloned.manifest, original.manifest);
  const tokens = async (out: string) => {
    const m = await load(out);
    try {
      const runs = [await m.generate(IMAGES, { maxNewTokens: 5 }), await m.generate(IMAGES, { prompt: 'a picture of', maxNewTokens: 5 })];
      return runs.flat().map((r) => [r.tokenIds, r.text]);
    } finally {
      await m.close();
    }
  };
  const want = await tokens(original.out);
  assert.ok(want.every(([ids]) => ids.length > 0));
  assert.deepEqual(await tokens(cloned.out), want);
});
