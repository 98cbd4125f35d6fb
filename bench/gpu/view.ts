// A bench view of a random-weight BLIP-2 checkpoint, as bench/run.ts lays one out: the weights
// linked, config.json with the image token set to the fixture tokenizer's <image>, and the fixture's
// tokenizer and processor files (image size and query count set to the layout's), so blip-graph and
// transformers tokenize the prompt identically. Used by bench/gpu/run.sh.
//
//   node dist/bench/gpu/view.js --ckpt .bench/gpu/ckpt --view .bench/gpu/view
//        [--tokenizer-from test/fixtures/blip2-opt-a/checkpoint] [--image-token-index 476]
//        [--image-size 224] [--queries 32]
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

export interface ViewOptions {
  ckpt: string;
  view: string;
  tokenizerFrom: string;
  imageTokenIndex: number;
  imageSize: number;
  queries: number;
}

export function makeView(o: ViewOptions): void {
  const src = resolve(o.ckpt);
  const view = resolve(o.view);
  if (!existsSync(join(src, 'config.json'))) throw new Error(`${o.ckpt} has no config.json`);
  rmSync(view, { recursive: true, force: true });
  mkdirSync(view, { recursive: true });
  for (const f of readdirSync(src)) {
    if (f.endsWith('.safetensors') || f === 'model.safetensors.index.json' || f === 'generation_config.json') symlinkSync(relative(view, join(src, f)), join(view, f));
  }
  // Textual edit (transformers' dataclasses reject 0 for a float 0.0 if the JSON is rewritten).
  const cfg = readFileSync(join(src, 'config.json'), 'utf8');
  const re = /("image_token_index"\s*:\s*)-?\d+/;
  if (!re.test(cfg)) throw new Error(`${o.ckpt}/config.json has no integer "image_token_index"`);
  writeFileSync(join(view, 'config.json'), cfg.replace(re, `$1${o.imageTokenIndex}`));
  const from = resolve(o.tokenizerFrom);
  for (const f of readdirSync(from)) {
    if (f === 'processor_config.json') {
      const p = JSON.parse(readFileSync(join(from, f), 'utf8'));
      p.image_processor.size = { height: o.imageSize, width: o.imageSize };
      p.num_query_tokens = o.queries;
      writeFileSync(join(view, f), JSON.stringify(p, null, 2));
    } else if (f.startsWith('tokenizer') || f === 'special_tokens_map.json') copyFileSync(join(from, f), join(view, f));
    else if (f === 'qformer_tokenizer') cpSync(join(from, f), join(view, f), { recursive: true });
  }
}

function main(argv: string[]): void {
  const a: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 2) a[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!a.ckpt || !a.view) throw new Error('usage: view.js --ckpt DIR --view DIR [--tokenizer-from DIR] [--image-token-index N] [--image-size N] [--queries N]');
  makeView({
    ckpt: a.ckpt,
    view: a.view,
    tokenizerFrom: a['tokenizer-from'] ?? 'test/fixtures/blip2-opt-a/checkpoint',
    imageTokenIndex: Number(a['image-token-index'] ?? 476),
    imageSize: Number(a['image-size'] ?? 224),
    queries: Number(a.queries ?? 32),
  });
  process.stdout.write(`bench view ${a.view} of ${a.ckpt}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) main(process.argv.slice(2));
