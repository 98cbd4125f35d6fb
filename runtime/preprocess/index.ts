// Images -> `pixel_values` (float32, B x 3 x H x W), as transformers' PIL backend
// (BlipImageProcessorPil, i.e. transformers 4 / LAVIS behaviour) computes it:
//   PIL open + convert("RGB") -> Image.resize((W, H), resample) on uint8
//   -> float32(float64(x) * rescale_factor) -> (x - float32(mean)) / float32(std) in float32.
// transformers 5's default BlipImageProcessor uses the torchvision backend, whose resize differs
// (up to ~0.04 after normalisation); the runtime follows PIL, bit for bit.
import { BlipRuntimeError } from '../errors.js';
import type { PreprocessConfig } from './config.js';
import { decodeImage, type ImageDecodeOptions, type ImageSource, type RgbImage } from './image.js';
import { resizePil } from './resize.js';

export * from './config.js';
export * from './image.js';
export * from './resize.js';

/** A float32 tensor in row-major order. */
export interface PixelValues {
  data: Float32Array;
  dims: [number, number, number, number];
}

/** Resize one decoded image as configured (no-op when do_resize is false or the size already matches). */
export function resizeForModel(img: RgbImage, cfg: PreprocessConfig): RgbImage {
  if (!cfg.do_resize) return img;
  const { height, width } = cfg.image_size;
  return resizePil(img, width, height, cfg.resample);
}

/** Rescale + normalise 8-bit RGB (HWC) into `out` at `offset` as CHW float32. */
export function writeNormalized(img: RgbImage, cfg: PreprocessConfig, out: Float32Array, offset: number): void {
  const { width: W, height: H } = img;
  const plane = W * H;
  const f = Math.fround;
  const mean = cfg.mean.map(f);
  const std = cfg.std.map(f);
  // the rescaled value depends only on the byte: tabulate it per channel
  for (let c = 0; c < 3; c++) {
    const table = new Float32Array(256);
    for (let v = 0; v < 256; v++) {
      let x = cfg.do_rescale ? f(v * cfg.rescale_factor) : v;
      if (cfg.do_normalize) x = f(f(x - mean[c]) / std[c]);
      table[v] = x;
    }
    const base = offset + c * plane;
    for (let i = 0; i < plane; i++) out[base + i] = table[img.data[i * 3 + c]];
  }
}

/** One pixel_values batch from images already resized (all the same size). */
export function assemblePixelValues(resized: RgbImage[], cfg: PreprocessConfig, names?: string[]): PixelValues {
  const { width: W, height: H } = resized[0];
  resized.forEach((im, i) => {
    if (im.width !== W || im.height !== H) {
      const who = names?.[i] ?? `image ${i}`;
      throw new BlipRuntimeError('BLIP5011', `${who} is ${im.width}x${im.height} but the batch is ${W}x${H}; with do_resize false all images must have the same size`, names?.[i]);
    }
    if (im.channels !== 3) throw new BlipRuntimeError('BLIP5011', `${names?.[i] ?? `image ${i}`} has ${im.channels} channels, 3 (RGB) expected`, names?.[i]);
  });
  const out = new Float32Array(resized.length * 3 * W * H);
  resized.forEach((im, i) => writeNormalized(im, cfg, out, i * 3 * W * H));
  return { data: out, dims: [resized.length, 3, H, W] };
}

/**
 * Decode, resize, rescale and normalise image files into one pixel_values batch. Images are always
 * converted to RGB (with do_convert_rgb false transformers would fail on non-RGB input instead).
 */
export async function preprocessImages(sources: ImageSource[], cfg: PreprocessConfig, opts: ImageDecodeOptions = {}): Promise<PixelValues> {
  const names = sources.map((s) => (typeof s === 'string' ? s : s.name));
  if (sources.length === 0) throw new BlipRuntimeError('BLIP5011', 'no images to preprocess');
  // resize each image as soon as it is decoded: only one full-size image is held at a time
  const resized: RgbImage[] = [];
  for (const s of sources) resized.push(resizeForModel(await decodeImage(s, opts), cfg));
  return assemblePixelValues(resized, cfg, names);
}
