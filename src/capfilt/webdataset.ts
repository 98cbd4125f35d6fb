// WebDataset shards: reading samples out of a .tar (files grouped by key, as img2dataset writes
// them: {key}.jpg + {key}.txt + {key}.json) or out of a JSONL chunk, and writing deterministic
// tars (fixed mtime, uid, gid, mode and owner names; entries in the order written).
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import tar from 'tar-stream';
import { IMAGE_EXTENSIONS, isImageExtension } from '../../runtime/preprocess/imageExtensions.js';
import type { ShardSource } from './inputs.js';

/**
 * Extensions (without the dot) a sample's image may have, in the order one is picked when a sample
 * has several: those blip run takes in a folder (runtime/preprocess/imageExtensions.ts).
 */
const SAMPLE_IMAGE_EXTENSIONS = IMAGE_EXTENSIONS.map((e) => e.slice(1));
/** "a .png, .apng, ... or .avif file", for messages. */
export const IMAGE_FILES = `a ${IMAGE_EXTENSIONS.slice(0, -1).join(', ')} or ${IMAGE_EXTENSIONS[IMAGE_EXTENSIONS.length - 1]} file`;
/**
 * Extensions of formats PIL reads and the decoder does not (BMP, ICO, the PNM family, TGA, PCX,
 * JPEG 2000, HEIC): a sample whose image is one of them is told so, not that it has no image.
 */
const UNSUPPORTED_IMAGE_EXTENSIONS = new Set(['bmp', 'dib', 'ico', 'ppm', 'pgm', 'pbm', 'pnm', 'tga', 'pcx', 'jp2', 'j2k', 'heic', 'heif']);

export interface InputSample {
  key: string;
  /** The image file: its name in the output shard and its bytes, untouched (`source`: where it was read, for messages). */
  image?: { name: string; bytes: Buffer; source?: string };
  /** The web text (`.txt`, or the JSONL `text` / `caption` field); undefined when missing. */
  text?: string;
  /** The `.json` metadata (or the JSONL record's other fields), passed through. */
  meta?: unknown;
  /** Why the sample cannot be used (set by the reader: e.g. a JSONL line that is not JSON). */
  error?: string;
}

/** A shard-level read failure (a truncated or malformed tar): samples read before it are kept. */
export class ShardReadError extends Error {
  override name = 'ShardReadError';
}

const utf8 = new TextDecoder('utf-8');
/** WebDataset decodes a .txt as UTF-8 strictly: text that is not UTF-8 is an error, not U+FFFD. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** WebDataset's key/extension split: the key is the path up to the first dot of the file name. */
export function splitKey(name: string): { key: string; ext: string } | undefined {
  const m = /^((?:.*\/|)[^./][^./]*)\.([^/]*)$/.exec(name);
  return m ? { key: m[1], ext: m[2] } : undefined;
}

function parseMeta(buf: Buffer): unknown {
  try {
    return JSON.parse(utf8.decode(buf));
  } catch {
    return { unparsed: utf8.decode(buf) };
  }
}

/** `files`: the sample's files by field, the extension lower-cased (WebDataset's field names). */
function toSample(key: string, files: Map<string, { name: string; bytes: Buffer }>): InputSample {
  const s: InputSample = { key };
  for (const ext of SAMPLE_IMAGE_EXTENSIONS) {
    s.image = files.get(ext);
    if (s.image) break;
  }
  const txt = files.get('txt');
  if (txt) {
    try {
      s.text = strictUtf8.decode(txt.bytes);
    } catch {
      s.error = `${txt.name} is not UTF-8 text`;
    }
  }
  const json = files.get('json');
  if (json) s.meta = parseMeta(json.bytes);
  const unsupported = s.image ? undefined : [...files].find(([e]) => UNSUPPORTED_IMAGE_EXTENSIONS.has(e))?.[1];
  // a.b.jpg is sample a's "b.jpg" file: say so, the one surprise of WebDataset's rule
  const dotted = [...files].filter(([e]) => e.includes('.'));
  if (unsupported) s.error ??= `${unsupported.name}: not a supported image format (${IMAGE_FILES} expected)`;
  else if (!s.image && dotted.length) {
    const one = dotted.length === 1;
    s.error ??= `no image: the key is the file name up to its first dot (WebDataset's rule), so ${dotted.map(([, f]) => f.name).join(', ')} ${one ? 'is' : 'are'} sample ${key}'s ${dotted.map(([e]) => `"${e}"`).join(', ')} ${one ? 'file' : 'files'}; name ${one ? 'it' : 'them'} without a dot in the key`;
  } else if (!s.image && s.text === undefined && s.meta === undefined) {
    s.error = `no image, text or metadata (files: ${[...files.values()].map((f) => f.name).join(', ')})`;
  }
  return s;
}

/** Samples of a WebDataset tar, in order. `onBytes` gets the number of input bytes consumed. */
export async function* readTarSamples(path: string, onBytes: (n: number) => void): AsyncGenerator<InputSample> {
  const extract = tar.extract();
  const src = createReadStream(path);
  let srcError: Error | undefined;
  let read = 0;
  src.on('data', (b) => {
    read += b.length;
    onBytes(b.length);
  });
  src.on('error', (e) => {
    srcError = e;
    extract.destroy(e);
  });
  src.pipe(extract);
  let key: string | undefined;
  let files = new Map<string, { name: string; bytes: Buffer }>();
  const seen = new Set<string>();
  // why the current sample cannot be used: its key came earlier, or a field (extension, any case) repeats in it
  let duplicate: string | undefined;
  let reading: string | undefined; // the file whose body is being read
  const finish = (k: string): InputSample => (duplicate ? { key: k, error: duplicate } : toSample(k, files));
  // where the last entry (header and padded body) ends, and its name: what follows must be the end marker
  let entriesEnd = 0;
  let lastEntry: string | undefined;
  try {
    for await (const entry of extract) {
      const h = entry.header;
      // (tar-stream's offset of the entry's own header, after any pax or GNU long-name header)
      entriesEnd = (entry as typeof entry & { offset: number }).offset + 512 + Math.ceil((h.size ?? 0) / 512) * 512;
      lastEntry = h.name;
      const split = h.type === 'file' || h.type === 'contiguous-file' ? splitKey(h.name) : undefined;
      // A new key ends the sample before it, which is complete: yield it before this entry's body
      // is read, so that a tar breaking off in the body blames this entry's sample.
      if (split && split.key !== key) {
        if (key !== undefined) yield finish(key);
        duplicate = seen.has(split.key) ? `key ${split.key} is used by an earlier sample of the shard; keys must be unique` : undefined;
        seen.add(split.key);
        key = split.key;
        files = new Map();
      }
      reading = h.name;
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      reading = undefined;
      if (!split) continue; // not a file, or no extension: not part of a sample
      // WebDataset's field is the extension lower-cased (group_by_keys, lcase=True), and it refuses a
      // field twice in a sample: a.JPG and a.jpg are both sample a's "jpg", neither is picked
      const field = split.ext.toLowerCase();
      const earlier = files.get(field);
      if (earlier) duplicate ??= earlier.name === h.name ? `${h.name} appears twice in the sample` : `${earlier.name} and ${h.name} are both the sample's "${field}" file: WebDataset lower-cases extensions and refuses a file twice in a sample`;
      else files.set(field, { name: h.name, bytes: Buffer.concat(chunks) });
    }
    if (read === 0) throw new Error('the file is empty, not a tar archive');
    // Every tar writer ends an archive with two zero blocks (GNU tar, Python's tarfile, tar-stream;
    // GNU tar pads to its record size). Without one, the file was cut off at an entry boundary and
    // samples, or files of the last one, may be missing: GNU tar and Python's tarfile (WebDataset's
    // reader) accept that silently, and tar-stream skips zero blocks, so it is checked here. One zero
    // block is enough (GNU tar warns of "a lone zero block" and reads on): what follows it is padding.
    if (read - entriesEnd < 512) {
      throw new Error(`the archive ends${lastEntry !== undefined ? ` after ${lastEntry}` : ''} without the zero blocks that end a tar: the file was cut off`);
    }
  } catch (e) {
    if (srcError) throw srcError; // an I/O error: let the caller retry the shard
    // The sample being read when the archive broke off may be incomplete: report it, don't use it.
    const why = (e as Error).message;
    if (key !== undefined) yield { key, error: reading !== undefined ? `the shard breaks off in ${reading} (${why})` : `the shard breaks off after this sample, which may have had more files (${why})` };
    throw new ShardReadError(`tar: ${why}`);
  } finally {
    src.destroy();
    extract.destroy();
  }
  if (key !== undefined) yield finish(key);
}

/**
 * Samples of a JSONL chunk: one `{"image": path, "text": ...}` object a line (`caption` is read
 * when `text` is absent); relative image paths are relative to the JSONL file. The key is the
 * 0-based line number, 9 digits.
 */
export async function* readJsonlSamples(source: Extract<ShardSource, { kind: 'jsonl' }>, onBytes: (n: number) => void): AsyncGenerator<InputSample> {
  let line = source.firstLine;
  let rest = '';
  const stream = source.end > source.start ? createReadStream(source.path, { start: source.start, end: source.end - 1 }) : undefined;
  const dir = dirname(source.path);
  const handle = async (text: string, n: number): Promise<InputSample | undefined> => {
    const key = String(n).padStart(9, '0');
    const t = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (t.trim() === '') return undefined;
    let rec: unknown;
    try {
      rec = JSON.parse(t);
    } catch {
      return { key, error: `line ${n + 1} is not valid JSON` };
    }
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) return { key, error: `line ${n + 1} is not a JSON object` };
    const { image, text: txt, caption, ...meta } = rec as Record<string, unknown>;
    const s: InputSample = { key };
    const web = txt ?? caption;
    if (typeof web === 'string') s.text = web;
    else if (web !== undefined && web !== null) {
      s.error = `line ${n + 1}: "${txt !== undefined ? 'text' : 'caption'}" is ${Array.isArray(web) ? 'an array' : typeof web}, not a string`;
      return s;
    }
    if (Object.keys(meta).length) s.meta = meta;
    if (typeof image !== 'string' || image === '') {
      s.error = `line ${n + 1} has no "image" path`;
      return s;
    }
    // (any scheme but file: a Windows path such as C:\x has no "//")
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(image)?.[1];
    if (scheme !== undefined && scheme.toLowerCase() !== 'file') {
      s.error = `line ${n + 1}: "image" is a URL (${image}): CapFilt reads image files and does not download them; download the images first (img2dataset, say) and give their paths`;
      return s;
    }
    let path: string;
    if (scheme !== undefined) {
      // a file:// URL names its file (percent-escapes and all), never a path beside the JSONL file
      try {
        path = fileURLToPath(image);
      } catch (e) {
        s.error = `line ${n + 1}: "image" ${image} is not a file URL this system can open: ${(e as Error).message}`;
        return s;
      }
    } else path = isAbsolute(image) ? image : resolve(dir, image);
    const relative = scheme === undefined && !isAbsolute(image);
    try {
      const bytes = await readFile(path);
      const ext = isImageExtension(extname(path)) ? extname(path).slice(1).toLowerCase() : 'img';
      s.image = { name: `${key}.${ext}`, bytes, source: image };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : (code ?? (e as Error).message);
      // a relative path is read beside the JSONL file: say where, since that is what surprises
      s.error = `cannot read image ${image}${relative ? ` (${path}: relative paths are read from the JSONL file's folder)` : path === image ? '' : ` (${path})`}: ${why}`;
    }
    return s;
  };
  if (stream) {
    for await (const buf of stream as AsyncIterable<Buffer>) {
      onBytes(buf.length);
      const text = rest + utf8.decode(buf, { stream: true });
      const lines = text.split('\n');
      rest = lines.pop()!;
      for (const l of lines) {
        const s = await handle(l, line++);
        if (s) yield s;
      }
    }
  }
  rest += utf8.decode();
  if (rest !== '') {
    const s = await handle(rest, line++);
    if (s) yield s;
  }
}

export function readSamples(source: ShardSource, onBytes: (n: number) => void): AsyncGenerator<InputSample> {
  return source.kind === 'tar' ? readTarSamples(source.path, onBytes) : readJsonlSamples(source, onBytes);
}

/** A tar written with deterministic headers: same entries in, same bytes out. */
export class TarWriter {
  private readonly pack = tar.pack();
  private readonly done: Promise<void>;
  private failed: Error | undefined;

  constructor(readonly path: string) {
    this.done = pipeline(this.pack, createWriteStream(path));
    this.done.catch((e: Error) => {
      this.failed = e;
    });
  }

  add(name: string, bytes: Uint8Array): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return new Promise((res, rej) => {
      this.pack.entry(
        { name, size: buf.length, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: new Date(0), type: 'file' },
        buf,
        (err) => (err ? rej(err) : res()),
      );
    });
  }

  /** Finish the archive and flush it to disk (fsync). */
  async close(): Promise<void> {
    this.pack.finalize();
    await this.done;
    const fh = await open(this.path, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Stop writing and remove the file. */
  async abort(): Promise<void> {
    this.pack.destroy();
    await this.done.catch(() => undefined);
    await unlink(this.path).catch(() => undefined);
  }
}
