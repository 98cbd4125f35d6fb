// Images -> `pixel_values` (float32, B x 3 x H x W) as one of transformers' two image-processor
// backends computes it (PreprocessConfig.backend):
//  pil (default; BlipImageProcessorPil, i.e. transformers 4 / LAVIS behaviour):
//   PIL open + convert("RGB") -> Image.resize((W, H), resample) on uint8 (resize.ts)
//   -> float32(float64(x) * rescale_factor) -> (x - float32(mean)) / float32(std) in float32.
//  torchvision (transformers 5's default BlipImageProcessor where torchvision is installed):
//   the same decoded bytes -> tvF.resize on the uint8 tensor (resizeTorchvision.ts), then rescale
//   and normalise fused: (float32(x) - m) / s in float32, m = float32(float32(mean) * float32(1 /
//   rescale_factor)) and s likewise (TorchvisionBackend._fuse_mean_std_and_rescale_factor).
// Both bit for bit.
import { BlipRuntimeError } from '../errors.js';
import type { PreprocessConfig } from './config.js';
import { decodeImage, type ImageDecodeOptions, type ImageSource, type RgbImage } from './image.js';
import { resizePil } from './resize.js';
import { resizeTorchvision } from './resizeTorchvision.js';

export * from './config.js';
export * from './image.js';
export * from './resize.js';
export * from './resizeTorchvision.js';

/** A float32 tensor in row-major order. */
export interface PixelValues {
  data: Float32Array;
  dims: [number, number, number, number];
}

/** Resize one decoded image as configured (no-op when do_resize is false or the size already matches). */
export function resizeForModel(img: RgbImage, cfg: PreprocessConfig): RgbImage {
  if (!cfg.do_resize) return img;
  const { height, width } = cfg.image_size;
  return cfg.backend === 'torchvision' ? resizeTorchvision(img, width, height, cfg.resample) : resizePil(img, width, height, cfg.resample);
}

/** float32 pixel_values of each byte value 0..255 in channel `c` (the normalisation depends only on it). */
export function normalizationTable(cfg: PreprocessConfig, c: number): Float32Array {
  const f = Math.fround;
  const table = new Float32Array(256);
  if (cfg.backend === 'torchvision') {
    if (cfg.do_rescale && cfg.do_normalize) {
      // torch.tensor(mean) * (1.0 / rescale_factor): a float32 tensor times a scalar taken as float32
      const m = f(f(cfg.mean[c]) * f(1 / cfg.rescale_factor));
      const s = f(f(cfg.std[c]) * f(1 / cfg.rescale_factor));
      for (let v = 0; v < 256; v++) table[v] = f(f(v - m) / s);
    } else if (cfg.do_normalize) {
      for (let v = 0; v < 256; v++) table[v] = f(f(v - f(cfg.mean[c])) / f(cfg.std[c]));
    } else {
      // uint8 tensor * python float: float32 arithmetic
      for (let v = 0; v < 256; v++) table[v] = cfg.do_rescale ? f(v * f(cfg.rescale_factor)) : v;
    }
    return table;
  }
  const mean = f(cfg.mean[c]);
  const std = f(cfg.std[c]);
  for (let v = 0; v < 256; v++) {
    let x = cfg.do_rescale ? f(v * cfg.rescale_factor) : v;
    if (cfg.do_normalize) x = f(f(x - mean) / std);
    table[v] = x;
  }
  return table;
}

/** Rescale + normalise 8-bit RGB (HWC) into `out` at `offset` as CHW float32. */
export function writeNormalized(img: RgbImage, cfg: PreprocessConfig, out: Float32Array, offset: number): void {
  const { width: W, height: H } = img;
  const plane = W * H;
  // the normalised value depends only on the byte: tabulated per channel
  for (let c = 0; c < 3; c++) {
    const table = normalizationTable(cfg, c);
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
