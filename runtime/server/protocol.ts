// Messages between the HTTP thread and the inference workers (worker_threads). Images travel as
// encoded bytes (their buffers are transferred, not copied); each batch carries a
// SharedArrayBuffer of cancel flags, one Int32 per job, that the worker reads as it streams (which
// requests still get tokens and results). A 'cancel' message tells the worker to look at the flags
// now: it arrives between two decoding steps (onnxruntime-node runs each session.run from a
// setImmediate, so the worker's event loop turns between them, not during one), where the worker
// aborts a generate call whose requests are all cancelled (GenerateOptions.signal).
import type { ImageBackend } from '../preprocess/config.js';
import type { WireError } from './errors.js';
import type { ImageBytes } from './images.js';
import type { DecodedImage } from '../tasks/images.js';
import type { GenerateOptions, GenerateResult, TokenLogprobEntry } from '../tasks/generate.js';
import type { Embedding, ItmResult } from '../tasks/retrieval.js';

/** What the worker needs of a loaded model (runtime/model.ts BlipModel has it). */
export interface ServedModel {
  readonly providers?: Partial<Record<string, string>>;
  generate(images: DecodedImage[], opts: GenerateOptions): Promise<GenerateResult[]>;
  itm(images: DecodedImage[], texts: string[], opts?: { batchSize?: number }): Promise<ItmResult[]>;
  embedImages(images: DecodedImage[], opts?: { batchSize?: number }): Promise<Embedding[]>;
  embedTexts(texts: string[], opts?: { batchSize?: number }): Promise<Embedding[]>;
  close(): Promise<void>;
}

export type LoadFn = (dir: string, opts: { device?: string; threads?: number; deviceId?: number; imageBackend?: ImageBackend; options?: unknown }) => Promise<ServedModel>;


export interface WorkerInit {
  id: string;
  dir: string;
  device?: string;
  threads?: number;
  deviceId?: number;
  /** load()'s imageBackend (--image-backend). */
  imageBackend?: ImageBackend;
  /** Rows per model call for retrieval batches (ITM pairs, embeddings). */
  maxBatch: number;
  /** The most pixels a request's image may decode to (its header says; refused before decoding). */
  maxImagePixels: number;
  /** A module exporting `load(dir, opts)` to use instead of runtime/model.ts (tests). */
  backendModule?: string;
  backendOptions?: unknown;
}

export interface GenSettings {
  maxNewTokens: number;
  doSample: boolean;
  temperature?: number;
  topP?: number;
  /** Sequences per image (OpenAI's n). */
  n: number;
  /** Set where the request overrides the model's num_beams (temperature 0: greedy; n sampled answers). */
  numBeams?: number;
  /** Stop strings (OpenAI's stop): a choice ends before the first one it completes. */
  stop?: string[];
  /** Set: logprobs with this many top alternatives (OpenAI's logprobs + top_logprobs). */
  topLogprobs?: number;
}

export interface GenJob {
  image: ImageBytes;
  /** null: no prompt (the model's own start). */
  prompt: string | null;
  /** One seed per returned sequence (sampling). */
  seeds: number[];
  stream: boolean;
}

export interface ItmJob {
  image: ImageBytes;
  texts: string[];
}

export type EmbedItem = { image: ImageBytes } | { text: string };

export interface EmbedJob {
  items: EmbedItem[];
}

interface BatchBase {
  type: 'batch';
  id: number;
  cancel: SharedArrayBuffer;
}

export type BatchMessage =
  | (BatchBase & { task: 'generate'; settings: GenSettings; jobs: GenJob[] })
  | (BatchBase & { task: 'itm'; jobs: ItmJob[] })
  | (BatchBase & { task: 'embed'; jobs: EmbedJob[] });

export type ToWorker = BatchMessage | { type: 'cancel'; batch: number } | { type: 'close' };

export interface GenValue {
  /** `stop`: the stop string that ended the choice; `logprobs` when the request asked. */
  choices: Array<{ text: string; tokenIds: number[]; stop?: string; logprobs?: TokenLogprobEntry[] }>;
}
export interface ItmValue {
  itm: number[];
  itc: number[];
}
export interface EmbedValue {
  embeddings: Array<{ data: Float32Array; dims: number[] }>;
}

export type JobResult<T = GenValue | ItmValue | EmbedValue> = { ok: true; value: T } | { ok: false; error: WireError };

export type FromWorker =
  | { type: 'ready'; providers: Record<string, string> }
  | { type: 'fatal'; error: WireError }
  | { type: 'token'; batch: number; job: number; choice: number; text: string }
  | { type: 'result'; batch: number; results: JobResult[]; ms: number; tokens: number }
  | { type: 'closed' };
