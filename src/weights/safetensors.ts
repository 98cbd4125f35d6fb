// A safetensors reader that never holds more than one tensor in memory.
//
// Layout (https://github.com/huggingface/safetensors#format):
//   u64 little-endian N | N bytes of JSON header | data
// The header maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to
// the start of the data), plus an optional "__metadata__" of string → string. Everything in the
// header is checked against the file size before any tensor is read, so a corrupt or truncated file
// fails at open with a message naming the file and the tensor, not with a garbage tensor later.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { describeJsonError } from '../jsonSyntax.js';
import { isSystemError, systemErrorMeaning } from '../filesystem.js';
import { bfloat16ToFloat32, float16ToFloat32 } from './float16.js';
import { CheckpointError } from './CheckpointError.js';
import type { Scratch } from './Scratch.js';

/** Bytes per element of every dtype the safetensors format defines. */
export const DTYPE_SIZE: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** Dtypes whose tensors can be read as float32 weights. */
export const FLOAT_DTYPES = ['F32', 'F16', 'BF16'];

/** The header is JSON text; anything larger than this is not a real header. */
const MAX_HEADER = 100 * 1024 * 1024;
/** Positioned reads are chunked below Node's 2 GiB limit per call. */
const CHUNK = 1 << 30;
/** Files kept open for reading tensors, least recently used first; more are closed as others open. */
const MAX_OPEN = 8;
const openFiles = new Map<SafetensorsFile, number>();

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
  file: string;
}

export class SafetensorsFile {
  readonly tensors = new Map<string, TensorInfo>();
  readonly metadata: Record<string, string> = {};
  /** The raw header bytes (length prefix + JSON), for fingerprinting. */
  readonly header: Buffer;
  readonly size: number;
  /**
   * What a reopen must find again: the modification time (with `size`). Not the device and inode:
   * some mounts number inodes per lookup (FUSE without use_ino once the kernel forgets the inode,
   * SMB with noserverino), so every reopen of an unchanged shard (its first tensor read, open()
   * having closed it after the header, and again past MAX_OPEN shards) would be refused; and a shard
   * rewritten in place keeps its inode. A file put in its place (copied,
   * downloaded, moved there) has another mtime unless one is deliberately carried over with the
   * same size, which is left undetected.
   */
  private readonly mtimeNs: bigint;
  /** The inode first opened, only to say whether a changed file was replaced or rewritten. */
  private readonly ino: bigint;
  private closed = false;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    const st = fstatSync(fd, { bigint: true });
    this.size = Number(st.size);
    this.mtimeNs = st.mtimeNs;
    this.ino = st.ino;
    const corrupt = (why: string, tensor?: string): never => {
      throw new CheckpointError('BLIP4003', `${path}: corrupt safetensors header: ${why}`, path, tensor);
    };
    if (this.size < 8) corrupt(`the file is ${this.size} bytes long, shorter than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    readFully(fd, lenBuf, 0, path);
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER)) corrupt(`header length ${n} is implausibly large (the file is not safetensors, or is damaged)`);
    const headerLen = Number(n);
    if (8 + headerLen > this.size) {
      throw new CheckpointError('BLIP4004', `${path}: truncated safetensors file: the header says ${headerLen} bytes of JSON but the file has ${this.size - 8} after the length`, path);
    }
    const json = Buffer.alloc(headerLen);
    readFully(fd, json, 8, path);
    this.header = Buffer.concat([lenBuf, json]);
    let parsed: unknown;
    // (decoded leniently, bytes that are not UTF-8 would become U+FFFD: a mangled tensor name
    // reported as missing, or metadata silently changed)
    const bad = firstInvalidUtf8(json);
    if (bad >= 0) corrupt(`not UTF-8 (byte ${8 + bad} of the file)`);
    const headerText = json.toString('utf8');
    try {
      parsed = JSON.parse(headerText);
    } catch (e) {
      corrupt(`the header is not valid JSON (${describeJsonError(headerText, e)})`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) corrupt('the header is not a JSON object');
    const dataStart = 8 + headerLen;
    const dataSize = this.size - dataStart;
    const ranges: Array<[number, number, string]> = [];
    let maxEnd = 0;
    for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (typeof entry !== 'object' || entry === null) corrupt('"__metadata__" is not an object');
        for (const [k, v] of Object.entries(entry as Record<string, unknown>)) if (typeof v === 'string') this.metadata[k] = v;
        continue;
      }
      if (typeof entry !== 'object' || entry === null) corrupt(`entry "${name}" is not an object`, name);
      const { dtype, shape, data_offsets } = entry as Record<string, unknown>;
      if (typeof dtype !== 'string') corrupt(`tensor "${name}" has no dtype`, name);
      const itemSize = DTYPE_SIZE[dtype as string];
      if (!itemSize) corrupt(`tensor "${name}" has unknown dtype "${dtype}"`, name);
      if (shape === undefined) corrupt(`tensor "${name}" has no shape`, name);
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) corrupt(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`, name);
      if (data_offsets === undefined) corrupt(`tensor "${name}" has no data_offsets`, name);
      if (!Array.isArray(data_offsets) || data_offsets.length !== 2 || !data_offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
        corrupt(`tensor "${name}" has invalid data_offsets ${JSON.stringify(data_offsets)}`, name);
      }
      const [b, e] = data_offsets as number[];
      const numel = (shape as number[]).reduce((a, d) => a * d, 1);
      if (e < b) corrupt(`tensor "${name}" has data_offsets [${b}, ${e}] that end before they begin`, name);
      if (e - b !== numel * itemSize) {
        corrupt(`tensor "${name}" is ${dtype} of shape [${shape}] (${numel * itemSize} bytes) but its data_offsets span ${e - b} bytes`, name);
      }
      ranges.push([b, e, name]);
      maxEnd = Math.max(maxEnd, e);
      this.tensors.set(name, { name, dtype: dtype as string, shape: shape as number[], begin: dataStart + b, end: dataStart + e, file: path });
    }
    // Tensors must not overlap (the format also forbids holes; a hole is harmless, so it is not an error).
    ranges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    for (let i = 1; i < ranges.length; i++) {
      if (ranges[i][0] < ranges[i - 1][1]) corrupt(`tensors "${ranges[i - 1][2]}" and "${ranges[i][2]}" overlap`, ranges[i][2]);
    }
    if (maxEnd > dataSize) {
      const last = ranges.filter((r) => r[1] > dataSize)[0];
      throw new CheckpointError(
        'BLIP4004',
        `${path}: truncated safetensors file: tensor "${last[2]}" ends at byte ${dataStart + last[1]} but the file has ${this.size} bytes`,
        path,
        last[2],
      );
    }
  }

  /** Open and validate a safetensors file (the header only is read). */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
      // (a folder opens for reading; only its first read would fail, without naming it)
      if (fstatSync(fd).isDirectory()) {
        closeSync(fd);
        throw Object.assign(new Error('is a folder'), { code: 'EISDIR', syscall: 'open' });
      }
    } catch (e) {
      throw new CheckpointError('BLIP4001', `${path} cannot be read: ${isSystemError(e) ? systemErrorMeaning(e) : (e as Error).message}`, path);
    }
    try {
      return new SafetensorsFile(path, fd);
    } finally {
      // only the header is read here: a checkpoint of hundreds of shards must not hold a
      // descriptor per shard for the whole compile (EMFILE under a low `ulimit -n`)
      closeSync(fd);
    }
  }

  /** A descriptor for reading tensors: one of the few kept open, or opened again (the same file). */
  private descriptor(): number {
    const held = openFiles.get(this);
    if (held !== undefined) {
      openFiles.delete(this); // (re-inserted: most recently used last)
      openFiles.set(this, held);
      return held;
    }
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch (e) {
      throw new CheckpointError('BLIP4001', `${this.path} cannot be read: ${isSystemError(e) ? systemErrorMeaning(e) : (e as Error).message}`, this.path);
    }
    const st = fstatSync(fd, { bigint: true });
    if (st.mtimeNs !== this.mtimeNs || Number(st.size) !== this.size) {
      closeSync(fd);
      const how = Number(st.size) !== this.size ? `it was ${this.size} bytes, it is ${st.size}` : st.ino !== this.ino ? 'it was replaced by another file' : 'it was rewritten in place';
      throw new CheckpointError('BLIP4004', `${this.path} changed while it was being read (${how}): compile again once nothing writes to it`, this.path);
    }
    openFiles.set(this, fd);
    for (const [f, old] of openFiles) {
      if (openFiles.size <= MAX_OPEN) break;
      closeSync(old);
      openFiles.delete(f);
    }
    return fd;
  }

  info(name: string): TensorInfo | undefined {
    return this.tensors.get(name);
  }

  /**
   * The tensor's bytes as stored (little-endian), in a buffer of exactly its size: fresh, or from
   * `scratch` (valid until its next reset).
   */
  readRaw(name: string, scratch?: Scratch): Uint8Array {
    const t = this.tensors.get(name);
    if (!t) throw new CheckpointError('BLIP4006', `${this.path}: no tensor "${name}"`, this.path, name);
    if (this.closed) throw new Error(`${this.path} is closed`);
    // 8-byte aligned backing store so that the bytes can be viewed as any typed array.
    const out = scratch ? scratch.bytes(t.end - t.begin) : new Uint8Array(new ArrayBuffer(t.end - t.begin));
    readFully(this.descriptor(), out, t.begin, this.path);
    return out;
  }

  /** The tensor widened (F16, BF16) or viewed (F32) as float32; in `scratch` memory if given. */
  readFloat32(name: string, scratch?: Scratch): Float32Array {
    const t = this.tensors.get(name);
    if (t && !FLOAT_DTYPES.includes(t.dtype)) {
      throw new CheckpointError('BLIP4005', `${this.path}: tensor "${name}" has dtype ${t.dtype}; weights must be F32, F16 or BF16`, this.path, name);
    }
    const raw = this.readRaw(name, scratch);
    return toFloat32(raw, t!.dtype, scratch);
  }

  close(): void {
    const fd = openFiles.get(this);
    if (fd !== undefined) closeSync(fd);
    openFiles.delete(this);
    this.closed = true;
  }
}

/** Interpret little-endian bytes of a float dtype as float32 values (widened into `scratch` if given). */
export function toFloat32(raw: Uint8Array, dtype: string, scratch?: Scratch): Float32Array {
  switch (dtype) {
    case 'F32':
      return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    case 'F16':
      return float16ToFloat32(new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2), scratch?.float32(raw.byteLength / 2));
    case 'BF16':
      return bfloat16ToFloat32(new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2), scratch?.float32(raw.byteLength / 2));
    default:
      throw new CheckpointError('BLIP4005', `dtype ${dtype} cannot be read as float weights (F32, F16 or BF16 expected)`);
  }
}

/** Index of the first byte of `b` that does not begin a well-formed UTF-8 sequence, or -1. */
export function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    // the lead byte gives the length and the range of the first continuation byte (no overlongs,
    // no surrogates, nothing past U+10FFFF)
    const [n, lo, hi] = c >= 0xc2 && c <= 0xdf ? [1, 0x80, 0xbf] : c === 0xe0 ? [2, 0xa0, 0xbf] : c === 0xed ? [2, 0x80, 0x9f] : c >= 0xe1 && c <= 0xef ? [2, 0x80, 0xbf] : c === 0xf0 ? [3, 0x90, 0xbf] : c === 0xf4 ? [3, 0x80, 0x8f] : c >= 0xf1 && c <= 0xf3 ? [3, 0x80, 0xbf] : [0, 0, 0];
    if (n === 0 || i + n >= b.length) return i; // (not a lead byte, or cut short by the header's end)
    if (b[i + 1]! < lo || b[i + 1]! > hi) return i;
    for (let k = 2; k <= n; k++) if ((b[i + k]! & 0xc0) !== 0x80) return i;
    i += n + 1;
  }
  return -1;
}

function readFully(fd: number, buf: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, Math.min(CHUNK, buf.length - done), position + done);
    if (n === 0) throw new CheckpointError('BLIP4004', `${path}: truncated safetensors file: unexpected end of file at byte ${position + done}`, path);
    done += n;
  }
}

/**
 * Serialise tensors to safetensors bytes (for tests and tools). Tensors are written in the order
 * given; `data` holds the raw little-endian bytes of each.
 */
export function encodeSafetensors(
  tensors: Array<{ name: string; dtype: string; shape: number[]; data: Uint8Array }>,
  metadata?: Record<string, string>,
): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so that data starts 8-byte aligned, as the reference writer does.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json, 'utf8'), ...tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))]);
}
