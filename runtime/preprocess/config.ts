// The preprocessing settings the runtime applies, read from a manifest's `preprocess` object or from
// a HuggingFace checkpoint: transformers 5 `processor_config.json` (image processor nested under
// "image_processor", preferred as transformers does) or `preprocessor_config.json`. Missing keys take
// BlipImageProcessor's defaults (384x384, bicubic, CLIP mean/std, 1/255, everything on).
import { existsSync } from 'node:fs';
import { readJsonFile } from '../../src/jsonSyntax.js';
import { join } from 'node:path';
import { PreprocessConfigError } from '../errors.js';
import { resampleFromPil, type Resample } from './resize.js';

/**
 * Whose arithmetic resizes and normalises: transformers' PIL backend (BlipImageProcessorPil, what
 * LAVIS and transformers 4 computed; the default) or its torchvision one (BlipImageProcessor, what
 * `AutoProcessor.from_pretrained(ckpt)` gives in transformers 5 where torchvision is installed).
 */
export type ImageBackend = 'pil' | 'torchvision';
export const IMAGE_BACKENDS: readonly ImageBackend[] = ['pil', 'torchvision'];

export interface PreprocessConfig {
  /** Absent: 'pil'. Not in the manifest: a choice made where the model is loaded (load()'s imageBackend). */
  backend?: ImageBackend;
  image_size: { height: number; width: number };
  resample: Resample;
  rescale_factor: number;
  do_resize: boolean;
  do_rescale: boolean;
  do_normalize: boolean;
  mean: [number, number, number];
  std: [number, number, number];
  do_convert_rgb: boolean;
}

export const OPENAI_CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export const BLIP_DEFAULTS: PreprocessConfig = {
  image_size: { height: 384, width: 384 },
  resample: 'bicubic',
  rescale_factor: 1 / 255,
  do_resize: true,
  do_rescale: true,
  do_normalize: true,
  mean: OPENAI_CLIP_MEAN,
  std: OPENAI_CLIP_STD,
  do_convert_rgb: true,
};

/** The manifest's `preprocess` object, or anything shaped like it. */
export interface PreprocessLike {
  image_size: number | { height: number; width: number };
  resample: string | number;
  rescale_factor?: number;
  do_resize?: boolean;
  do_rescale?: boolean;
  do_normalize?: boolean;
  mean?: number[];
  std?: number[];
  do_convert_rgb?: boolean;
}

function triple(v: unknown, what: string, where: string, positive: boolean): [number, number, number] {
  const arr = typeof v === 'number' ? [v, v, v] : v;
  if (!Array.isArray(arr) || arr.length !== 3 || !arr.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new PreprocessConfigError(`${where}: ${what} must be 3 numbers (one per RGB channel), found ${JSON.stringify(v)}`, where);
  }
  if (positive && !arr.every((x: number) => x > 0)) {
    throw new PreprocessConfigError(`${where}: ${what} must be positive, found ${JSON.stringify(v)}`, where);
  }
  return [arr[0], arr[1], arr[2]];
}

function boolOr(v: unknown, dflt: boolean, key: string, where: string): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new PreprocessConfigError(`${where}: ${key} must be true or false, found ${JSON.stringify(v)}`, where);
  return v;
}

function sizeOf(v: unknown, where: string): { height: number; width: number } {
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n > 0;
  if (ok(v)) return { height: v, width: v };
  // [height, width], as transformers reads a list
  if (Array.isArray(v) && v.length === 2 && ok(v[0]) && ok(v[1])) return { height: v[0], width: v[1] };
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (ok(o.height) && ok(o.width)) return { height: o.height, width: o.width };
    if ('shortest_edge' in o || 'longest_edge' in o || 'max_height' in o) {
      throw new PreprocessConfigError(
        `${where}: size ${JSON.stringify(v)} asks for an aspect-preserving resize; BLIP processors resize to a fixed {"height", "width"}`,
        where,
      );
    }
  }
  throw new PreprocessConfigError(`${where}: image size must be a positive integer or {"height", "width"}, found ${JSON.stringify(v)}`, where);
}

function resampleOf(v: unknown, where: string): Resample {
  const r = typeof v === 'number' || typeof v === 'string' ? resampleFromPil(v) : undefined;
  if (!r) {
    throw new PreprocessConfigError(
      `${where}: resample ${JSON.stringify(v)} is not a PIL filter (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)`,
      where,
    );
  }
  return r;
}

/** Validate and complete a manifest `preprocess` object (image_size may be a number or {height,width}). */
export function preprocessFromManifest(p: PreprocessLike, where = 'manifest.json preprocess'): PreprocessConfig {
  const rf = p.rescale_factor ?? BLIP_DEFAULTS.rescale_factor;
  if (typeof rf !== 'number' || !(rf > 0) || !Number.isFinite(rf)) {
    throw new PreprocessConfigError(`${where}: rescale_factor must be a positive number, found ${JSON.stringify(rf)}`, where);
  }
  return {
    image_size: sizeOf(p.image_size, where),
    resample: resampleOf(p.resample, where),
    rescale_factor: rf,
    do_resize: boolOr(p.do_resize, true, 'do_resize', where),
    do_rescale: boolOr(p.do_rescale, true, 'do_rescale', where),
    do_normalize: boolOr(p.do_normalize, true, 'do_normalize', where),
    mean: triple(p.mean ?? BLIP_DEFAULTS.mean, 'mean', where, false),
    std: triple(p.std ?? BLIP_DEFAULTS.std, 'std', where, true),
    do_convert_rgb: boolOr(p.do_convert_rgb, true, 'do_convert_rgb', where),
  };
}

/** A HuggingFace image-processor dict (the contents of preprocessor_config.json). */
export function preprocessFromHf(d: Record<string, unknown>, where = 'preprocessor_config.json'): PreprocessConfig {
  // transformers crops the resized image to crop_size; the runtime does not crop, so only a crop to
  // the size just resized to (one that changes nothing) is taken
  if (d.do_center_crop !== undefined && d.do_center_crop !== null && d.do_center_crop !== false) {
    const side = (v: unknown): number | undefined => {
      if (typeof v === 'number') return v;
      const [h, w] = Array.isArray(v) ? v : v && typeof v === 'object' ? [(v as Record<string, unknown>).height, (v as Record<string, unknown>).width] : [];
      return typeof h === 'number' && h === w ? h : undefined;
    };
    const resized = d.do_resize === undefined || d.do_resize === true ? side(d.size ?? BLIP_DEFAULTS.image_size) : undefined;
    if (d.do_center_crop !== true || resized === undefined || side(d.crop_size) !== resized) {
      throw new PreprocessConfigError(`${where}: do_center_crop is ${JSON.stringify(d.do_center_crop)} with crop_size ${JSON.stringify(d.crop_size ?? null)}; the runtime does not crop (a crop_size equal to the resized size, which changes nothing, is taken)`, where);
    }
  }
  if (d.do_pad === true) throw new PreprocessConfigError(`${where}: do_pad is true; the runtime does not pad images`, where);
  // The file stores PIL's integer code: transformers resizes a name ("nearest") with bilinear (PIL
  // backend) or refuses it (torchvision), so a name is not read as the filter it names.
  if (d.resample !== undefined && d.resample !== null && typeof d.resample !== 'number') {
    throw new PreprocessConfigError(`${where}: resample ${JSON.stringify(d.resample)} is not an integer PIL code (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)`, where);
  }
  // null is None to transformers: a step switched by null is off, and a value left null for a step
  // that is on is refused, as transformers refuses it ("`size` and `resample` must be specified …").
  const flag = (key: string) => (d[key] === null ? false : (d[key] as boolean | undefined));
  const steps = { do_resize: flag('do_resize'), do_rescale: flag('do_rescale'), do_normalize: flag('do_normalize'), do_convert_rgb: flag('do_convert_rgb') };
  const needed: Array<[string, keyof typeof steps]> = [['size', 'do_resize'], ['resample', 'do_resize'], ['image_mean', 'do_normalize'], ['image_std', 'do_normalize'], ['rescale_factor', 'do_rescale']];
  for (const [key, step] of needed) {
    if (d[key] === null && steps[step] !== false) throw new PreprocessConfigError(`${where}: ${key} is null, which ${step} true needs (transformers refuses it too)`, where);
  }
  return preprocessFromManifest(
    {
      image_size: (d.size ?? BLIP_DEFAULTS.image_size) as PreprocessLike['image_size'],
      resample: (d.resample ?? 3) as number,
      rescale_factor: (d.rescale_factor ?? undefined) as number | undefined,
      ...steps,
      mean: (d.image_mean ?? undefined) as number[] | undefined,
      std: (d.image_std ?? undefined) as number[] | undefined,
    },
    where,
  );
}

function readJson(path: string): Record<string, unknown> {
  const read = readJsonFile(path);
  if (read.problem !== undefined) throw new PreprocessConfigError(`${path} ${read.problem}`, path);
  const v = read.value;
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new PreprocessConfigError(`${path} does not hold a JSON object`, path);
  return v as Record<string, unknown>;
}

/**
 * The image settings of a checkpoint directory, found as transformers 5 finds them: the
 * `image_processor` object nested in processor_config.json if there is one, else
 * preprocessor_config.json. Returns the config and the file it came from.
 */
export function readHfPreprocessConfig(dir: string): { config: PreprocessConfig; file: string } {
  const proc = join(dir, 'processor_config.json');
  if (existsSync(proc)) {
    const d = readJson(proc);
    const ip = d.image_processor;
    if (ip && typeof ip === 'object' && !Array.isArray(ip)) {
      return { config: preprocessFromHf(ip as Record<string, unknown>, `${proc} image_processor`), file: proc };
    }
  }
  const pre = join(dir, 'preprocessor_config.json');
  if (existsSync(pre)) return { config: preprocessFromHf(readJson(pre), pre), file: pre };
  throw new PreprocessConfigError(
    `${dir} has no image processor settings: neither processor_config.json with an "image_processor" object nor preprocessor_config.json`,
    dir,
  );
}
