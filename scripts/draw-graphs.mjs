#!/usr/bin/env node
// Writes the pictures in docs/graphs/ (one per shipped family, and the demo model) with the built
// `blip graph --format svg` code. Run after changing a graph or src/draw/: node scripts/draw-graphs.mjs
// (test/unit/draw/pictures.test.ts fails while a picture is out of date; --check only compares).
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const PICTURES = [
  // [picture, graph, --weights]: the pinned graph of a published checkpoint where there is one (its sizes are known)
  ['blip-caption', 'graphs/pinned/blip-image-captioning-base.blip'],
  ['blip-vqa', 'graphs/pinned/blip-vqa-base.blip'],
  ['blip-itm', 'graphs/pinned/blip-itm-base-coco.blip'],
  ['blip2-opt', 'graphs/pinned/blip2-opt-2.7b.blip'],
  ['blip2-t5', 'graphs/pinned/blip2-flan-t5-xl.blip'],
  ['blip2-itm', 'graphs/blip2-itm.blip'],
  ['instructblip-t5', 'graphs/pinned/instructblip-flan-t5-xl.blip'],
  ['instructblip-vicuna', 'graphs/pinned/instructblip-vicuna-7b.blip'],
  ['demo', 'graphs/blip2-opt.blip', 'demo/model'],
];

const dist = join(ROOT, 'dist', 'src', 'index.js');
if (!existsSync(dist)) {
  console.error("not built: run 'npm run build' first");
  process.exit(1);
}
const { main } = await import(join(ROOT, 'dist', 'src', 'cli', 'main.js'));
const check = process.argv.includes('--check');
const out = join(ROOT, 'docs', 'graphs');
mkdirSync(out, { recursive: true });
let stale = 0;
const write = process.stdout.write.bind(process.stdout);
for (const [name, graph, weights] of PICTURES) {
  let svg = '';
  process.stdout.write = (s) => ((svg += s), true);
  const code = await main(['graph', join(ROOT, graph), '--format', 'svg', ...(weights ? ['--weights', join(ROOT, weights)] : [])]);
  process.stdout.write = write;
  if (code !== 0) throw new Error(`blip graph ${graph} failed (exit ${code})`);
  const file = join(out, `${name}.svg`);
  const same = existsSync(file) && readFileSync(file, 'utf8') === svg;
  if (check) {
    if (!same) {
      stale++;
      console.log(`out of date: docs/graphs/${name}.svg (${graph})`);
    }
  } else if (!same) {
    writeFileSync(file, svg);
    console.log(`wrote docs/graphs/${name}.svg  <- ${graph}${weights ? ` --weights ${weights}` : ''}`);
  }
}
if (check && stale) {
  console.log("run 'node scripts/draw-graphs.mjs' to redraw them");
  process.exit(1);
}
