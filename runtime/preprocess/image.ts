// Decoding an image file to 8-bit RGB the way `PIL.Image.open(path).convert("RGB")` does (what
// transformers' processors see): grayscale is replicated, alpha is dropped without compositing,
// palettes are expanded, embedded ICC profiles are ignored, EXIF orientation is ignored except in
// TIFF, which PIL turns upright as it loads it, and an AVIF's irot / imir, which libheif applies,
// is undone (orientation.ts), 16-bit RGB keeps the high byte, 16-bit grayscale is clipped at 255
// (PIL's I;16 -> RGB), CMYK uses PIL's naive formula, a TIFF's associated alpha is divided out with
// PIL's rounding (premultiplied.ts), a GIF's transparent pixels keep their palette colour (gif.ts).
// Verified against PIL on PNG, JPEG (baseline, 4:4:4, progressive, grayscale, CMYK), WebP (lossy,
// lossless, alpha), GIF (transparent, animated, partial first frame) and TIFF (orientations 1-8,
// tag or XMP; associated alpha): identical bytes; 4:4:4 AVIF (irot / imir too) within 1 level.
import { readFile, stat } from 'node:fs/promises';
import sharp from 'sharp';
import { ImageDecodeError, firstLine } from '../errors.js';
import { fillAsPil, gifFirstFrame } from './gif.js';
import { heifAsPil, tiffAsPil } from './orientation.js';
import { asPilUnpremultiplied, tiffAssociatedAlpha } from './premultiplied.js';
import { isSystemError, systemErrorMeaning } from '../../src/filesystem.js';

/** An 8-bit image, pixels interleaved row-major (HWC); `channels` is 3 after decoding. */
export interface RgbImage {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

/** Where an image comes from: a path, or bytes with a name for messages. */
export type ImageSource = string | { name: string; bytes: Uint8Array };

export interface ImageDecodeOptions {
  /** Refuse images with more pixels than this (default 2^28, about 16384 x 16384). */
  maxPixels?: number;
}

function sourceName(src: ImageSource): string {
  return typeof src === 'string' ? src : src.name;
}

/** Read and decode one image to RGB (see the file comment for the exact conversions). */
export async function decodeImage(src: ImageSource, opts: ImageDecodeOptions = {}): Promise<RgbImage> {
  const name = sourceName(src);
  const bytes = typeof src === 'string' ? await readImageFile(src, 'bytes') : src.bytes;
  if (bytes.length === 0) throw new ImageDecodeError(name, 'the file is empty');
  return decodeImageBytes(bytes, name, opts, typeof src === 'string');
}

/** A file's bytes, or (`check`) only that it is a regular file, with decodeImage's words when it cannot be. */
async function readImageFile(path: string, what: 'bytes'): Promise<Uint8Array>;
async function readImageFile(path: string, what: 'check'): Promise<{ size: number }>;
async function readImageFile(path: string, what: 'bytes' | 'check'): Promise<Uint8Array | { size: number }> {
  try {
    // a device or a pipe (/dev/zero, a FIFO) would be read without end
    const st = await stat(path);
    if (!st.isFile() && !st.isDirectory()) throw new ImageDecodeError(path, 'not a regular file (a device, pipe or socket)');
    return what === 'bytes' ? await readFile(path) : st;
  } catch (e) {
    if (e instanceof ImageDecodeError) throw e;
    const code = (e as { code?: string }).code;
    throw new ImageDecodeError(path, code === 'ENOENT' ? 'no such file or folder' : code === 'EISDIR' ? 'it is a directory' : isSystemError(e) ? systemErrorMeaning(e) : firstLine(e));
  }
}

/** What an image's header says: its format (as sharp names it) and its stored size. */
export interface ImageHeader {
  format: string;
  width: number;
  height: number;
}

/**
 * Check an image without decoding its pixels: that it can be opened, is not empty, and that its
 * header (sharp's metadata(): format, size) reads as decodeImage would accept it, the pixel limit
 * included; failures are decodeImage's ImageDecodeError, in its words. Not caught: pixel data that
 * does not decode (a file cut short after its header, a corrupt stream), found only by decoding.
 * A path's header is read from the file (its first bytes); anything refused is read again whole
 * for decodeImage's message.
 */
export async function readImageHeader(src: ImageSource, opts: ImageDecodeOptions = {}): Promise<ImageHeader> {
  const name = sourceName(src);
  const maxPixels = opts.maxPixels ?? 2 ** 28;
  if (typeof src === 'string') {
    if ((await readImageFile(src, 'check')).size > 0) {
      const meta = await sharp(src, HEADER_OPTIONS).metadata().catch(() => undefined);
      const header = meta && acceptedHeader(meta, name, maxPixels, false);
      if (header) return header;
    }
    // (refused, or a directory: the bytes say why, as decodeImage says it)
    return readImageHeader({ name, bytes: await readImageFile(src, 'bytes') }, opts);
  }
  if (src.bytes.length === 0) throw new ImageDecodeError(name, 'the file is empty');
  let meta: sharp.Metadata;
  try {
    meta = await sharp(src.bytes, HEADER_OPTIONS).metadata();
  } catch (e) {
    throw new ImageDecodeError(name, describeSharpError(e, src.bytes, maxPixels));
  }
  return acceptedHeader(meta, name, maxPixels, true)!;
}

/** sharp's options for a header read (no pixel limit: sharp would refuse a bomb without saying its size). */
const HEADER_OPTIONS = { ignoreIcc: true, failOn: 'error' as const, limitInputPixels: false as const, autoOrient: false };

/** The header when decodeImage takes it; else (`refuse`) its ImageDecodeError, or undefined. */
function acceptedHeader(meta: sharp.Metadata, name: string, maxPixels: number, refuse: boolean): ImageHeader | undefined {
  // what libvips reads beyond PIL (SVG, PDF, FITS, ...) would be a picture transformers never sees
  // (HEIC is libvips' heif with HEVC, which PIL opens only with a plug-in)
  const format = meta.format === 'heif' && meta.compression && meta.compression !== 'av1' ? 'heic' : (meta.format ?? 'unknown');
  let why: string | undefined;
  if (!PIL_FORMATS.has(format)) why = `not a supported image (${format.toUpperCase()}: ${SUPPORTED} expected)`;
  else if (!meta.width || !meta.height) why = 'the image has no size';
  else if (meta.width * meta.height > maxPixels) why = `${meta.width}x${meta.height} is more than the ${maxPixels} pixels allowed`;
  if (why === undefined) return { format, width: meta.width!, height: meta.height! };
  if (refuse) throw new ImageDecodeError(name, why);
  return undefined;
}

/** The formats both libvips and PIL read (AVIF is libvips' heif with AV1). */
const PIL_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);
const SUPPORTED = 'PNG, JPEG, WebP, GIF, TIFF or AVIF';

/**
 * Decode image bytes (PNG, JPEG, WebP, GIF, TIFF, AVIF) to RGB. `fromPath`: as PIL opens the file by
 * its path, not from bytes (they differ for some rotated TIFFs, see orientation.ts).
 */
export async function decodeImageBytes(bytes: Uint8Array, name: string, opts: ImageDecodeOptions = {}, fromPath = false): Promise<RgbImage> {
  const maxPixels = opts.maxPixels ?? 2 ** 28;
  const base = { ignoreIcc: true, failOn: 'error' as const, limitInputPixels: maxPixels, autoOrient: false };
  // The header and the pixels are read at once (both in libuv's threads: a caller can resize the
  // previous image meanwhile); the pixels are dropped for the rare spaces decoded another way. Only
  // for bytes that announce a format PIL reads: an SVG would be rendered (tens of seconds, on the
  // threads every decode shares) before its header is refused.
  const decodePixels = () => sharp(bytes, base).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  const pixels = signature(bytes) || isHeif(bytes) ? decodePixels() : undefined;
  pixels?.catch(() => {}); // awaited below unless the header fails first
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, HEADER_OPTIONS).metadata();
  } catch (e) {
    throw new ImageDecodeError(name, describeSharpError(e, bytes, maxPixels));
  }
  acceptedHeader(meta, name, maxPixels, true);
  /** The pixels as stored (libvips does not apply an orientation with autoOrient false). */
  const decodeUpright = async (): Promise<RgbImage> => {
    if (meta.space === 'cmyk') return decodeCmyk(bytes, base);
    // (16-bit gray with alpha opens as 8-bit LA in PIL, taking the high byte: the default path)
    // (a 16-bit grayscale PNG with a tRNS chunk is I;16 in PIL too, transparency aside: libvips
    // gives it an alpha channel, so the PNG's colour type decides, not the channel count)
    if ((meta.space === 'grey16' && meta.channels === 1) || isPngGrey16(bytes)) return decodeGrey16(bytes, base);
    const assoc = meta.format === 'tiff' ? tiffAssociatedAlpha(bytes) : undefined;
    if (assoc === 16) throw new ImageDecodeError(name, 'a 16-bit TIFF with associated (premultiplied) alpha does not decode as PIL reads it: convert it to PNG');
    const { data, info } = await (pixels ?? decodePixels());
    if (assoc === 8) asPilUnpremultiplied(data, info.channels); // (PIL's rounding, premultiplied.ts)
    const gif = meta.format === 'gif' ? gifFirstFrame(bytes) : undefined;
    if (gif) fillAsPil(data, info.width, info.height, info.channels, gif);
    return toRgb(data, info.width, info.height, info.channels);
  };
  try {
    const im = await decodeUpright();
    // PIL turns a TIFF upright as it loads it (no other format: orientation.ts)
    if (meta.format === 'tiff') return tiffAsPil(im, bytes, name, fromPath);
    // (libheif applies an AVIF's irot / imir itself, PIL does not: undone)
    return meta.format === 'heif' ? heifAsPil(im, bytes) : im;
  } catch (e) {
    if (e instanceof ImageDecodeError) throw e;
    throw new ImageDecodeError(name, describeSharpError(e, bytes, maxPixels));
  }
}

/**
 * Why sharp could not decode `bytes`, the same words every time. libvips' error buffer is one per
 * process, so when images fail to decode at the same time their messages mix (one gets both, the
 * other an empty detail or "Unknown error"): only sharp's own words ("unsupported image format",
 * "corrupt header") and what the bytes themselves show are used, never libvips' text.
 */
function describeSharpError(e: unknown, bytes: Uint8Array, maxPixels: number): string {
  const m = firstLine(e);
  if (/unsupported image format/i.test(m)) return `not a supported image (${SUPPORTED} expected)`;
  if (/exceeds pixel limit/i.test(m)) return `it has more than the ${maxPixels} pixels allowed`;
  const cut = truncation(bytes);
  if (cut) return `the file is truncated (${cut})`;
  const format = signature(bytes) ?? 'image';
  return /corrupt header/i.test(m) ? `the file is corrupt (its ${format} header does not decode)` : `the file is corrupt (its ${format} data does not decode)`;
}

/** Whether the bytes are an ISO-BMFF image (AVIF, HEIF): an `ftyp` box first. */
function isHeif(b: Uint8Array): boolean {
  return b[4] === 0x66 && b[5] === 0x74 && b[6] === 0x79 && b[7] === 0x70;
}

/** Whether the bytes are a PNG of 16-bit grayscale (IHDR bit depth 16, colour type 0). */
function isPngGrey16(b: Uint8Array): boolean {
  return signature(b) === 'PNG' && b[12] === 0x49 && b[13] === 0x48 && b[14] === 0x44 && b[15] === 0x52 && b[24] === 16 && b[25] === 0;
}

/** The format that a file's first bytes announce. */
function signature(b: Uint8Array): string | undefined {
  const at = (i: number, ...v: number[]): boolean => v.every((x, k) => b[i + k] === x);
  if (at(0, 0x89, 0x50, 0x4e, 0x47)) return 'PNG';
  if (at(0, 0xff, 0xd8)) return 'JPEG';
  if (at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) return 'WebP';
  if (at(0, 0x47, 0x49, 0x46, 0x38)) return 'GIF';
  if (at(0, 0x49, 0x49, 0x2a, 0x00) || at(0, 0x4d, 0x4d, 0x00, 0x2a)) return 'TIFF';
  return undefined;
}

/** How a PNG, JPEG or WebP file is visibly cut short, or undefined when it is not. */
export function truncation(b: Uint8Array): string | undefined {
  const at = (i: number, ...v: number[]): boolean => v.every((x, k) => b[i + k] === x);
  if (at(0, 0x89, 0x50, 0x4e, 0x47)) {
    // PNG: chunks (length, type, data, CRC) until IEND
    for (let i = 8; i + 8 <= b.length; ) {
      const len = ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
      if (at(i + 4, 0x49, 0x45, 0x4e, 0x44)) return undefined;
      if (i + 12 + len > b.length) return `PNG chunk at byte ${i} needs ${len} bytes of data, the file has ${b.length} bytes`;
      i += 12 + len;
    }
    return 'PNG without its IEND chunk';
  }
  if (at(0, 0xff, 0xd8)) {
    // JPEG: entropy-coded data never holds FF D9 (FF is stuffed or a restart marker), so the image
    // is complete when an end-of-image marker follows the last start-of-scan
    let sos = -1;
    for (let i = 2; i + 1 < b.length; i++) if (b[i] === 0xff && b[i + 1] === 0xda) sos = i;
    if (sos < 0) return 'JPEG that ends before its image data';
    for (let i = sos + 2; i + 1 < b.length; i++) if (b[i] === 0xff && b[i + 1] === 0xd9) return undefined;
    return 'JPEG without its end-of-image marker';
  }
  if (at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) {
    const size = (b[4] | (b[5] << 8) | (b[6] << 16) | (b[7] << 24)) >>> 0;
    if (size + 8 > b.length) return `WebP says ${size + 8} bytes, the file has ${b.length}`;
  }
  return undefined;
}

/** Keep the colour channels of 1-4 channel 8-bit data as RGB (gray replicated, alpha dropped). */
export function toRgb(data: Uint8Array, width: number, height: number, channels: number): RgbImage {
  const n = width * height;
  const out = new Uint8Array(n * 3);
  if (channels === 3) {
    out.set(data.subarray(0, n * 3));
  } else if (channels === 4) {
    for (let i = 0; i < n; i++) {
      out[i * 3] = data[i * 4];
      out[i * 3 + 1] = data[i * 4 + 1];
      out[i * 3 + 2] = data[i * 4 + 2];
    }
  } else if (channels === 1 || channels === 2) {
    for (let i = 0; i < n; i++) {
      const v = data[i * channels];
      out[i * 3] = v;
      out[i * 3 + 1] = v;
      out[i * 3 + 2] = v;
    }
  } else {
    throw new Error(`unexpected channel count ${channels}`);
  }
  return { width, height, channels: 3, data: out };
}

async function decodeCmyk(bytes: Uint8Array, base: sharp.SharpOptions): Promise<RgbImage> {
  // The decoded CMYK samples (Adobe inversion undone, as PIL does), then Pillow's cmyk2rgb:
  // nk = 255 - k; out = clip8(nk - muldiv255(c, nk)).
  const { data, info } = await sharp(bytes, base).pipelineColourspace('cmyk').toColourspace('cmyk').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels < 4) return toRgb(data, info.width, info.height, info.channels);
  const n = info.width * info.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const nk = 255 - data[i * info.channels + 3];
    for (let c = 0; c < 3; c++) {
      const t = data[i * info.channels + c] * nk + 128;
      const v = nk - (((t >> 8) + t) >> 8);
      out[i * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { width: info.width, height: info.height, channels: 3, data: out };
}

async function decodeGrey16(bytes: Uint8Array, base: sharp.SharpOptions): Promise<RgbImage> {
  // PIL opens a 16-bit grayscale PNG as mode I;16 and convert("RGB") clips each value at 255.
  const { data, info } = await sharp(bytes, base).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
  const words = new Uint16Array(data.buffer, data.byteOffset, data.length >> 1);
  const n = info.width * info.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const w = words[i * info.channels];
    const v = w > 255 ? 255 : w;
    out[i * 3] = v;
    out[i * 3 + 1] = v;
    out[i * 3 + 2] = v;
  }
  return { width: info.width, height: info.height, channels: 3, data: out };
}
