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
 * pixel_values (B, 3, H, W) for a list of inputs, row i from input i. Inputs that are the same
 * object (or the same path) are decoded once. `offset`: the caller's number of input i in
 * messages, offset + i, or offset[i]. Each image is resized as soon as it is decoded, so only one
 * full-size image is held at a time besides the next one, whose decoding (sharp, in libuv's
 * threads) runs while this one is resized on the main thread.
 */
export async function pixelBatch(images: ImageInput[], cfg: PreprocessConfig, offset: number | number[] = 0, modelSize?: ImageSize): Promise<ort.Tensor> {
  const at = (i: number): number => (typeof offset === 'number' ? offset + i : offset[i]);
  if (images.length === 0) throw new BlipRuntimeError('BLIP5011', 'no images');
  const { unique, rows, first } = distinct(images);
  const decode = (u: number): Promise<RgbImage> | undefined => {
    if (u >= unique.length) return undefined;
    const p = toRgbImage(unique[u], at(first[u]));
    p.catch(() => {}); // awaited below, unless resizing the image before it throws first
    return p;
  };
  const resized: RgbImage[] = [];
  let next = decode(0);
  for (let u = 0; u < unique.length; u++) {
    const rgb = await next!;
    next = decode(u + 1);
    resized.push(resizeForModel(rgb, cfg));
  }
  const names = images.map((im, i) => imageName(im, at(i)));
  if (modelSize) rows.forEach((r, i) => checkImageSize(resized[r]!, modelSize, names[i]!));
  const pv = assemblePixelValues(rows.map((r) => resized[r]), cfg, names);
  return new ort.Tensor('float32', pv.data, pv.dims);
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
