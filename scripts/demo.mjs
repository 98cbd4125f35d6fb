#!/usr/bin/env node
// `npm run demo`: the whole path on the embedded demo model, offline.
//   1. compile graphs/blip2-opt.blip + demo/model (a tiny BLIP-2 OPT trained on generated scenes,
//      see demo/README.md) to ONNX in .blip-cache/demo/model (skipped when up to date);
//   2. load it with onnxruntime-node;
//   3. caption every demo/images/*.png and compare with the ground truth in captions.json;
//   4. answer a question about one picture.
// Options: --device cpu|cuda|tensorrt|webgpu|auto, --threads N, --force (recompile).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, GRAPH, WEIGHTS, bytes, ensureDemoModel, library, rel } from './demo-model.mjs';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
if (args.includes('--help') || args.includes('-h')) {
  console.log(`Usage: npm run demo [-- --device cpu|cuda|tensorrt|webgpu|auto] [--threads N] [--force]

Compiles the bundled demo model (demo/model) with graphs/blip2-opt.blip into .blip-cache/demo/model,
captions demo/images/*.png and answers a question about one of them.

Examples:
  npm run demo
  npm run demo -- --threads 1
  npm run demo -- --device cuda --force`);
  process.exit(0);
}
const device = opt('device') ?? 'cpu';
const threads = opt('threads') === undefined ? undefined : Number(opt('threads'));
const MAX_NEW_TOKENS = 24; // as demo/eval.json was measured (demo/README.md)
const ms = (x) => `${x.toFixed(0)} ms`;
process.stdout.on('error', (e) => process.exit(e.code === 'EPIPE' ? 0 : 1));

const { load } = await library();
const imagesDir = join(ROOT, 'demo', 'images');
const truth = JSON.parse(readFileSync(join(imagesDir, 'captions.json'), 'utf8'));
const files = readdirSync(imagesDir).filter((f) => f.endsWith('.png')).sort();

console.log('blip-graph demo: a tiny BLIP-2 (ViT → Q-Former → OPT, 1.9 M parameters) trained on generated');
console.log('scenes of coloured shapes; it knows nothing else (demo/README.md).\n');

// 1. Compile.
// A user error (a device that cannot start, a broken model folder) is one line, as `blip` prints it.
async function orExit(work) {
  try {
    return await work;
  } catch (e) {
    if (!/^BLIP\d{4}$/.test(e?.code ?? '')) throw e;
    console.error(`error ${e.code}: ${e.message}`);
    process.exit(1);
  }
}

const c = await orExit(ensureDemoModel({ force: args.includes('--force') }));
if (c.compiled) {
  const r = c.result;
  console.log(`compile  ${rel(GRAPH)} + ${rel(WEIGHTS)} -> ${rel(c.out)}  (${c.seconds.toFixed(1)} s)`);
  console.log(`         ${r.graphs.map((g) => `${g.file} ${g.nodes} nodes`).join(', ')}, weights.bin ${bytes(r.weightsBytes)} (${(r.parameters / 1e6).toFixed(2)} M parameters)`);
} else {
  console.log(`compile  up to date: ${rel(c.out)} (compiled ${c.when ?? 'earlier'}; graph, weights and compiler unchanged; --force recompiles)`);
}

// 2. Load.
let t = performance.now();
const model = await orExit(load(c.out, { device, threads }));
console.log(`load     ${ms(performance.now() - t)}, on ${[...new Set(Object.values(model.providers))].join(', ')}\n`);

// 3. Captions, one image at a time (per-image timings).
console.log(`captions (greedy, up to ${MAX_NEW_TOKENS} new tokens)`);
let right = 0;
const stages = { preprocess: 0, encode: 0, prefill: 0, decode: 0, total: 0 };
const totals = [];
for (const f of files) {
  const [r] = await model.generate([join(imagesDir, f)], { maxNewTokens: MAX_NEW_TOKENS });
  const expected = truth.find((x) => x.file === f)?.caption;
  const ok = r.text === expected;
  if (ok) right++;
  for (const k of Object.keys(stages)) stages[k] += r.timingsMs[k];
  totals.push(r.timingsMs.total);
  console.log(`  ${f} ${ms(r.timingsMs.total).padStart(7)}  ${ok ? '✓' : '✗'} ${r.text}`);
  if (!ok && expected !== undefined) console.log(`${' '.repeat(f.length + 14)}truth: ${expected}`);
}
console.log(`  ${right}/${files.length} exactly right (ground truth: demo/images/captions.json)`);
console.log(`  time in ms, all ${files.length}: ${['preprocess', 'encode', 'prefill', 'decode'].map((k) => `${k} ${stages[k].toFixed(0)}`).join(', ')}; total ${stages.total.toFixed(0)}\n`);

// 4. A question about one picture.
const scene = truth.find((x) => x.file === 'scene-1000000009.png') ?? truth[0];
const questions = scene.questions.filter((q) => q.question.startsWith('how many'));
console.log(`questions about ${scene.file} ("${scene.caption}")`);
for (const q of questions.slice(0, 2)) {
  t = performance.now();
  const [r] = await model.generate([join(imagesDir, scene.file)], { prompt: q.prompt, maxNewTokens: MAX_NEW_TOKENS });
  console.log(`  ${q.prompt} ${r.text}   ${r.text === q.answer ? '✓' : `✗ (truth: ${q.answer})`}  ${ms(r.timingsMs.total)}`);
}
await model.close();

const sorted = [...totals].sort((a, b) => a - b);
console.log(`\ncaption latency per image: median ${ms(sorted[Math.floor(sorted.length / 2)])} (the first one includes warm-up)`);
console.log(`compiled model: ${c.out}`);
console.log(`  manifest.json, encode.onnx, decoder.onnx, weights.bin, tokenizer/ (docs/architecture.md)`);
console.log(`next: bin/blip run ${rel(c.out)} --image demo/images/${scene.file} --prompt "Question: what colour is the square? Answer:"`);
console.log('      a real checkpoint: README.md, "The real path"');
