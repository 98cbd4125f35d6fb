// The two model roles CapFilt needs, as narrow interfaces: a captioner that writes K sampled
// captions per image and a matcher (the ITM head) that scores image-text pairs. The pipeline
// (src/capfilt/shard.ts) only ever talks to these; the adapter over the runtime's compiled
// artifacts implements them (see loadModels in src/capfilt/runtimeModels.ts).
import { createHash } from 'node:crypto';
import type { ImageBackend } from '../../runtime/preprocess/config.js';

/** An RGB image decoded by the pipeline (8 bits per channel, row-major HWC, no alpha). */
export interface Pixels {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 3;
}

/** One image of a batch: the encoded bytes exactly as stored in the input, and their decoded pixels. */
export interface ImageInput {
  /** The sample's key (for messages only; results must not depend on it). */
  key: string;
  /** The encoded bytes (JPEG, PNG or WebP) as read from the input. */
  bytes: Uint8Array;
  /**
   * The same image decoded to RGB as PIL's convert("RGB") does (runtime/preprocess decodeImageBytes),
   * full size. Undefined when the models have a `prepare`: the pipeline then keeps only `prepared`.
   */
  pixels?: Pixels;
  /** What the models' `prepare` made of the full-size pixels as soon as they were decoded. */
  prepared?: PreparedPixels;
}

/** The pixels each model takes, by a key of the adapter's choosing (the runtime's: the model's resizing). */
export type PreparedPixels = ReadonlyMap<string, Pixels>;

export interface CaptionOptions {
  /** Captions per image. */
  k: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability sums to at least topP. */
  topP: number;
  /**
   * seeds[i][j] seeds caption j of image i: an unsigned integer below 2^48. Each caption is an
   * independent sampled generation driven only by its own seed, so a caption never depends on
   * the batch it was generated in, on the batch size or on which machine ran it.
   */
  seeds: number[][];
  /** Generation length limits in tokens (BLIP's CapFilt: 30 and 5). */
  maxLength: number;
  minLength: number;
}

export interface Captioner {
  /** Returns, for each image, exactly `opts.k` captions. */
  caption(images: ImageInput[], opts: CaptionOptions): Promise<string[][]>;
}

export interface Matcher {
  /** Returns, for each image i and each text texts[i][j], the ITM probability of "match" in [0, 1]. */
  itm(images: ImageInput[], texts: string[][]): Promise<number[][]>;
}

export interface CapfiltModels {
  captioner: Captioner;
  matcher: Matcher;
  /**
   * What the models need of an image's full-size pixels (the runtime adapter: the image resized for
   * each model), made as soon as it is decoded: the pipeline then drops the full-size pixels, so a
   * batch of large photos is never held at full size. It must give what resizing later would.
   */
  prepare?(pixels: Pixels): PreparedPixels;
  /** Releases sessions (optional). */
  close?(): Promise<void>;
}

/** What a worker or a run needs to get models: the two artifact directories and a device. */
export interface ModelSpec {
  captioner: string;
  filter: string;
  device: string;
  /** onnxruntime intra-op threads per session (default: one per physical core). */
  threads?: number;
  /** load()'s imageBackend (default 'pil'). */
  imageBackend?: ImageBackend;
}

export type ModelLoader = (spec: ModelSpec) => Promise<CapfiltModels>;

/**
 * The seed of caption `j` of sample `key` in output shard `shard`: the first 48 bits of
 * sha256(seed, shard, key, j). Derived per sample, so results do not depend on batching, order,
 * sharding or which worker ran the shard.
 */
export function captionSeed(seed: number, shard: string, key: string, j: number): number {
  const h = createHash('sha256').update(`capfilt\0${seed}\0${shard}\0${key}\0${j}`).digest();
  return h.readUIntBE(0, 6);
}
