// Image inputs of the task API: a path, encoded bytes, or pixels already decoded, turned into one
// pixel_values batch as the manifest's `preprocess` says (runtime/preprocess: PIL-exact).
import * as ort from 'onnxruntime-node';
import { BlipRuntimeError, ImageDecodeError } from '../errors.js';
import { decodeImage, toRgb, type ImageDecodeOptions, type RgbImage } from '../preprocess/image.js';
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
  const form = inputForm(img);
  if (!form) {
    throw new ImageDecodeError(`#${index}`, `expected a file path, encoded bytes (a Uint8Array or ArrayBuffer, or {name, bytes}) or decoded pixels ({data, width, height, channels}), found ${describeArgument(img)}`);
  }
  if (form === 'path') return decodeImage(img as string, opts);
  if (form === 'bytes') return decodeImage({ name: imageName(img, index), bytes: img instanceof ArrayBuffer ? new Uint8Array(img) : (img as Uint8Array) }, opts);
  if (form === 'named') return decodeImage(img as { name: string; bytes: Uint8Array }, opts);
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
  return channels === 3 ? { width, height, channels: 3, data } : toRgb(data, width, height, channels);
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

/**
 * Resized images kept from the up-front read (prepareImages) until their batch: past this many
 * bytes of them, an image is read again when its batch runs. 64 MiB holds 151 images of 384 x 384
 * (BLIP) or 445 of 224 x 224 (BLIP-2), so most calls read each image once.
 */
export const KEEP_RESIZED_BYTES = 64 * 2 ** 20;

/** The images of a call, read and checked; `pixels(k)` gives batch k's pixel_values. */
export interface PreparedImages {
  /**
   * pixel_values (B, 3, H, W) of batch k (its rows as the plan lists them), and the milliseconds
   * the up-front read spent on the images first used in it (for the batch's `preprocess` time).
   * Batches are taken in order, each once: the images a batch was the last to use are let go.
   */
  pixels(k: number): Promise<{ tensor: ort.Tensor; readMs: number }>;
}

export interface PrepareOptions {
  /** The size the graph's pixel_values declares: an image of another size after resizing is BLIP5011. */
  modelSize?: ImageSize;
  /** Resized images kept between the up-front read and their batch (default KEEP_RESIZED_BYTES). */
  keepBytes?: number;
  /** The number messages give the unnamed input images[i] (default i). */
  indexOf?: (i: number) => number;
}

/**
 * Read every image of a call before its first model run: a missing, unreadable or wrong-sized image
 * fails the call at once, BLIP5010 / BLIP5011 naming it (its path or `name`, else `#i`, its index
 * in `images`), before any work is spent on the others. `plan` lists each batch's rows as indices
 * into `images` (repeats allowed), in the order the batches will run.
 *
 * Memory stays bounded for long lists: each image is resized to the model's input as soon as it is
 * decoded (one full-size image is held at a time besides the next one, whose decoding in sharp's
 * threads overlaps this one's resizing), and the resized images are kept only up to `keepBytes`;
 * an image past that is decoded to check it, let go, and read again when its batch runs. Inputs
 * that are the same string or object are read once per call.
 */
export async function prepareImages(images: ImageInput[], plan: number[][], cfg: PreprocessConfig, opts: PrepareOptions = {}): Promise<PreparedImages> {
  const { modelSize, keepBytes = KEEP_RESIZED_BYTES } = opts;
  const { unique, rows, first: firstIndex } = distinct(images);
  // the index an unnamed input is called by in messages (its own, or the caller's numbering)
  const first = firstIndex.map((i) => opts.indexOf?.(i) ?? i);
  const names = unique.map((im, u) => imageName(im, first[u]!));
  // each distinct image in the order the batches use it, and the batches it is first and last used in
  const order: number[] = [];
  const firstBatch = new Array<number>(unique.length).fill(-1);
  const lastBatch = new Array<number>(unique.length).fill(-1);
  plan.forEach((batch, k) => {
    for (const i of batch) {
      const u = rows[i]!;
      if (firstBatch[u] < 0) {
        firstBatch[u] = k;
        order.push(u);
      }
      lastBatch[u] = k;
    }
  });
  const kept = new Array<RgbImage | undefined>(unique.length);
  const sizes: ImageSize[] = [];
  const readMs = new Array<number>(unique.length).fill(0);
  const read = (u: number) => toRgbImage(unique[u]!, first[u]!);
  let keptBytes = 0;
  let last = performance.now();
  await eachDecoded(order, read, (u, rgb) => {
    const size = cfg.do_resize ? cfg.image_size : { width: rgb.width, height: rgb.height };
    checkImageSize(size, modelSize, names[u]!);
    const bytes = size.width * size.height * 3;
    if (keptBytes + bytes <= keepBytes) {
      kept[u] = resizeForModel(rgb, cfg);
      keptBytes += bytes;
    }
    sizes[u] = size;
    const now = performance.now();
    readMs[u] = now - last; // (its decoding overlapped the image before's resizing: wall time between the two)
    last = now;
  });
  // without resizing, a batch's images must share one size (assemblePixelValues): checked for all batches now
  if (!cfg.do_resize) {
    for (const batch of plan) {
      const [w, h] = [sizes[rows[batch[0]!]!]!.width, sizes[rows[batch[0]!]!]!.height];
      const odd = batch.find((i) => sizes[rows[i]!]!.width !== w || sizes[rows[i]!]!.height !== h);
      if (odd !== undefined) {
        const name = names[rows[odd]!]!;
        const s = sizes[rows[odd]!]!;
        throw new BlipRuntimeError('BLIP5011', `${name} is ${s.width}x${s.height} but the batch is ${w}x${h}; with do_resize false all images must have the same size`, name);
      }
    }
  }
  let done = -1;
  return {
    async pixels(k: number) {
      if (k !== done + 1 || k >= plan.length) throw new BlipRuntimeError('BLIP5031', `image batch ${k} asked for after batch ${done} of ${plan.length}`);
      done = k;
      const batch = plan[k]!;
      const ids = [...new Set(batch.map((i) => rows[i]!))];
      // the images let go after the up-front read: read again
      const again = new Map<number, RgbImage>();
      await eachDecoded(
        ids.filter((u) => !kept[u]),
        read,
        (u, rgb) => {
          const resized = resizeForModel(rgb, cfg);
          checkImageSize(resized, modelSize, names[u]!); // (a file that changed since it was checked)
          again.set(u, resized);
        },
      );
      const pv = assemblePixelValues(
        batch.map((i) => kept[rows[i]!] ?? again.get(rows[i]!)!),
        cfg,
        batch.map((i) => names[rows[i]!]!),
      );
      for (const u of ids) if (lastBatch[u] === k) kept[u] = undefined;
      const ms = ids.reduce((sum, u) => sum + (firstBatch[u] === k ? readMs[u]! : 0), 0);
      return { tensor: new ort.Tensor('float32', pv.data, pv.dims), readMs: ms };
    },
  };
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
 * them (the same object or path once). `offset`: the number of input i in messages, offset + i.
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
