// One shard of CapFilt: read its samples, decode each image (an unreadable one becomes an error
// record, never a failure), caption and score in batches, and write the output shard through a
// temp file that is renamed when complete. Batches never cross shards and are cut the same way
// in every mode, and every caption's seed is derived from (seed, shard, key), so a shard's
// output does not depend on which process or worker wrote it.
import sharp from 'sharp';
import { decodeImage } from '../../runtime/preprocess/image.js';
import type { ShardTask } from './inputs.js';
import { captionSeed, type CapfiltModels, type ImageInput, type Pixels } from './model.js';
import type { OutputDir } from './output.js';
import { IMAGE_FILES, readSamples, ShardReadError, TarWriter, type InputSample } from './webdataset.js';
import type { ImageBackend } from '../../runtime/preprocess/config.js';

/** Everything that decides a run's output: a re-run into the same folder must use the same. */
export interface CapfiltSettings {
  /** The captioner and filter artifacts: folders to load, and identities recorded in run.json. */
  captioner: string;
  filter: string;
  captionerId: string;
  filterId: string;
  captionsPerImage: number;
  topP: number;
  minItm: number;
  seed: number;
  batchSize: number;
  maxLength: number;
  minLength: number;
  /** JSONL inputs: lines per output shard. */
  samplesPerShard: number;
  /** load()'s imageBackend for both models (absent, as in jobs enqueued before it: 'pil'). */
  imageBackend?: ImageBackend;
}

export interface TextStats {
  kept: number;
  dropped: number;
}

export interface CapfiltStats {
  /** Samples read (each has, or should have had, one image). */
  images_seen: number;
  /** Samples captioned, scored and written. */
  images_ok: number;
  /** Error records (unreadable samples, and shard-level read failures). */
  errors: number;
  texts: {
    web: TextStats & { missing: number };
    synthetic: TextStats;
  };
}

export function emptyStats(): CapfiltStats {
  return { images_seen: 0, images_ok: 0, errors: 0, texts: { web: { kept: 0, dropped: 0, missing: 0 }, synthetic: { kept: 0, dropped: 0 } } };
}

export function addStats(a: CapfiltStats, b: CapfiltStats): CapfiltStats {
  return {
    images_seen: a.images_seen + b.images_seen,
    images_ok: a.images_ok + b.images_ok,
    errors: a.errors + b.errors,
    texts: {
      web: { kept: a.texts.web.kept + b.texts.web.kept, dropped: a.texts.web.dropped + b.texts.web.dropped, missing: a.texts.web.missing + b.texts.web.missing },
      synthetic: { kept: a.texts.synthetic.kept + b.texts.synthetic.kept, dropped: a.texts.synthetic.dropped + b.texts.synthetic.dropped },
    },
  };
}

export interface ErrorRecord {
  shard: string;
  /** null for a shard-level failure (e.g. a truncated tar). */
  key: string | null;
  error: string;
}

/** DEST/_capfilt/shards/<id>.json */
export interface ShardSidecar {
  shard: string;
  stats: CapfiltStats;
  errors: ErrorRecord[];
}

export interface ShardProgress {
  /** Input bytes consumed. */
  bytes(n: number): void;
  /** Samples finished (written or recorded as errors). */
  samples(n: number): void;
}

/** What a sample's .json in the output shard holds. */
export interface SampleRecord {
  key: string;
  image: string;
  web: { text: string; itm: number; kept: boolean } | null;
  synthetic: Array<{ text: string; itm: number; kept: boolean }>;
  kept: string[];
  meta?: unknown;
}

/** ITM probabilities are stored, and compared with --min-itm, at 6 decimals. */
const round6 = (p: number): number => Math.round(p * 1e6) / 1e6;

interface Ready {
  sample: InputSample;
  image: ImageInput;
  imageName: string;
  web?: string;
}

/**
 * Decode with the runtime's decoder, which gives the RGB bytes PIL's convert("RGB") would (what
 * the models were trained on), so an adapter can feed `pixels` to the model without decoding again.
 * With `prepare`, the pixels are made into what the models take at once, and the full-size ones
 * dropped: a batch holds no full-size image.
 */
async function decode(sample: InputSample, prepare: CapfiltModels['prepare']): Promise<{ image: ImageInput; imageName: string } | { error: string }> {
  const img = sample.image!;
  try {
    // (decodeImage: its checks before decoding too, such as an empty file's, as blip run says them)
    const rgb = await decodeImage({ name: img.source ?? img.name, bytes: img.bytes });
    if (rgb.channels !== 3) return { error: `cannot read image ${img.source ?? img.name}: decoded to ${rgb.channels} channels, 3 expected` };
    let imageName = img.name;
    if (imageName.endsWith('.img')) {
      const md = await sharp(img.bytes).metadata();
      // (sharp names AVIF by its container, heif: a .heif image is one the readers refuse, blip capfilt's own included)
      const fmt = md.format === 'heif' && md.compression === 'av1' ? 'avif' : (md.format ?? 'img');
      imageName = `${sample.key}.${fmt === 'jpeg' ? 'jpg' : fmt}`;
    }
    const pixels: Pixels = { data: rgb.data, width: rgb.width, height: rgb.height, channels: 3 };
    const image: ImageInput = prepare ? { key: sample.key, bytes: img.bytes, prepared: prepare(pixels) } : { key: sample.key, bytes: img.bytes, pixels };
    return { image, imageName };
  } catch (e) {
    return { error: (e as Error).message.split('\n')[0] };
  }
}

function checkShape<T>(what: string, got: unknown, rows: number, cols: (i: number) => number, ok: (v: unknown) => v is T): asserts got is T[][] {
  if (!Array.isArray(got) || got.length !== rows) throw new Error(`${what} returned ${Array.isArray(got) ? got.length : typeof got} rows for ${rows} images`);
  got.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== cols(i)) throw new Error(`${what} returned ${Array.isArray(row) ? row.length : typeof row} values for image ${i}, ${cols(i)} expected`);
    for (const v of row) if (!ok(v)) throw new Error(`${what} returned ${JSON.stringify(v)} for image ${i}`);
  });
}

/**
 * Process one shard into `out` and return its sidecar. Throws only for what a retry may fix
 * (I/O errors, a model failure); bad samples and a malformed tar become error records.
 */
export async function processShard(out: OutputDir, task: ShardTask, s: CapfiltSettings, models: CapfiltModels, progress?: ShardProgress): Promise<ShardSidecar> {
  const stats = emptyStats();
  const errors: ErrorRecord[] = [];
  const tmp = out.tempPath(task.id);
  const writer = new TarWriter(tmp);
  const fail = (key: string | null, error: string): void => {
    errors.push({ shard: task.id, key, error });
    stats.errors++;
    if (key !== null) progress?.samples(1);
  };

  const flush = async (batch: Ready[]): Promise<void> => {
    if (batch.length === 0) return;
    const images = batch.map((r) => r.image);
    const seeds = batch.map((r) => Array.from({ length: s.captionsPerImage }, (_, j) => captionSeed(s.seed, task.id, r.sample.key, j)));
    const captions = s.captionsPerImage === 0 ? batch.map(() => []) : await models.captioner.caption(images, { k: s.captionsPerImage, topP: s.topP, seeds, maxLength: s.maxLength, minLength: s.minLength });
    checkShape('the captioner', captions, batch.length, () => s.captionsPerImage, (v): v is string => typeof v === 'string');
    const texts = batch.map((r, i) => [...(r.web !== undefined ? [r.web] : []), ...captions[i]]);
    const probs = await models.matcher.itm(images, texts);
    checkShape('the ITM filter', probs, batch.length, (i) => texts[i].length, (v): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1);
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i];
      const p = probs[i].map(round6);
      const judged = texts[i].map((text, j) => ({ text, itm: p[j], kept: p[j] >= s.minItm }));
      const web = r.web !== undefined ? judged[0] : null;
      const synthetic = r.web !== undefined ? judged.slice(1) : judged;
      if (web) stats.texts.web[web.kept ? 'kept' : 'dropped']++;
      else stats.texts.web.missing++;
      for (const c of synthetic) stats.texts.synthetic[c.kept ? 'kept' : 'dropped']++;
      const rec: SampleRecord = { key: r.sample.key, image: r.imageName, web, synthetic, kept: [...new Set(judged.filter((t) => t.kept).map((t) => t.text))] };
      if (r.sample.meta !== undefined) rec.meta = r.sample.meta;
      await writer.add(r.imageName, r.image.bytes);
      await writer.add(`${r.sample.key}.json`, Buffer.from(JSON.stringify(rec), 'utf8'));
      stats.images_ok++;
    }
    progress?.samples(batch.length);
  };

  try {
    const ready: Ready[] = [];
    let pending: InputSample[] = [];
    // Decode a group of samples; those that decode join `ready`, and errors are recorded, in input
    // order.
    const decodePending = async (): Promise<void> => {
      const group = pending;
      pending = [];
      const prepare = models.prepare?.bind(models);
      // one at a time, as blip run reads its images: each holds its full-size pixels until it is
      // prepared, and decoding a whole batch at once held up to --batch-size of them
      const decoded: Array<Awaited<ReturnType<typeof decode>> | undefined> = [];
      for (const smp of group) decoded.push(smp.image && smp.error === undefined ? await decode(smp, prepare) : undefined);
      group.forEach((smp, i) => {
        const d = decoded[i];
        if (!d) fail(smp.key, smp.error ?? `no image (${IMAGE_FILES})`);
        else if ('error' in d) fail(smp.key, d.error);
        else ready.push({ sample: smp, image: d.image, imageName: d.imageName, web: smp.text !== undefined && smp.text.trim() !== '' ? smp.text : undefined });
      });
      while (ready.length >= s.batchSize) await flush(ready.splice(0, s.batchSize));
    };
    try {
      for await (const smp of readSamples(task.source, (n) => progress?.bytes(n))) {
        stats.images_seen++;
        pending.push(smp);
        if (pending.length + ready.length >= s.batchSize) await decodePending();
      }
    } catch (e) {
      if (!(e instanceof ShardReadError)) throw e;
      await decodePending();
      fail(null, e.message);
    }
    await decodePending();
    await flush(ready.splice(0));
    await writer.close();
  } catch (e) {
    await writer.abort();
    throw e;
  }
  const sidecar: ShardSidecar = { shard: task.id, stats, errors };
  await out.writeAtomic(out.sidecarPath(task.id), JSON.stringify(sidecar) + '\n');
  await out.commit(tmp, out.shardPath(task.id));
  return sidecar;
}
