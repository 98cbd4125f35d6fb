// `blip run`: a compiled model on images from the command line — captions, answers and
// instructions stream to stdout; ITM models score every image against every --text.
import { existsSync, readFileSync } from 'node:fs';
import { isSystemError, systemErrorMeaning } from '../../filesystem.js';
import type { Command } from '../Command.js';
import { UsageError } from '../Command.js';
import { unknownOption } from '../options.js';
import { modelPhrase, readManifest, type Manifest } from '../../artifact/manifest.js';
import { load, type BlipModel, type GenerateOptions, type GenerateResult, type GeneratedSequence, type DecodedImage } from '../../../runtime/model.js';
import { noPromptMessage, promptStyle } from '../../../runtime/tasks/generate.js';
import { withOptionNames } from '../../../runtime/tasks/arguments.js';
import { checkImageSize, declaredImageSize, toRgbImage, type ImageSize } from '../../../runtime/tasks/images.js';
import { preprocessFromManifest, resizeForModel, type ImageBackend, type PreprocessConfig } from '../../../runtime/preprocess/index.js';
import { expandImages, type ImageEntry } from '../imageList.js';
import { BlipRuntimeError, ImageDecodeError } from '../../../runtime/errors.js';
import { checkDeviceOption, checkThreadsOption } from '../deviceOption.js';
import { checkImageBackendOption } from '../imageBackendOption.js';
import { MAX_ROWS_PER_PROMPT, MAX_TOP_LOGPROBS } from '../../../runtime/generation/generate.js';
import { MAX_STOP_LENGTH, MAX_STOP_STRINGS } from '../../../runtime/generation/stopStrings.js';
import { pyLstrip, pyRstrip } from '../../../runtime/generation/pythonSpace.js';

type Kind = 'flag' | 'int' | 'float' | 'string' | 'list';
const OPTIONS: Record<string, Kind> = {
  image: 'list',
  prompt: 'string',
  text: 'list',
  'text-file': 'list',
  'max-new-tokens': 'int',
  'max-length': 'int',
  'min-new-tokens': 'int',
  'min-length': 'int',
  beams: 'int',
  'length-penalty': 'float',
  'early-stopping': 'string',
  'num-return-sequences': 'int',
  'repetition-penalty': 'float',
  'no-repeat-ngram': 'int',
  sample: 'flag',
  'no-sample': 'flag',
  'top-p': 'float',
  'top-k': 'int',
  temperature: 'float',
  seed: 'int',
  stop: 'list',
  logprobs: 'int',
  'batch-size': 'int',
  device: 'string',
  threads: 'int',
  'image-backend': 'string',
  json: 'flag',
};

interface Args {
  dir: string;
  images: string[];
  texts: string[];
  stops: string[];
  prompt?: string;
  /** --early-stopping: transformers' early_stopping. */
  earlyStopping?: boolean | 'never';
  flags: Set<string>;
  num: Record<string, number>;
  device?: string;
  /** --image-backend: load()'s imageBackend. */
  imageBackend?: ImageBackend;
}

/**
 * The texts of a --text-file: one a line (UTF-8; CR LF or LF; blank lines skipped). Many texts
 * belong in a file rather than in --text flags: besides the system's limit on a command line,
 * onnxruntime's start-up recurses deeper the longer the process's command line is, and ~56 KB of
 * arguments (700 captions) overflowed the stack (a segmentation fault, not an error).
 */
function textsOfFile(path: string): string[] {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new UsageError(`--text-file ${path}: cannot read it: ${isSystemError(e) ? systemErrorMeaning(e) : String(e)}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`--text-file ${path}: expected UTF-8 text, one text a line`);
  }
  const texts = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  if (texts.length === 0) throw new UsageError(`--text-file ${path} holds no texts: expected one text a line`);
  return texts;
}

export function parseRunArgs(argv: string[]): Args {
  const positional: string[] = [];
  const a: Args = { dir: '', images: [], texts: [], stops: [], flags: new Set(), num: {} };
  const seen = new Set<string>();
  // the words right after an --image value: a glob the shell expanded (--image many/*.png)
  let afterImage = false;
  let followImage = 0;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--') || arg === '--') {
      if (arg.startsWith('-') && arg !== '-') throw unknownOption(arg, Object.keys(OPTIONS));
      positional.push(arg);
      if (afterImage) followImage++;
      continue;
    }
    afterImage = false;
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const kind = OPTIONS[name];
    if (!kind) throw unknownOption(arg, Object.keys(OPTIONS));
    if (kind === 'flag') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      a.flags.add(name);
      continue;
    }
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || (value.startsWith('--') && value.length > 2)) throw new UsageError(`--${name} expects a value`);
      i++;
    }
    if (kind !== 'list' && seen.has(name)) throw new UsageError(`--${name} is given twice`);
    seen.add(name);
    afterImage = name === 'image';
    if (name === 'text-file') a.texts.push(...textsOfFile(value));
    else if (kind === 'list') (name === 'image' ? a.images : name === 'stop' ? a.stops : a.texts).push(value);
    else if (kind === 'string') {
      if (name === 'prompt') a.prompt = value;
      else if (name === 'early-stopping') a.earlyStopping = earlyStoppingValue(value);
      else if (name === 'image-backend') a.imageBackend = checkImageBackendOption(value);
      else a.device = value;
    } else if (kind === 'int') {
      if (!/^-?\d+$/.test(value.trim())) throw new UsageError(`--${name} expects an integer, found '${value}'`);
      if (!Number.isSafeInteger(Number(value))) throw new UsageError(`--${name} is ${value.trim()}, beyond the integers a double holds exactly (2^53)`);
      a.num[name] = Number(value);
    } else {
      const v = Number(value);
      if (value.trim() === '' || !Number.isFinite(v)) throw new UsageError(`--${name} expects a number, found '${value}'`);
      a.num[name] = v;
    }
  }
  if (positional.length === 0) throw new UsageError('expected OUTDIR, the compiled model directory');
  const extra = positional.length - 1;
  if (extra > 0 && followImage >= extra) throw new UsageError(`--image takes one path; ${extra} more ${extra === 1 ? 'path follows' : 'paths follow'} it (a shell-expanded glob?): pass the folder, or repeat --image`);
  if (positional.length > 1) throw new UsageError(`expected one OUTDIR, found ${positional.length} (${positional.join(', ')}); give images with --image`);
  a.dir = positional[0];
  if (a.images.length === 0) throw new UsageError('--image PATH is required (a file or a folder of images; repeat it for more)');
  for (const img of a.images) {
    if (img.trim() === '') throw new UsageError('--image is empty: expected the path of an image file or folder');
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(img) && !existsSync(img)) throw new UsageError(`--image ${img}: expected a local file or folder (blip run downloads nothing; save the image first)`);
    if (img === '-' && !existsSync(img)) throw new UsageError('--image -: reading an image from stdin is not supported; save it to a file and give its path');
  }
  // the library's rules, counted as it counts (characters; a repeated string once)
  if (a.stops.some((s) => s === '')) throw new UsageError('--stop is empty: a stop string needs at least one character');
  const long = a.stops.find((s) => [...s].length > MAX_STOP_LENGTH);
  if (long !== undefined) throw new UsageError(`--stop is ${[...long].length} characters; a stop string has at most ${MAX_STOP_LENGTH}`);
  const distinct = new Set(a.stops).size;
  if (distinct > MAX_STOP_STRINGS) throw new UsageError(`--stop gives ${distinct} different strings; at most ${MAX_STOP_STRINGS}`);
  const atLeast = (name: string, min: number) => {
    const v = a.num[name];
    if (v !== undefined && v < min) throw new UsageError(`--${name} must be at least ${min}, found ${v}`);
  };
  atLeast('max-new-tokens', 1);
  atLeast('max-length', 1);
  atLeast('min-new-tokens', 0);
  atLeast('min-length', 0);
  atLeast('beams', 1);
  atLeast('num-return-sequences', 1);
  // (transformers lets max_new_tokens / min_new_tokens win over the whole-sequence bound, with a warning)
  if (a.num['max-length'] !== undefined && a.num['max-new-tokens'] !== undefined) throw new UsageError('--max-length and --max-new-tokens both bound the length: give one (--max-length counts the whole sequence, --max-new-tokens the new tokens)');
  if (a.num['min-length'] !== undefined && a.num['min-new-tokens'] !== undefined) throw new UsageError('--min-length and --min-new-tokens both bound the length: give one (--min-length counts the whole sequence, --min-new-tokens the new tokens)');
  if (a.flags.has('sample') && a.flags.has('no-sample')) throw new UsageError('--sample and --no-sample contradict each other: give one');
  atLeast('no-repeat-ngram', 0);
  atLeast('top-k', 0);
  atLeast('batch-size', 1);
  atLeast('logprobs', 0);
  if (a.num.logprobs !== undefined && a.num.logprobs > MAX_TOP_LOGPROBS) throw new UsageError(`--logprobs lists at most ${MAX_TOP_LOGPROBS} alternatives, found ${a.num.logprobs}`);
  if (a.num.logprobs !== undefined && !a.flags.has('json')) throw new UsageError('--logprobs needs --json (they are printed in each JSON line)');
  if (a.num.logprobs !== undefined && (a.num.beams ?? 1) > 1) throw new UsageError('--logprobs is for greedy decoding and --sample, not --beams');
  atLeast('threads', 1);
  checkThreadsOption(a.num.threads);
  for (const n of ['beams', 'num-return-sequences']) {
    if (a.num[n] !== undefined && a.num[n] > MAX_ROWS_PER_PROMPT) throw new UsageError(`--${n} is ${a.num[n]}, more than the ${MAX_ROWS_PER_PROMPT} this runtime takes`);
  }
  const tp = a.num['top-p'];
  if (tp !== undefined && !(tp > 0 && tp <= 1)) throw new UsageError(`--top-p must be in (0, 1], found ${tp}`);
  for (const n of ['temperature', 'repetition-penalty']) {
    if (a.num[n] !== undefined && !(a.num[n] > 0)) throw new UsageError(`--${n} must be greater than 0, found ${a.num[n]}`);
  }
  checkDeviceOption(a.device);
  return a;
}

/** --early-stopping's value: transformers' early_stopping (a bool, or "never"). */
function earlyStoppingValue(value: string): boolean | 'never' {
  if (value === 'true' || value === 'false') return value === 'true';
  if (value === 'never') return value;
  throw new UsageError(`--early-stopping expects true, false or never, found '${value}'`);
}

/** Flags that only make sense for one kind of model. */
function checkFitsTask(a: Args, m: Manifest): void {
  const generating = !!m.graphs.decoder;
  const model = `${a.dir} is ${modelPhrase(m)}`;
  if (generating) {
    if (a.texts.length) throw new UsageError(`--text is for image-text matching, but ${model}; use --prompt for ${promptStyle(m).what}`);
    const st = promptStyle(m);
    if (st.none && a.prompt !== undefined) throw new UsageError(`--prompt is not taken: ${noPromptMessage(m)}`);
    if (st.required && a.prompt === undefined && m.generation?.prompt === undefined) throw new UsageError(`--prompt is required: ${model} and needs ${st.what}`);
    if (st.required && a.prompt !== undefined && a.prompt.trim() === '') throw new UsageError(`--prompt is empty: ${model} and needs ${st.what}`);
    // (a model whose generation config samples takes them without --sample, as generate() does)
    const s = ['top-p', 'top-k', 'temperature', 'seed'].find((n) => a.num[n] !== undefined);
    if (s && a.flags.has('no-sample')) throw new UsageError(`--${s} applies to sampling, which --no-sample turns off`);
    if (s && !a.flags.has('sample') && m.generation?.do_sample !== true) throw new UsageError(`--${s} applies to sampling; add --sample`);
    const beams = a.num.beams ?? m.generation?.num_beams ?? 1;
    const byDefault = a.num.beams === undefined ? ` ${a.dir} searches with by default` : '';
    if (a.num.logprobs !== undefined && beams > 1) throw new UsageError(`--logprobs is for greedy decoding and --sample, not beam search, and ${a.dir} decodes with ${beams} beams by default: add --beams 1`);
    const sampling = a.flags.has('sample') || (!a.flags.has('no-sample') && m.generation?.do_sample === true);
    const n = a.num['num-return-sequences'];
    if (n !== undefined && n > 1 && beams === 1 && !sampling) throw new UsageError(`--num-return-sequences ${n} needs --beams ${n} (or more) or --sample: greedy decoding returns one sequence`);
    if (n !== undefined && beams > 1 && n > beams) throw new UsageError(`--num-return-sequences ${n} is more than the ${beams} beams${byDefault}: beam search returns at most one sequence a beam; add --beams ${n}`);
  } else {
    const gen =
      ['max-new-tokens', 'max-length', 'min-new-tokens', 'min-length', 'beams', 'length-penalty', 'num-return-sequences', 'repetition-penalty', 'no-repeat-ngram', 'top-p', 'top-k', 'temperature', 'seed', 'logprobs'].find((n) => a.num[n] !== undefined) ??
      (a.earlyStopping !== undefined ? 'early-stopping' : ['sample', 'no-sample'].find((f) => a.flags.has(f)) ?? (a.stops.length ? 'stop' : undefined));
    if (a.prompt !== undefined) throw new UsageError(`--prompt is for generating models, but ${model} (image-text matching); give the texts to score with --text`);
    if (gen) throw new UsageError(`--${gen} is a generation setting, but ${model} (image-text matching)`);
    if (a.texts.length === 0) throw new UsageError(`--text (or --text-file) is required: ${model} that scores images against texts`);
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;

/**
 * One image as the model takes it: decoded and resized at once, so that a batch holds no full-size
 * images (the library's resizing of an image of the model's size is a copy: the same pixels). Where
 * the model does not resize, an image of another size is BLIP5011 naming it.
 */
export async function readForModel(file: string, preprocess: PreprocessConfig, fixedSize?: ImageSize): Promise<DecodedImage> {
  const pixels = resizeForModel(await toRgbImage(file, 0), preprocess);
  if (fixedSize) checkImageSize(pixels, fixedSize, file);
  return pixels;
}

/** Consecutive entries holding up to `bs` images to run each (with the entries in error between them). */
export function chunks(entries: ImageEntry[], bs: number): ImageEntry[][] {
  const out: ImageEntry[][] = [];
  let cur: ImageEntry[] = [];
  let n = 0;
  for (const e of entries) {
    if (!e.error && n === bs) {
      out.push(cur);
      cur = [];
      n = 0;
    }
    cur.push(e);
    if (!e.error) n++;
  }
  if (cur.length) out.push(cur);
  return out;
}

const sizeOf = (bytes: number) => (bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.max(1, Math.round(bytes / 1e6))} MB`);

/** One line on stderr (a terminal only) until the first output clears it. */
export function statusLine(on: boolean, write: (s: string) => void = (s) => process.stderr.write(s)) {
  let shown = false;
  return {
    show(text: string) {
      if (!on) return;
      write(`\r${text}\x1b[K`);
      shown = true;
    },
    clear() {
      if (shown) write('\r\x1b[K');
      shown = false;
    },
  };
}

function progress(total: number) {
  const on = process.stderr.isTTY === true && total > 1;
  let last = 0;
  return {
    update(done: number) {
      if (!on) return;
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const w = 30;
      const f = done / total;
      process.stderr.write(`\r[${'#'.repeat(Math.round(f * w))}${'.'.repeat(w - Math.round(f * w))}] ${done}/${total} images\x1b[K`);
    },
    clear() {
      if (on) process.stderr.write('\r\x1b[K');
    },
  };
}

const command: Command = {
  name: 'run',
  summary: 'caption, answer or score images with a compiled model',
  help: `Usage: blip run OUTDIR --image PATH [--image PATH ...] [options]

Runs the compiled model in OUTDIR (written by 'blip compile') on images. PATH is an image file
(PNG, JPEG, WebP, GIF, TIFF, AVIF) or a folder, whose images are all run (sorted by name, not
recursive; found by extension: .png .apng .jpg .jpeg .jpe .jfif .webp .gif .tif .tiff .avif,
and a note on stderr names the other files skipped, BMP among them). Globs and stdin are not
read: pass a folder.

Captioning, VQA and instruction models print the generated text: streamed word by word for a
single image, 'IMAGE: TEXT' lines for several, or with --json one line per image:
  {"image", "text", "token_ids", "timings_ms": {preprocess, encode, prefill, decode, load?, total}}
  ("score": beam search's length-penalised score, transformers' sequences_scores; "stop": the
   --stop string that ended the text, when one did; "logprobs" with --logprobs:
   [{"id", "token", "bytes", "logprob", "top": [{"id", "token", "bytes", "logprob"}, ...]}, ...];
   "sequences" with --num-return-sequences N > 1: [{"text", "token_ids", "score"?, "stop"?,
   "logprobs"?}, ...] (beams best first), the first also the line's text and token_ids; without
   --json each sequence is a line, 'IMAGE: TEXT' for several images)
(the timings are the batch's: preprocess is reading, decoding and resizing its images. When all
images fit in one --batch-size batch and the model runs on the CPU, the batch opens the graphs
itself, releasing the image encoder before the decoder is loaded, so the peak memory is the larger
of the two, not the sum; load is then the time that took. Otherwise the graphs are opened once
before the first batch, and there is no load.)
ITM / retrieval models score every image against every --text, one JSON line per pair:
  {"image", "text", "itm", "itc"}   itm = P(match) from the ITM head, itc = cosine similarity
An image that cannot be read — a missing file, a dangling link, a folder that cannot be listed or
holds no images, a file that does not decode (a BMP named with --image: not read) — gets an error line in its place
({"image", "error", "code"} with --json, else on stderr) and the others still run; the exit code
is then 1. On a terminal, stderr shows a loading line until the first output (a large model takes
a while to read) and a progress bar for several images.

Options:
  --image PATH              an image file or folder (one path each; repeat for more; required)
  --prompt TEXT             BLIP captioning: the caption's start ("a picture of"); BLIP VQA: the
                            question (required); BLIP-2: the language-model prompt
                            ("Question: what is this? Answer:"); InstructBLIP: the instruction (required,
                            unless the graph's generation block gives one); a graph that reads no
                            text input takes none
  --text TEXT               ITM models: a text to score against each image (repeat for more)
  --text-file PATH          ITM models: texts to score, one a line (UTF-8; blank lines skipped);
                            for many texts, which a command line cannot hold
  --max-new-tokens N        generated tokens at most (default: the manifest's)
  --max-length N            instead: the whole sequence at most, as transformers' max_length
                            (the decoder's start tokens, image placeholders and prompt count)
  --min-new-tokens N        generated tokens at least before EOS may end the text
  --min-length N            instead: the whole sequence at least (transformers' min_length)
  --beams N                 beam search with N beams (1 = greedy)
  --length-penalty F        beam search length penalty (exponent of the length; default 1)
  --early-stopping V        beam search: true (stop when --beams texts have ended), false (when a
                            better text is unlikely; transformers' default) or never (when none can be)
  --num-return-sequences N  texts per image: the N best beams (N <= --beams) or N samples
  --repetition-penalty F    penalise tokens already present (> 1 discourages them)
  --no-repeat-ngram N       never repeat an n-gram of this size
  --no-sample               do not sample where the model's generation config does (do_sample
                            false): greedy decoding, or beam search with --beams
  --sample                  sample instead of searching (a model whose generation config samples
                            does so without it); with:
    --top-p F               nucleus sampling: keep tokens up to probability F (0, 1]
    --top-k N               keep the N most likely tokens (default 50; 0 = all)
    --temperature F         divide the logits by F (default 1)
    --seed N                seed of the sampler (default 0): the same seed gives the same text
  --logprobs N              with --json: each token's log-probability under the model and the N
                            most likely tokens of its step (0-20; greedy or --sample, not --beams)
  --stop TEXT               end a text where TEXT first appears, and print what came before it
                            (repeat for up to 4; a newline: --stop $'\\n' in bash; one that
                            starts with --: --stop=TEXT)
  --batch-size N            images per model call (default 8; ITM: image-text pairs)
  --device D                cpu (default), cuda, tensorrt, webgpu or auto
  --threads N               CPU threads per session (default: one per physical core)
  --image-backend B         resize and normalise as transformers' pil backend (default:
                            BlipImageProcessorPil) or torchvision backend (BlipImageProcessor, what
                            AutoProcessor.from_pretrained gives where torchvision is installed)
  --json                    one JSON object per line (generating models)

Examples:
  blip run ./out/caption --image cat.jpg
  blip run ./out/caption --image cat.jpg --prompt "a picture of" --beams 3 --max-new-tokens 30
  blip run ./out/vqa --image bus.png --prompt "what color is the bus?"
  blip run ./out/blip2-opt --image photos/ --prompt "Question: what is this? Answer:" --json
  blip run ./out/instructblip --image cat.jpg --prompt "Describe the image in detail." --device cuda
  blip run ./out/instructblip --image cat.jpg --prompt "What is unusual about this image?" \\
      --beams 5 --max-length 256 --min-length 1 --repetition-penalty 1.5 --length-penalty 1
  blip run ./out/caption --image cat.jpg --beams 5 --num-return-sequences 3 --json
  blip run ./out/caption --image photos/ --sample --top-p 0.9 --seed 7 --json > captions.jsonl
  blip run ./out/itm --image cat.jpg --text "a cat on a sofa" --text "two dogs"`,

  async run(argv) {
    const a = parseRunArgs(argv);
    const manifest = readManifest(a.dir);
    checkFitsTask(a, manifest);
    const json = a.flags.has('json');
    const bs = a.num['batch-size'] ?? 8;
    // a missing file, a dangling link, a folder that cannot be listed: an error line of its own, in order
    const { entries, notes } = expandImages(a.images);
    for (const n of notes) process.stderr.write(`${n}\n`);
    const runnable = entries.filter((e) => !e.error).length;
    const printError = (file: string, err: { code: string; message: string }) => {
      if (json) out(JSON.stringify({ image: file, error: err.message, code: err.code }) + '\n');
      else {
        status.clear();
        process.stderr.write(`error ${err.code}: ${err.message}\n`);
      }
    };
    const status = statusLine(process.stderr.isTTY === true);
    const out = (s: string) => (status.clear(), process.stdout.write(s));
    if (runnable === 0) {
      // nothing to run: the model is not loaded
      for (const e of entries) printError(e.file, e.error!);
      return 1;
    }
    // One batch: the image encoder is released before the decoder loads (runtime/stagedSession.ts),
    // so the command's peak memory is the larger of the two, not their sum, and graphs run only a
    // few times read their weights in place instead of copying them first (runtime/model.ts).
    // A large model still takes a while (OPT-2.7b: ~30 s, reading 15 GB): say so on a terminal.
    status.show(`loading ${a.dir} (${sizeOf(manifest.weights.bytes)} of weights) and running the first ${runnable > 1 ? 'batch' : 'image'}...`);
    const model = await load(a.dir, { device: a.device, threads: a.num.threads, staged: runnable <= bs, imageBackend: a.imageBackend });
    // (not for a quantized build, whose products are MatMulNBits over its packed weights)
    if (manifest.dtype === 'float16' && !manifest.quantize && Object.values(model.providers).includes('cpu')) {
      status.clear();
      // Measured on BLIP-2 OPT-2.7b (docs/performance.md, run K): 1.08x the float32 model's memory, 10 % slower.
      process.stderr.write(`warning: ${a.dir} is a float16 model; the CPU provider runs its matrix products in float32 with converted copies of the weights (more memory than the float32 model, and no faster); for the CPU compile with --dtype fp32, or --quantize int8 for smaller weights\n`);
    }
    let failed = 0;
    const bar = progress(entries.length);
    try {
      let done = 0;
      // a model that does not resize takes images of its encoder's size only
      const fixedSize = model.manifest.preprocess.do_resize ? undefined : declaredImageSize(model.manifest, model.kind === 'retrieval' ? 'retrieval' : 'encode');
      const preprocess = { ...preprocessFromManifest(model.manifest.preprocess), backend: a.imageBackend };
      for (const chunk of chunks(entries, bs)) {
        // decode each image on its own so that one bad file does not sink the batch
        // (by position in the chunk: the same file given twice is two rows, which need not agree),
        // and resize it for the model at once: a batch holds no full-size images
        const ok: Array<{ file: string; pixels: DecodedImage; at: number }> = [];
        const errors = new Map<number, { code: string; message: string }>();
        const t0 = performance.now();
        for (const [at, { file: f, error }] of chunk.entries()) {
          if (error) {
            errors.set(at, error);
            continue;
          }
          try {
            ok.push({ file: f, pixels: await readForModel(f, preprocess, fixedSize), at });
          } catch (e) {
            if (!(e instanceof ImageDecodeError) && !(e instanceof BlipRuntimeError && e.code === 'BLIP5011')) throw e;
            errors.set(at, e);
          }
        }
        const decodeMs = performance.now() - t0;
        const printed = new Map<number, string>();
        if (ok.length) {
          const got = model.kind === 'retrieval' ? await runItm(model, ok, a.texts, bs) : await runGenerate(model, ok, a, entries.length === 1 && runnable === 1 && !json, json, bs, decodeMs, out);
          got.forEach((text, i) => printed.set(ok[i]!.at, text));
        }
        bar.clear();
        // in input order: results on stdout, errors as records (--json) or on stderr
        for (const [at, { file: f }] of chunk.entries()) {
          const err = errors.get(at);
          if (!err) out(printed.get(at) ?? '');
          else {
            failed++;
            printError(f, err);
          }
        }
        done += chunk.length;
        bar.update(done);
      }
      bar.clear();
    } finally {
      status.clear();
      await model.close();
    }
    return failed ? 1 : 0;
  },
};
export default command;

/** The library's generate() options as this command's flags, for messages that reach it from the library (withOptionNames). */
const CLI_OPTION_NAMES: Record<string, string> = {
  maxNewTokens: '--max-new-tokens',
  maxLength: '--max-length',
  minNewTokens: '--min-new-tokens',
  minLength: '--min-length',
  numBeams: '--beams',
  lengthPenalty: '--length-penalty',
  earlyStopping: '--early-stopping',
  numReturnSequences: '--num-return-sequences',
  repetitionPenalty: '--repetition-penalty',
  noRepeatNgramSize: '--no-repeat-ngram',
  doSample: '--sample',
  'doSample: true': '--sample',
  topP: '--top-p',
  topK: '--top-k',
  topLogprobs: '--logprobs',
  batchSize: '--batch-size',
};

/** The text each image prints (streaming writes the text itself as it comes; only its newline is returned). */
async function runGenerate(model: BlipModel, ok: Array<{ file: string; pixels: DecodedImage }>, a: Args, plain: boolean, json: boolean, bs: number, decodeMs: number, out: (s: string) => void): Promise<string[]> {
  const n = a.num;
  // one image's one text streams; several sequences of it are printed a line each when done
  const stream = plain && (n['num-return-sequences'] ?? 1) === 1;
  const opts: GenerateOptions = {
    prompt: a.prompt,
    maxNewTokens: n['max-new-tokens'],
    maxLength: n['max-length'],
    minNewTokens: n['min-new-tokens'],
    minLength: n['min-length'],
    numBeams: n.beams,
    lengthPenalty: n['length-penalty'],
    earlyStopping: a.earlyStopping,
    numReturnSequences: n['num-return-sequences'],
    repetitionPenalty: n['repetition-penalty'],
    noRepeatNgramSize: n['no-repeat-ngram'],
    // left out: the model's generation config decides, as transformers' generate() does
    doSample: a.flags.has('sample') ? true : a.flags.has('no-sample') ? false : undefined,
    topP: n['top-p'],
    topK: n['top-k'],
    temperature: n.temperature,
    seed: n.seed,
    batchSize: bs,
  };
  if (a.stops.length) opts.stop = a.stops;
  if (n.logprobs !== undefined) {
    opts.logprobs = true;
    opts.topLogprobs = n.logprobs;
  }
  if (stream) {
    // Print what `text` will hold (trimmed): whitespace is held back until more text follows, so a
    // stop token that decodes to "\n" (BLIP-2 OPT's) adds no blank line.
    let held = '';
    let started = false;
    opts.onToken = (_row, text) => {
      if (!text) return;
      let s = held + text;
      if (!started) s = pyLstrip(s);
      const body = pyRstrip(s);
      held = s.slice(body.length);
      if (body) (started = true), out(body);
    };
  }
  const res = await model
    .generate(
      ok.map((o) => o.pixels),
      opts,
    )
    .catch((e: unknown) => {
      throw withOptionNames(e, CLI_OPTION_NAMES);
    });
  return res.map((r, i) => {
    const image = ok[i].file;
    if (json) return JSON.stringify({ image, ...sequenceRecord(r), ...(r.sequences ? { sequences: r.sequences.map(sequenceRecord) } : {}), timings_ms: timingsRecord(r.timingsMs, decodeMs) }) + '\n';
    if (stream) return '\n';
    // several sequences: one line each (the image's name on each when several images run)
    return (r.sequences ?? [r]).map((s) => (plain ? `${s.text}\n` : `${image}: ${s.text}\n`)).join('');
  });
}

/**
 * A sequence as --json prints it: the library's GeneratedSequence with token_ids for tokenIds, and
 * its beam search `score` (transformers' sequences_scores) where it has one.
 */
function sequenceRecord(s: GeneratedSequence): Record<string, unknown> {
  return { text: s.text, token_ids: s.tokenIds, ...(s.score !== undefined ? { score: s.score } : {}), ...(s.stop !== undefined ? { stop: s.stop } : {}), ...(s.logprobs ? { logprobs: s.logprobs } : {}) };
}

/**
 * The JSON record's timings_ms: the library's, with the time the command spent reading, decoding
 * and resizing the batch's images (before calling generate) counted in preprocess and total, as the
 * library counts it when it is given the files.
 */
export function timingsRecord(t: GenerateResult['timingsMs'], decodeMs: number): Record<string, number> {
  return { preprocess: round(t.preprocess + decodeMs), encode: round(t.encode), prefill: round(t.prefill), decode: round(t.decode), ...(t.load !== undefined ? { load: round(t.load) } : {}), total: round(t.total + decodeMs) };
}

/**
 * One itm() call for the chunk: each image paired with every text, at most `batchSize` pairs a model
 * call (an image's pairs side by side share its encoding within a call). --batch-size bounds the
 * memory: all of a chunk's pairs in one call took 9.7 GB for 13 images × 100 texts at BLIP-base
 * widths, one image's 100 pairs 2.3 GB; 8 pairs a call, 0.5 GB.
 */
export async function runItm(model: BlipModel, ok: Array<{ file: string; pixels: DecodedImage }>, texts: string[], batchSize: number): Promise<string[]> {
  const images = ok.flatMap((o) => texts.map(() => o.pixels));
  const pairs = ok.flatMap(() => texts);
  const r = await model.itm(images, pairs, { batchSize });
  return ok.map(({ file }, i) => texts.map((text, j) => JSON.stringify({ image: file, text, itm: r[i * texts.length + j].itm, itc: r[i * texts.length + j].itc }) + '\n').join(''));
}
