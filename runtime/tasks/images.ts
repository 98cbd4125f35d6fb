// Image inputs of the task API: a path, encoded bytes, or pixels already decoded, turned into one
// pixel_values batch as the manifest's `preprocess` says (runtime/preprocess: exactly as
// transformers' PIL or torchvision image processor).
import * as ort from 'onnxruntime-node';
import { BlipRuntimeError, ImageDecodeError } from '../errors.js';
import { decodeImage, readImageHeader, toRgb, type ImageDecodeOptions, type ImageHeader, type RgbImage } from '../preprocess/image.js';
import { assemblePixelValues, resizeForModel, type PreprocessConfig } from '../preprocess/index.js';
import { describeArgument } from './arguments.js';
import type { Manifest } from '../../src/artifact/manifest.js';

/** Decoded 8-bit pixels, interleaved row-major (HWC); 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels. */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/**
 * One image: a file path, encoded bytes (PNG, JPEG, WebP, ...: a Uint8Array, Buffer or ArrayBuffer),
 * encoded bytes with a name for messages, or decoded pixels (alpha is dropped and gray replicated,
 * as PIL's convert("RGB")); their `data` may be a Uint8ClampedArray (a canvas's ImageData).
 */
export type ImageInput = string | Uint8Array | ArrayBuffer | { name: string; bytes: Uint8Array } | DecodedImage | (Omit<DecodedImage, 'data'> & { data: Uint8ClampedArray });

/** Which form of ImageInput `img` is, or undefined for anything else (JavaScript callers). */
function inputForm(img: unknown): 'path' | 'bytes' | 'named' | 'pixels' | undefined {
  if (typeof img === 'string') return 'path';
  if (img instanceof Uint8Array || img instanceof ArrayBuffer) return 'bytes';
  if (typeof img !== 'object' || img === null) return undefined;
  if ('bytes' in img) return img.bytes instanceof Uint8Array && typeof (img as { name?: unknown }).name === 'string' ? 'named' : undefined;
  return 'data' in img ? 'pixels' : undefined;
}

/** A short name for messages and output records ("cannot read image NAME"): an unnamed input is `#index`. */
export function imageName(img: ImageInput, index: number): string {
  const form = inputForm(img);
  if (form === 'path') return img as string;
  if (form === 'named') return (img as { name: string }).name;
  if (form === 'pixels') return `#${index} (${(img as DecodedImage).width}x${(img as DecodedImage).height} pixels)`;
  return `#${index}`;
}

/** Decode one input to RGB (pixels given as pixels are only checked and converted). */
export async function toRgbImage(img: ImageInput, index: number, opts: ImageDecodeOptions = {}): Promise<RgbImage> {
  const form = formOf(img, index);
  if (form === 'path') return decodeImage(img as string, opts);
  if (form === 'bytes') return decodeImage({ name: imageName(img, index), bytes: img instanceof ArrayBuffer ? new Uint8Array(img) : (img as Uint8Array) }, opts);
  if (form === 'named') return decodeImage(img as { name: string; bytes: Uint8Array }, opts);
  const { width, height, channels, data } = checkedPixels(img, index);
  return channels === 3 ? { width, height, channels: 3, data } : toRgb(data, width, height, channels);
}

/**
 * Check one input without decoding it (readImageHeader: opened, its header read and checked as
 * toRgbImage checks it); pixels given as pixels are checked whole. Its size as stored.
 */
export async function checkImageInput(img: ImageInput, index: number, opts: ImageDecodeOptions = {}): Promise<ImageHeader> {
  const form = formOf(img, index);
  if (form === 'path') return readImageHeader(img as string, opts);
  if (form === 'bytes') return readImageHeader({ name: imageName(img, index), bytes: img instanceof ArrayBuffer ? new Uint8Array(img) : (img as Uint8Array) }, opts);
  if (form === 'named') return readImageHeader(img as { name: string; bytes: Uint8Array }, opts);
  const { width, height } = checkedPixels(img, index);
  return { format: 'pixels', width, height };
}

/** The form of input `index`, or BLIP5010 for anything that is no ImageInput. */
function formOf(img: ImageInput, index: number): 'path' | 'bytes' | 'named' | 'pixels' {
  const form = inputForm(img);
  if (form) return form;
  throw new ImageDecodeError(`#${index}`, `expected a file path, encoded bytes (a Uint8Array or ArrayBuffer, or {name, bytes}) or decoded pixels ({data, width, height, channels}), found ${describeArgument(img)}`);
}

/** Decoded pixels given by the caller, checked: a size, 1 to 4 channels and that many bytes. */
function checkedPixels(img: ImageInput, index: number): DecodedImage {
  const { width, height, channels, data: given } = img as { width: number; height: number; channels: number; data: unknown };
  const name = imageName(img, index);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new ImageDecodeError(name, `bad size ${width}x${height}`);
  if (![1, 2, 3, 4].includes(channels)) throw new ImageDecodeError(name, `${channels} channels; 1 to 4 expected`);
  // a canvas's ImageData holds its RGBA bytes in a Uint8ClampedArray: the same bytes
  const data = given instanceof Uint8ClampedArray ? new Uint8Array(given.buffer, given.byteOffset, given.byteLength) : given;
  if (!(data instanceof Uint8Array)) throw new ImageDecodeError(name, `data must be a Uint8Array (or Uint8ClampedArray) of 8-bit pixels, found ${typedArrayName(data)}`);
  if (data.length !== width * height * channels) {
    throw new ImageDecodeError(name, `${data.length} bytes of pixel data for ${width}x${height}x${channels} (width x height x channels = ${width * height * channels} expected)`);
  }
  return { width, height, channels, data };
}

/** What a `data` that is no byte array is, for its message ("a Float32Array of 12", "an array of 12"). */
function typedArrayName(v: unknown): string {
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name} of ${(v as unknown as { length?: number }).length ?? v.byteLength}`;
  return describeArgument(v);
}

/** The distinct images of `images` (the same string or object once) and, per entry, its row among them. */
export function distinct(images: ImageInput[]): { unique: ImageInput[]; rows: number[]; first: number[] } {
  const at = new Map<ImageInput, number>();
  const unique: ImageInput[] = [];
  const first: number[] = [];
  const rows = images.map((im, i) => {
    let r = at.get(im);
    if (r === undefined) {
      at.set(im, (r = unique.length));
      unique.push(im);
      first.push(i);
    }
    return r;
  });
  return { unique, rows, first };
}

/** The images of a call, checked; `pixels(k)` gives batch k's pixel_values. */
export interface PreparedImages {
  /**
   * pixel_values (B, 3, H, W) of batch k (its rows as the plan lists them), and the milliseconds
   * of the up-front check spent on the images first used in it (for the batch's `preprocess`
   * time). Batches are taken in order, each once; batch k + 1 is read while batch k runs.
   */
  pixels(k: number): Promise<{ tensor: ort.Tensor; readMs: number }>;
}

export interface PrepareOptions {
  /** The size the graph's pixel_values declares: an image of another size after resizing is BLIP5011. */
  modelSize?: ImageSize;
  /** The number messages give the unnamed input images[i] (default i). */
  indexOf?: (i: number) => number;
}

/** Images whose headers are read at once in the up-front check (libuv's 4 threads). */
const CHECKS_AT_ONCE = 4;

/**
 * Check every image of a call before its first model run, cheaply (checkImageInput: each file
 * opened and its header read, no pixels decoded): a missing, unreadable, unsupported or oversized
 * image fails the call at once, BLIP5010 naming it (its path or `name`, else `#i`, its index in
 * `images`), as does one of the wrong size for a model that does not resize (BLIP5011). `plan`
 * lists each batch's rows as indices into `images` (repeats allowed), in the order they will run.
 *
 * The pixels are decoded and resized per batch, each image once, batch k + 1's while batch k runs
 * (one full-size image held at a time besides the next, whose decoding in sharp's threads overlaps
 * this one's resizing). An image whose header is fine but whose data does not decode (cut short,
 * corrupt), or that changed after the check, fails at its batch, with the same BLIP5010. Inputs
 * that are the same string or object are checked once and read once per batch that uses them.
 */
export async function prepareImages(images: ImageInput[], plan: number[][], cfg: PreprocessConfig, opts: PrepareOptions = {}): Promise<PreparedImages> {
  const { modelSize } = opts;
  const { unique, rows, first: firstIndex } = distinct(images);
  // the index an unnamed input is called by in messages (its own, or the caller's numbering)
  const first = firstIndex.map((i) => opts.indexOf?.(i) ?? i);
  const names = unique.map((im, u) => imageName(im, first[u]!));
  // each distinct image in the order the batches use it, and the batch it is first used in
  const order: number[] = [];
  const firstBatch = new Array<number>(unique.length).fill(-1);
  plan.forEach((batch, k) => {
    for (const i of batch) {
      const u = rows[i]!;
      if (firstBatch[u] < 0) {
        firstBatch[u] = k;
        order.push(u);
      }
    }
  });
  const t0 = performance.now();
  const headers = await checkedInOrder(order.length, (j) => checkImageInput(unique[order[j]!]!, first[order[j]!]!), CHECKS_AT_ONCE);
  const checkMs = order.length ? (performance.now() - t0) / order.length : 0;
  const header = new Array<ImageHeader | undefined>(unique.length);
  order.forEach((u, j) => (header[u] = headers[j]));
  if (cfg.do_resize) {
    if (order.length) checkImageSize(cfg.image_size, modelSize, names[order[0]!]!);
  } else {
    // without resizing, a batch's images must share one size (assemblePixelValues), the model's
    // when it declares one: checked for all batches now, from the stored sizes, except a TIFF's
    // or AVIF's, which an orientation may turn (checked at their batch)
    const size = (u: number) => (header[u]!.format === 'tiff' || header[u]!.format === 'heif' ? undefined : header[u]!);
    for (const u of order) if (size(u)) checkImageSize(size(u)!, modelSize, names[u]!);
    for (const batch of plan) {
      const sized = batch.map((i) => rows[i]!).filter((u) => size(u));
      const s0 = sized.length ? size(sized[0]!)! : undefined;
      const odd = sized.find((u) => size(u)!.width !== s0!.width || size(u)!.height !== s0!.height);
      if (odd !== undefined) {
        const s = size(odd)!;
        throw new BlipRuntimeError('BLIP5011', `${names[odd]} is ${s.width}x${s.height} but the batch is ${s0!.width}x${s0!.height}; with do_resize false all images must have the same size`, names[odd]);
      }
    }
  }
  const readBatch = async (k: number): Promise<ort.Tensor> => {
    const batch = plan[k]!;
    const resized = new Map<number, RgbImage>();
    await eachDecoded(
      [...new Set(batch.map((i) => rows[i]!))],
      (u) => toRgbImage(unique[u]!, first[u]!),
      (u, rgb) => {
        const im = resizeForModel(rgb, cfg);
        checkImageSize(im, modelSize, names[u]!);
        resized.set(u, im);
      },
    );
    const pv = assemblePixelValues(
      batch.map((i) => resized.get(rows[i]!)!),
      cfg,
      batch.map((i) => names[rows[i]!]!),
    );
    return new ort.Tensor('float32', pv.data, pv.dims);
  };
  let done = -1;
  let ahead: Promise<ort.Tensor> | undefined;
  return {
    async pixels(k: number) {
      if (k !== done + 1 || k >= plan.length) throw new BlipRuntimeError('BLIP5031', `image batch ${k} asked for after batch ${done} of ${plan.length}`);
      done = k;
      const reading = ahead ?? readBatch(k);
      ahead = undefined;
      const tensor = await reading;
      // the next batch's images are read while this one runs
      if (k + 1 < plan.length) {
        ahead = readBatch(k + 1);
        ahead.catch(() => {}); // awaited when batch k + 1 is asked for
      }
      const checked = new Set(plan[k]!.map((i) => rows[i]!).filter((u) => firstBatch[u] === k)).size;
      return { tensor, readMs: checked * checkMs };
    },
  };
}

/**
 * check(0..n-1), up to `width` at a time, their results in order. On a failure no more are
 * started, and the first failing index's error is thrown (every index before it was checked).
 */
async function checkedInOrder<T>(n: number, check: (j: number) => Promise<T>, width: number): Promise<T[]> {
  const out = new Array<T>(n);
  let failed = n;
  let error: unknown;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < failed) {
      const j = next++;
      try {
        out[j] = await check(j);
      } catch (e) {
        if (j < failed) [failed, error] = [j, e];
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
  if (failed < n) throw error;
  return out;
}

/**
 * Decode the images `ids` in order and hand each to `use`, one decoding ahead: sharp decodes the
 * next image in libuv's threads while `use` resizes this one on the main thread, so one full-size
 * image is held at a time besides the next. The first failure is thrown; the look-ahead's is dropped.
 */
async function eachDecoded(ids: number[], decode: (u: number) => Promise<RgbImage>, use: (u: number, rgb: RgbImage) => void): Promise<void> {
  const start = (j: number): Promise<RgbImage> | undefined => {
    if (j >= ids.length) return undefined;
    const p = decode(ids[j]!);
    p.catch(() => {}); // awaited below, unless the image before it fails first
    return p;
  };
  let next = start(0);
  for (let j = 0; j < ids.length; j++) {
    const rgb = await next!;
    next = start(j + 1);
    use(ids[j]!, rgb);
  }
}

/**
 * pixel_values (B, 3, H, W) for a list of inputs, row i from input i, read as prepareImages reads
 * them (all checked, then decoded; the same object or path once). `offset`: the number of input i in messages, offset + i.
 */
export async function pixelBatch(images: ImageInput[], cfg: PreprocessConfig, offset = 0, modelSize?: ImageSize): Promise<ort.Tensor> {
  if (images.length === 0) throw new BlipRuntimeError('BLIP5011', 'no images');
  const prepared = await prepareImages(images, [images.map((_, i) => i)], cfg, { modelSize, indexOf: (i) => offset + i });
  return (await prepared.pixels(0)).tensor;
}

/** Indices 0..n-1 in runs of `size`: the batches of a call that takes its images in order. */
export function inOrder(n: number, size: number): number[][] {
  return Array.from({ length: Math.ceil(n / size) }, (_, k) => Array.from({ length: Math.min(size, n - k * size) }, (_, j) => k * size + j));
}

export interface ImageSize {
  width: number;
  height: number;
}

/**
 * An image (after resizing) of another size than the model's encoder takes: BLIP5011 naming it.
 * Only without resizing (do_resize false) can one reach the encoder, which would fail on it.
 */
export function checkImageSize(im: { width: number; height: number }, modelSize: ImageSize | undefined, name: string): void {
  if (!modelSize || (im.width === modelSize.width && im.height === modelSize.height)) return;
  throw new BlipRuntimeError('BLIP5011', `${name} is ${im.width}x${im.height}, but this model takes ${modelSize.width}x${modelSize.height} images and does not resize them (do_resize false in its preprocessing): resize it first`, name);
}

/** The image size a graph's pixel_values input declares, when it declares one. */
export function declaredImageSize(manifest: Manifest, graph: 'encode' | 'retrieval'): ImageSize | undefined {
  const shape = manifest.graphs[graph]?.inputs.find((i) => i.name === 'pixel_values')?.shape ?? [];
  return typeof shape[2] === 'number' && typeof shape[3] === 'number' ? { height: shape[2], width: shape[3] } : undefined;
}
