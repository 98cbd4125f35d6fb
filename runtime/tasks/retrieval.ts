// Image-text matching and contrastive scores over retrieval.onnx (docs/architecture.md): pair p is
// text row p with image row pair_image[p], so an image scored against several texts is encoded
// once (artifacts compiled before `pair_image`: row b of the image batch with row b of the text
// batch, the image repeated). Texts go in as the checkpoint's
// tokenizer gives them ([CLS] text [SEP], right-padded; BLIP-2 without its <image> placeholders,
// which Blip2ForImageTextRetrieval drops). Embeddings come from the same graph: the image side
// does not depend on the text and the text side not on the image, so the other input is a stand-in.
import * as ort from 'onnxruntime-node';
import type { Manifest } from '../../src/artifact/manifest.js';
import { BlipRuntimeError, GenerationConfigError, oneLine } from '../errors.js';
import type { DecoderSession } from '../generation/onnx.js';
import type { PreprocessConfig } from '../preprocess/config.js';
import type { HfTokenizer } from '../tokenizers/hf.js';
import { declaredImageSize, distinct, inOrder, prepareImages, type ImageInput } from './images.js';
import { checkImageList, checkSignal, checkTextList, optionsObject } from './arguments.js';
import { checkVocabulary } from './vocabulary.js';

export interface RetrievalContext {
  manifest: Manifest;
  preprocess: PreprocessConfig;
  tokenizer: HfTokenizer;
  retrieval: DecoderSession;
}

export interface ItmOptions {
  /** At most this many pairs per retrieval.onnx call (default 16); see `calls`. */
  batchSize?: number | undefined;
  /**
   * Cut each text to at most this many tokens, [CLS] and [SEP] included, as transformers'
   * tokenizer(text, truncation=True, max_length=N) does (BLIP's ITM model reads 35). Without it a
   * text longer than the model's positions is refused (BLIP5032).
   */
  maxTextTokens?: number | undefined;
  /**
   * Cancels the call, as generate()'s does: aborted before it, the call rejects at once; aborted
   * while it runs, it starts no further retrieval.onnx call (it looks before each batch's) and
   * rejects with the signal's reason.
   */
  signal?: AbortSignal | undefined;
}

export interface ItmResult {
  /** P(match) from the ITM head (softmax of itm_logits); NaN when the graph has no ITM output. */
  itm: number;
  /** ITC cosine similarity of the normalised embeddings (BLIP-2: max over queries); NaN without an ITC output. */
  itc: number;
}

/** An embedding: (E) for BLIP, (Q, E) per image for BLIP-2 (one per query); L2-normalised. */
export interface Embedding {
  data: Float32Array;
  dims: number[];
}

function i64(rows: number[][]): ort.Tensor {
  const s = rows[0]?.length ?? 0;
  const d = new BigInt64Array(rows.length * s);
  rows.forEach((r, i) => r.forEach((v, j) => (d[i * s + j] = BigInt(v))));
  return new ort.Tensor('int64', d, [rows.length, s]);
}

function textFeeds(ctx: RetrievalContext, texts: string[], maxTextTokens?: number): Record<string, ort.Tensor> {
  const tok = ctx.tokenizer;
  const enc = tok.encodeBatch(texts, { paddingSide: 'right', padTokenId: tok.padTokenId ?? ctx.manifest.text.pad_token_id, maxLength: maxTextTokens });
  // BLIP's text encoder or BLIP-2's Q-Former: the text must fit their learned positions.
  const lim = ctx.manifest.text.max_positions;
  const limit = lim?.text ?? lim?.qformer_text;
  const longest = enc.inputIds[0]?.length ?? 0;
  if (limit !== undefined && longest > limit) {
    const lengths = enc.attentionMask.map((r) => r.reduce((a, b) => a + b, 0));
    const i = lengths.findIndex((n) => n > limit);
    throw new BlipRuntimeError('BLIP5032', `text ${JSON.stringify(texts[i].length > 60 ? texts[i].slice(0, 57) + '...' : texts[i])} is ${lengths[i]} tokens; this model reads at most ${limit}: shorten it`);
  }
  const vocab = ctx.manifest.text.vocab_sizes;
  checkVocabulary(tok, enc.inputIds, enc.attentionMask, texts, vocab?.text ?? vocab?.qformer_text, vocab?.text !== undefined ? 'the text encoder' : 'the Q-Former');
  return { input_ids: i64(enc.inputIds), attention_mask: i64(enc.attentionMask) };
}

async function run(ctx: RetrievalContext, feeds: Record<string, ort.Tensor>, fetch: string[]): Promise<Record<string, ort.Tensor>> {
  const have = ctx.retrieval.outputNames;
  const want = fetch.filter((n) => have.includes(n));
  if (want.length === 0) throw new BlipRuntimeError('BLIP5044', `retrieval.onnx has none of the outputs ${fetch.join(', ')}`);
  try {
    const s = ctx.retrieval as unknown as { run(f: Record<string, ort.Tensor>, o: string[]): Promise<Record<string, ort.Tensor>> };
    return await s.run(feeds, want);
  } catch (e) {
    throw new BlipRuntimeError('BLIP5043', `retrieval.onnx failed (${oneLine(e)})`);
  }
}

/** Whether retrieval.onnx takes each image once and the pairs' image rows (src/lower/pairs.ts). */
const paired = (ctx: RetrievalContext): boolean => ctx.retrieval.inputNames.includes('pair_image');

const index = (rows: number[]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(rows, BigInt), [rows.length]);

function maxTextTokensOf(o: ItmOptions, tok: HfTokenizer): number | undefined {
  const n = o.maxTextTokens;
  // room for one token of the text besides the special ones: fewer would score an empty text
  const least = tok.specialTokenCount + 1;
  if (n !== undefined && (!Number.isInteger(n) || n < least)) throw new GenerationConfigError(`maxTextTokens must be an integer of at least ${least} (the ${least - 1} special tokens and one of the text), found ${JSON.stringify(n)}`);
  return n;
}

/** The call's signal, checked for JavaScript callers, after it has been looked at once (an abort before the call rejects it at once). */
function signalOf(o: ItmOptions): AbortSignal | undefined {
  const signal = o.signal;
  checkSignal(signal);
  signal?.throwIfAborted();
  return signal;
}

function batchSizeOf(o: ItmOptions, dflt: number): number {
  const bs = o.batchSize ?? dflt;
  if (!Number.isInteger(bs) || bs < 1) throw new GenerationConfigError(`batchSize must be an integer >= 1, found ${bs}`);
  return bs;
}

/** The lengths of the runs of consecutive pairs that share one image (the same string or object). */
function imageRuns(n: number, img: (i: number) => ImageInput): number[] {
  const runs: number[] = [];
  for (let i = 0; i < n; i++) {
    if (i > 0 && img(i) === img(i - 1)) runs[runs.length - 1]++;
    else runs.push(1);
  }
  return runs;
}

/**
 * The [start, end) pair ranges of the retrieval.onnx calls: at most `bs` pairs each, and a call
 * ends where a run of pairs ends unless the run does not fit in a call of its own. Where each image
 * is encoded once per call (pair_image), an image whose pairs number at most `bs` is then encoded
 * once in all (CapFilt's K + 1 texts per image), not once in each of two calls it straddled.
 */
export function calls(runs: number[], bs: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = 0;
  let end = 0;
  for (const len of runs) {
    if (end - start + len > bs && end > start) {
      out.push([start, end]);
      start = end;
    }
    end += len;
    // a run longer than a call: full calls of it alone, its remainder open for the next runs
    while (end - start > bs) {
      out.push([start, start + bs]);
      start += bs;
    }
  }
  if (end > start) out.push([start, end]);
  return out;
}

/**
 * Score image-text pairs: images[i] with texts[i]; a single image (or a single text) is paired
 * with every text (every image).
 */
export async function itmPairs(ctx: RetrievalContext, images: ImageInput[], texts: string[], opts: ItmOptions = {}): Promise<ItmResult[]> {
  checkImageList(images);
  checkTextList(texts);
  opts = optionsObject<ItmOptions>(opts, ['batchSize', 'maxTextTokens', 'signal']);
  const n = Math.max(images.length, texts.length);
  if (images.length !== n && images.length !== 1) throw new GenerationConfigError(`${images.length} images for ${texts.length} texts; give one image, one text, or as many of each`);
  if (texts.length !== n && texts.length !== 1) throw new GenerationConfigError(`${images.length} images for ${texts.length} texts; give one image, one text, or as many of each`);
  const imageAt = (i: number) => (images.length === 1 ? 0 : i);
  const img = (i: number) => images[imageAt(i)];
  const txt = (i: number) => texts[texts.length === 1 ? 0 : i];
  const bs = batchSizeOf(opts, 16);
  const maxText = maxTextTokensOf(opts, ctx.tokenizer);
  const signal = signalOf(opts);
  if (n === 0) return []; // (after the pairing rule and the options are checked)
  const out: ItmResult[] = [];
  const runs = paired(ctx) ? imageRuns(n, img) : [n];
  // per call: its pixel_values rows (indices into images) and, paired, each pair's row among them
  const plan = calls(runs, bs).map(([s, e]) => {
    const idx = Array.from({ length: e - s }, (_, k) => s + k);
    if (!paired(ctx)) return { idx, rows: idx.map(imageAt) };
    const d = distinct(idx.map(img));
    return { idx, rows: d.first.map((k) => imageAt(s + k)), pairImage: d.rows };
  });
  // every text tokenized and every image read before the first retrieval.onnx call: a text too long
  // or an image that cannot be read fails the call at once (docs/api.md)
  const textBatches = plan.map(({ idx }) => textFeeds(ctx, idx.map(txt), maxText));
  const prepared = await prepareImages(images, plan.map((c) => c.rows), ctx.preprocess, { modelSize: declaredImageSize(ctx.manifest, 'retrieval') });
  for (const [k, { idx, pairImage }] of plan.entries()) {
    const { tensor: pixel_values } = await prepared.pixels(k);
    const feeds: Record<string, ort.Tensor> = pairImage ? { pixel_values, pair_image: index(pairImage) } : { pixel_values };
    signal?.throwIfAborted(); // (a run already under way finishes; none starts after the abort)
    const r = await run(ctx, { ...feeds, ...textBatches[k] }, ['itm_score', 'itc_score']);
    const itm = r.itm_score?.data as Float32Array | undefined;
    const itc = r.itc_score?.data as Float32Array | undefined;
    idx.forEach((_, k) => out.push({ itm: itm ? itm[k] : NaN, itc: itc ? itc[k] : NaN }));
  }
  return out;
}

function split(t: ort.Tensor): Embedding[] {
  const B = t.dims[0];
  const per = (t.data as Float32Array).length / B;
  return Array.from({ length: B }, (_, b) => ({ data: (t.data as Float32Array).slice(b * per, (b + 1) * per), dims: t.dims.slice(1) as number[] }));
}

/** The normalised ITC image embeddings (BLIP: (E); BLIP-2: (Q, E)). */
export async function embedImages(ctx: RetrievalContext, images: ImageInput[], opts: Pick<ItmOptions, 'batchSize' | 'signal'> = {}): Promise<Embedding[]> {
  checkImageList(images);
  opts = optionsObject<Pick<ItmOptions, 'batchSize' | 'signal'>>(opts, ['batchSize', 'signal']);
  if (!ctx.retrieval.outputNames.includes('image_embeds')) throw new BlipRuntimeError('BLIP5044', 'retrieval.onnx has no image_embeds output (the model has no ITC head)');
  const bs = batchSizeOf(opts, 16);
  const signal = signalOf(opts);
  const out: Embedding[] = [];
  const plan = inOrder(images.length, bs);
  // every image read before the first retrieval.onnx call: one that cannot be read fails at once (docs/api.md)
  const prepared = await prepareImages(images, plan, ctx.preprocess, { modelSize: declaredImageSize(ctx.manifest, 'retrieval') });
  for (const [k, rows] of plan.entries()) {
    const { tensor: pixel_values } = await prepared.pixels(k);
    // the text side is a stand-in: one empty text when the graph pairs rows, else one per image
    const texts = paired(ctx) ? { ...textFeeds(ctx, ['']), pair_image: index([0]) } : textFeeds(ctx, rows.map(() => ''));
    signal?.throwIfAborted();
    const r = await run(ctx, { pixel_values, ...texts }, ['image_embeds']);
    out.push(...split(r.image_embeds));
  }
  return out;
}

/** The normalised ITC text embeddings (E). */
export async function embedTexts(ctx: RetrievalContext, texts: string[], opts: ItmOptions = {}): Promise<Embedding[]> {
  checkTextList(texts);
  opts = optionsObject<ItmOptions>(opts, ['batchSize', 'maxTextTokens', 'signal']);
  if (!ctx.retrieval.outputNames.includes('text_embeds')) throw new BlipRuntimeError('BLIP5044', 'retrieval.onnx has no text_embeds output (the model has no ITC head)');
  const bs = batchSizeOf(opts, 16);
  const maxText = maxTextTokensOf(opts, ctx.tokenizer);
  const signal = signalOf(opts);
  // the graph's declared image size (the preprocess size unless resizing is off)
  const { height, width } = declaredImageSize(ctx.manifest, 'retrieval') ?? ctx.preprocess.image_size;
  const out: Embedding[] = [];
  // every text tokenized before the first retrieval.onnx call: one too long fails the call at once
  const textBatches = inOrder(texts.length, bs).map((rows) => textFeeds(ctx, rows.map((i) => texts[i]), maxText));
  for (const feeds of textBatches) {
    const rows = feeds.input_ids.dims[0];
    // the image side is a stand-in: one blank image when the graph pairs rows, else one per text
    const images = paired(ctx) ? 1 : rows;
    const pixel_values = new ort.Tensor('float32', new Float32Array(images * 3 * height * width), [images, 3, height, width]);
    const pairs: Record<string, ort.Tensor> = paired(ctx) ? { pair_image: index(Array.from({ length: rows }, () => 0)) } : {};
    signal?.throwIfAborted();
    const r = await run(ctx, { pixel_values, ...pairs, ...feeds }, ['text_embeds']);
    out.push(...split(r.text_embeds));
  }
  return out;
}
