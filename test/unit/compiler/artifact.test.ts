// What a compiled directory holds besides the graphs: the manifest's facts (preprocessing from
// either processor file layout, special ids, generation defaults, sources), the tokenizer files,
// and the `blip compile` / `blip inspect` commands around it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readManifest } from '../../../src/artifact/manifest.js';
import { main } from '../../../src/cli/main.js';
import { FIXTURES, compileFixture, expected, tmp } from './harness.js';

/**
 * Run the CLI with its stdout/stderr text captured. Only strings are captured: the test runner's
 * own reports (binary chunks in a child test process) pass through.
 */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const [out, err]: string[][] = [[], []];
  const w = [process.stdout.write, process.stderr.write];
  const capture = (into: string[], orig: typeof process.stdout.write, stream: NodeJS.WriteStream) =>
    ((s: unknown, ...rest: unknown[]) => (typeof s === 'string' ? (into.push(s), true) : (orig as (...a: unknown[]) => boolean).call(stream, s, ...rest))) as typeof process.stdout.write;
  process.stdout.write = capture(out, w[0], process.stdout);
  process.stderr.write = capture(err, w[1], process.stderr);
  try {
    return { code: await main(args), out: out.join(''), err: err.join('') };
  } finally {
    [process.stdout.write, process.stderr.write] = w;
  }
}

test('manifest facts come from the graph, then processor_config.json / preprocessor_config.json, then defaults', async () => {
  const root = tmp('artifact-');
  try {
    await compileFixture('graphs/blip-caption.blip', 'blip-caption-a', join(root, 'a'));
    await compileFixture('graphs/blip-itm.blip', 'blip-itm-b', join(root, 'b'));
    const a = readManifest(join(root, 'a'));
    const b = readManifest(join(root, 'b'));
    assert.equal(a.preprocess.source.mean, 'processor_config.json');
    assert.equal(b.preprocess.source.mean, 'preprocessor_config.json');
    for (const [m, fixture] of [[a, 'blip-caption-a'], [b, 'blip-itm-b']] as const) {
      const ip = expected(fixture).json.image_processor;
      assert.equal(m.preprocess.image_size, ip.size.height);
      assert.equal(m.preprocess.resample, ({ 2: 'bilinear', 3: 'bicubic' } as Record<number, string>)[ip.resample]);
      assert.deepEqual(m.preprocess.mean, [0.48145466, 0.4578275, 0.40821073]);
    }
    // BLIP's special ids: generate() stops on [SEP] and starts from [DEC] (text_config.bos_token_id).
    const ids = expected('blip-caption-a').json.special_ids;
    assert.deepEqual(a.text.eos_token_id, [ids.sep_token_id]);
    assert.equal(a.text.decoder_start_token_id, ids.bos_token_id);
    assert.equal(a.text.pad_token_id, ids.pad_token_id);
    assert.equal(a.text.prompt_format, 'blip');
    assert.deepEqual([a.task, b.task], ['caption', 'retrieval']);
    assert.deepEqual(b.itm, { match_index: 1 });
    assert.deepEqual(b.outputs, [{ name: 'itm', task: 'itm', graph: 'retrieval' }, { name: 'itc', task: 'itc', graph: 'retrieval' }]);
    // Generation: the graph's block, else transformers' defaults.
    assert.equal(a.generation!.max_new_tokens, 20);
    assert.equal(a.generation!.source.max_new_tokens, 'graph');
    assert.deepEqual([a.generation!.num_beams, a.generation!.do_sample, a.generation!.source.num_beams], [1, false, 'default']);
    assert.equal(b.generation, undefined);
    // Sources and tokenizer files.
    assert.equal(a.source.graph.sha256, createHash('sha256').update(readFileSync('graphs/blip-caption.blip')).digest('hex'));
    assert.match(a.source.checkpoint.fingerprint, /^[0-9a-f]{64}$/);
    for (const f of a.tokenizer!.files) assert.deepEqual(readFileSync(join(root, 'a', 'tokenizer', f)), readFileSync(join(FIXTURES, 'blip-caption-a', 'checkpoint', f)));
    assert.ok(a.tokenizer!.files.includes('tokenizer.json'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('blip compile prints a summary; blip inspect prints a summary of the manifest and an op histogram', async () => {
  const root = tmp('cli-');
  try {
    const out = join(root, 'vqa');
    const c = await cli(['compile', 'graphs/blip-vqa.blip', '--weights', join(FIXTURES, 'blip-vqa-a', 'checkpoint'), '--out', out]);
    assert.equal(c.code, 0, c.err);
    assert.match(c.out, /^compiled blip_vqa \(blip vqa, float32\) -> .*vqa\n\s+parameters\s+0\.\d+ M/);
    assert.match(c.out, /encode\.onnx\s+\d+ nodes, [\d.]+ KB\n\s+decoder\.onnx\s+\d+ nodes/);
    assert.match(c.out, /weights\.bin\s+[\d.]+ KB, \d+ tensors\n\s+time\s+[\d.]+ s/);
    const i = await cli(['inspect', out]);
    assert.equal(i.code, 0, i.err);
    assert.equal(i.out.split('\n')[0], `${out}: blip_vqa (blip vqa, float32), compiled by blip-graph ${JSON.parse(readFileSync('package.json', 'utf8')).version}`);
    // a summary, not the manifest's JSON: a tensor a line, the KV cache once for all layers
    assert.doesNotMatch(i.out, /[{}]\n|"task"/);
    // where each setting came from: the graph's generation block, else transformers' default
    assert.match(i.out, /\n  generation  graph: max_new_tokens 20; default: num_beams 1, do_sample false\n/);
    assert.match(i.out, /\n  weights     weights\.bin [\d.]+ KB, \d+ tensors, [\d.]+ M parameters\n/);
    assert.match(
      i.out,
      /\ndecoder\.onnx: \d+ nodes, \d+ initializers, [\d.]+ KB\n  inputs   input_ids +int64\[batch, sequence\]\n +attention_mask +int64\[batch, total_sequence\]\n +position_ids +int64\[batch, position_sequence\]\n +past\.\{0\.\.1\}\.\{key,value\} +float32\[batch, 4, past_sequence, 10\]  \(2 layers × 2\)\n/,
    );
    assert.doesNotMatch(i.out, /past\.1\.key/);
    assert.match(i.out, /\n\s+MatMul\s+\d+\n/);
    assert.ok(i.out.split('\n').length < 100, i.out);
    const typo = await cli(['inspect', out, '--jsn']);
    assert.equal(typo.code, 2);
    assert.match(typo.err, /^blip inspect: unknown option '--jsn'; did you mean '--json'\?\n/);
    const j = JSON.parse((await cli(['inspect', out, '--json'])).out);
    // what the help says --json prints, and only that
    assert.deepEqual(Object.keys(j), ['manifest', 'graphs']);
    assert.deepEqual(Object.keys(j.graphs.encode), ['nodes', 'initializers', 'ops']);
    const help = (await cli(['inspect', '--help'])).out;
    assert.match(help, /--json +print JSON instead: \{manifest, graphs: \{name: \{nodes, initializers, ops\}\}\}/);
    assert.doesNotMatch(help, /manifest itself/);
    assert.equal(j.graphs.encode.ops.Conv, 1);
    assert.equal(j.graphs.decoder.ops.Softmax, 4); // 2 layers × (self + cross)
    // a graph file cut short, emptied or overwritten: one BLIP5004 line naming it
    const enc = readFileSync(join(out, 'encode.onnx'));
    for (const [bytes, why] of [
      [enc.subarray(0, 500), /it does not decode: /],
      [new Uint8Array(0), /it has no graph/],
    ] as const) {
      writeFileSync(join(out, 'encode.onnx'), bytes);
      const bad = await cli(['inspect', out]);
      assert.equal(bad.code, 1, bad.err);
      assert.match(bad.err, /^error BLIP5004: .*vqa is incomplete: encode\.onnx is not an ONNX model \(/);
      assert.match(bad.err, why);
      assert.equal(bad.err.trim().split('\n').length, 1, bad.err);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("blip inspect says where each generation setting came from: the graph, the checkpoint's generation_config.json or the default", async () => {
  const root = tmp('cli-');
  try {
    const ckpt = join(root, 'checkpoint');
    cpSync(join(FIXTURES, 'blip-caption-a', 'checkpoint'), ckpt, { recursive: true });
    const file = JSON.parse(readFileSync(join(ckpt, 'generation_config.json'), 'utf8'));
    writeFileSync(join(ckpt, 'generation_config.json'), JSON.stringify({ ...file, num_beams: 3, repetition_penalty: 1.2 }));
    const out = join(root, 'caption');
    const c = await cli(['compile', 'graphs/blip-caption.blip', '--weights', ckpt, '--out', out]);
    assert.equal(c.code, 0, c.err);
    const i = await cli(['inspect', out]);
    assert.equal(i.code, 0, i.err);
    assert.match(i.out, /\n  generation  graph: max_new_tokens 20; generation_config\.json: num_beams 3, repetition_penalty 1\.2; default: do_sample false\n/);
    const j = JSON.parse((await cli(['inspect', out, '--json'])).out);
    assert.deepEqual(j.manifest.generation.source, { max_new_tokens: 'graph', num_beams: 'generation_config.json', repetition_penalty: 'generation_config.json', do_sample: 'default' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('blip inspect heads its summary as blip compile does: family, task, dtype, target and quantization', async () => {
  const root = tmp('cli-');
  try {
    const out = join(root, 'q');
    const c = await cli(['compile', 'graphs/blip-caption.blip', '--weights', join(FIXTURES, 'blip-caption-a', 'checkpoint'), '--out', out, '--target', 'cpu', '--quantize', 'int8']);
    assert.equal(c.code, 0, c.err);
    const compiled = /^compiled (.*) -> /.exec(c.out)![1]!;
    assert.equal(compiled, 'blip_caption (blip caption, float32, target cpu, int8 weights)');
    const i = await cli(['inspect', out]);
    assert.equal(i.code, 0, i.err);
    assert.ok(i.out.startsWith(`${out}: ${compiled}, compiled by `), i.out.split('\n')[0]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('blip inspect refuses a directory without a valid manifest; blip compile reports located errors', async () => {
  const root = tmp('cli-');
  try {
    const none = await cli(['inspect', root]);
    assert.equal(none.code, 1);
    assert.equal(none.err, `error BLIP5001: ${root} is not a compiled model: it is empty (compile one into it with 'blip compile GRAPH.blip --weights DIR --out ${root}')\n`);
    // --out is suggested only where compile would write: not into a .blip file (a graph, to check or
    // compile), another file, or a folder with files in it (compile refuses that, BLIP4016)
    const graph = await cli(['inspect', 'graphs/blip2-opt.blip']);
    assert.equal(
      graph.err,
      "error BLIP5001: graphs/blip2-opt.blip is a graph, not a compiled model: check it with 'blip check graphs/blip2-opt.blip', draw it with 'blip graph graphs/blip2-opt.blip', or compile it ('blip compile graphs/blip2-opt.blip --weights DIR --out OUT') and use OUT\n",
    );
    assert.equal((await cli(['inspect', 'graphs'])).err, "error BLIP5001: graphs is not a compiled model: it has no manifest.json (compile one into a new folder with 'blip compile GRAPH.blip --weights DIR --out OUT', then use OUT)\n");
    assert.match((await cli(['inspect', 'package.json'])).err, /^error BLIP5001: package\.json is a file, not a compiled model \(a folder with a manifest\.json, written by 'blip compile GRAPH\.blip --weights DIR --out OUT', then use OUT\)\n$/);
    // a checkpoint folder where a compiled model belongs is told how to compile it
    const ck = join(FIXTURES, 'blip-caption-a', 'checkpoint');
    const checkpoint = await cli(['run', ck, '--image', 'test/fixtures/images/photo_64x48.jpg']);
    assert.equal(checkpoint.code, 1);
    assert.equal(checkpoint.err, `error BLIP5001: ${ck} is a HuggingFace checkpoint, not a compiled model: compile it first ('blip compile [GRAPH.blip] --weights ${ck} --out OUT'; without a graph, the shipped one for its class), then use OUT\n`);
    writeFileSync(join(root, 'manifest.json'), '{"format": "blip-graph-artifact", "version": 1}');
    assert.match((await cli(['inspect', root])).err, /error BLIP5002: .*manifest\.json is invalid: \(top level\): must have required property/);
    const usage = await cli(['compile', 'graphs/blip-vqa.blip', '--out', join(root, 'x')]);
    assert.equal(usage.code, 2);
    assert.match(usage.err, /--weights DIR is required/);
    for (const [argv, re] of [
      [['--weights', '--out', join(root, 'x')], /^blip compile: --weights expects a value, found the option --out/],
      [['--weights=w', '--out', join(root, 'x'), '--out=y'], /^blip compile: --out is given twice/],
    ] as const) {
      const r = await cli(['compile', 'graphs/blip-vqa.blip', ...argv]);
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, re);
    }
    // --name=value as --name value
    const inline = await cli(['compile', 'graphs/blip-vqa.blip', `--weights=${join(FIXTURES, 'blip-vqa-a', 'checkpoint')}`, `--out=${join(root, 'inline')}`]);
    assert.equal(inline.code, 0, inline.err);
    const wrong = await cli(['compile', 'graphs/blip-vqa.blip', '--weights', join(FIXTURES, 'blip-caption-a', 'checkpoint'), '--out', join(root, 'x')]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.err, /graphs\/blip-vqa\.blip:\d+:\d+ - error BLIP4019: the checkpoint is another model than "blip_vqa" describes: it has no tensors under "text_encoder\." \(node question_encoder\); it holds text_decoder\.\*, vision_model\.\* \(config\.json: BlipForConditionalGeneration, which graphs\/blip-caption\.blip compiles\)/);
    assert.match(wrong.err, /\| +node question_encoder: bert/); // the code frame
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('blip compile without GRAPH.blip compiles the shipped graph config.json names, and says which; none for an unknown class', async () => {
  const root = mkdtempSync(join(tmpdir(), 'blip-auto-'));
  try {
    for (const [fixture, graph, model] of [
      ['blip2-opt-a', 'graphs/blip2-opt.blip', 'blip2_opt'],
      ['blip2-t5-a', 'graphs/blip2-t5.blip', 'blip2_t5'],
      ['blip-vqa-a', 'graphs/blip-vqa.blip', 'blip_vqa'],
      ['instructblip-vicuna-a', 'graphs/instructblip-vicuna.blip', 'instructblip_vicuna'],
    ]) {
      const r = await cli(['compile', '--weights', join(FIXTURES, fixture, 'checkpoint'), '--out', join(root, fixture)]);
      assert.equal(r.code, 0, r.err);
      assert.ok(r.err.startsWith(`blip compile: ${join(FIXTURES, fixture, 'checkpoint', 'config.json')} says `) && r.err.endsWith(`: compiling ${graph}\n`), r.err);
      assert.equal(JSON.parse(readFileSync(join(root, fixture, 'manifest.json'), 'utf8')).model, model);
    }
    const ck = join(root, 'other');
    mkdirSync(ck);
    for (const f of readdirSync(join(FIXTURES, 'blip-itm-a', 'checkpoint'))) copyFileSync(join(FIXTURES, 'blip-itm-a', 'checkpoint', f), join(ck, f));
    const config = JSON.parse(readFileSync(join(ck, 'config.json'), 'utf8'));
    writeFileSync(join(ck, 'config.json'), JSON.stringify({ ...config, architectures: ['BlipModel'] }));
    const r = await cli(['compile', '--weights', ck, '--out', join(root, 'x')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /expected GRAPH\.blip: .*config\.json says BlipModel, for which blip-graph ships no graph/);
    assert.equal(existsSync(join(root, 'x')), false);
    // the checkpoint where the graph belongs, without --weights
    const ckDir = join(FIXTURES, 'blip-itm-a', 'checkpoint');
    const misplaced = await cli(['compile', ckDir, '--out', join(root, 'y')]);
    assert.equal(misplaced.code, 2);
    assert.match(misplaced.err, new RegExp(`^blip compile: ${ckDir.replace(/[./]/g, '\\$&')} is a checkpoint folder: give it as --weights `));
    // blip graph --weights without FILE draws the shipped graph
    const drawn = await cli(['graph', '--weights', ckDir, '--format', 'mermaid']);
    assert.equal(drawn.code, 0, drawn.err);
    assert.match(drawn.err, /says BlipForImageTextRetrieval: drawing graphs\/blip-itm\.blip\n$/);
    assert.match(drawn.out, /blip_itm/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the ONNX graphs do not depend on how the .blip path was written (relative or absolute): their node origins are relative to the compiled file', async () => {
  const root = mkdtempSync(join(tmpdir(), 'blip-origin-'));
  try {
    const weights = join(FIXTURES, 'blip2-t5-a', 'checkpoint');
    for (const [name, graph] of [['rel', 'graphs/blip2-t5.blip'], ['abs', join(process.cwd(), 'graphs', 'blip2-t5.blip')]]) {
      const r = await cli(['compile', graph, '--weights', weights, '--out', join(root, name)]);
      assert.equal(r.code, 0, r.err);
    }
    for (const f of ['encode.onnx', 'decoder.onnx', 'weights.bin']) assert.ok(readFileSync(join(root, 'rel', f)).equals(readFileSync(join(root, 'abs', f))), f);
    // the LLM node's ops name the line of its override, relative to graphs/
    const decoder = readFileSync(join(root, 'rel', 'decoder.onnx')).toString('latin1');
    assert.match(decoder, /blip2-t5\.blip:6:17/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
