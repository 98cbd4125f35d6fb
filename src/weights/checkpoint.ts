// A HuggingFace checkpoint directory as users have it on disk:
//
//   config.json
//   model.safetensors                                   (single file), or
//   model.safetensors.index.json + model-0000k-of-0000n.safetensors   (sharded)
//   [tokenizer.json, tokenizer_config.json, special_tokens_map.json, vocab.txt, ...]
//   [preprocessor_config.json | processor_config.json, generation_config.json]
//
// Only headers are read when the directory is opened; tensors are read one at a time, on demand,
// so that compiling never holds more than the tensor being converted.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from './CheckpointError.js';
import { FLOAT_DTYPES, SafetensorsFile, toFloat32, type TensorInfo } from './safetensors.js';
import type { Scratch } from './Scratch.js';
import { isSystemError, systemErrorMeaning } from '../filesystem.js';
import { describeJsonError } from '../jsonSyntax.js';

export type JsonObject = Record<string, unknown>;

export class Checkpoint {
  readonly config: JsonObject;
  private readonly files: SafetensorsFile[] = [];
  private readonly where = new Map<string, SafetensorsFile>();
  /** sha256 of each tensor's raw bytes, recorded as tensors are read (for the content fingerprint). */
  private readonly digests = new Map<string, string>();
  private readonly configText: string;

  private constructor(readonly dir: string) {
    const configPath = configPathOf(dir);
    this.configText = readText(configPath);
    this.config = parseJsonObject(configPath, this.configText);

    try {
      this.openWeights();
      if (this.where.size === 0) {
        const why = this.files.length === 0 ? 'model.safetensors.index.json maps no tensor to a file' : this.files.length === 1 ? `${this.files[0]!.path} holds no tensors` : 'its safetensors files hold no tensors';
        throw new CheckpointError('BLIP4002', `${dir} has no weights: ${why}`, dir);
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private openWeights(): void {
    const dir = this.dir;
    const indexPath = join(dir, 'model.safetensors.index.json');
    const single = join(dir, 'model.safetensors');
    // the single file first where both are there, as transformers' from_pretrained looks
    if (existsSync(single)) this.add(SafetensorsFile.open(single));
    else if (existsSync(indexPath)) this.openSharded(indexPath);
    else {
      const names = readdirSync(dir);
      const st = names.filter((f) => f.endsWith('.safetensors')).sort();
      if (st.length === 1) this.add(SafetensorsFile.open(join(dir, st[0])));
      else if (st.length > 1) throw new CheckpointError('BLIP4006', `${dir} has ${st.length} .safetensors files but no model.safetensors.index.json saying which tensors each holds`, dir);
      else if (names.some((f) => f.endsWith('.bin') || f.endsWith('.pt') || f.endsWith('.pth'))) {
        throw new CheckpointError('BLIP4002', `${dir} holds PyTorch pickle weights only; save the model with safe_serialization=True (model.safetensors)`, dir);
      } else throw new CheckpointError('BLIP4002', `${dir} has no model.safetensors or model.safetensors.index.json`, dir);
    }
  }

  /** The checkpoint's config.json alone (no weights opened): a missing folder or file, unreadable or invalid JSON is BLIP4001. */
  static readConfig(dir: string): JsonObject {
    const configPath = configPathOf(dir);
    return parseJsonObject(configPath, readText(configPath));
  }

  static open(dir: string): Checkpoint {
    return new Checkpoint(dir);
  }

  private add(f: SafetensorsFile): void {
    this.files.push(f);
    for (const name of f.tensors.keys()) {
      const prev = this.where.get(name);
      if (prev) throw new CheckpointError('BLIP4006', `tensor "${name}" is stored twice, in ${prev.path} and ${f.path}`, f.path, name);
      this.where.set(name, f);
    }
  }

  private openSharded(indexPath: string): void {
    const index = parseJsonObject(indexPath, readText(indexPath));
    const map = index.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) {
      throw new CheckpointError('BLIP4006', `${indexPath}: no "weight_map" object`, indexPath);
    }
    const shards = new Map<string, string[]>();
    for (const [key, file] of Object.entries(map as Record<string, unknown>)) {
      // ('' and '.' would name the checkpoint folder itself, '..' the one above it)
      if (typeof file !== 'string' || file.includes('/') || file.includes('\\') || file === '' || file === '.' || file === '..') {
        throw new CheckpointError('BLIP4006', `${indexPath}: tensor "${key}" maps to ${JSON.stringify(file)}, not a file name in the directory`, indexPath, key);
      }
      shards.set(file, [...(shards.get(file) ?? []), key]);
    }
    for (const [file, keys] of [...shards].sort((a, b) => a[0].localeCompare(b[0]))) {
      const path = join(this.dir, file);
      if (!existsSync(path)) {
        throw new CheckpointError('BLIP4006', `missing shard ${path}: model.safetensors.index.json lists ${keys.length} tensors in it (e.g. "${keys[0]}")`, path, keys[0]);
      }
      const f = SafetensorsFile.open(path);
      this.add(f);
      for (const k of keys) {
        if (!f.tensors.has(k)) throw new CheckpointError('BLIP4006', `${path}: tensor "${k}" is listed in model.safetensors.index.json but not stored in this shard`, path, k);
      }
    }
  }

  /** Every tensor name, in sorted order. */
  keys(): string[] {
    return [...this.where.keys()].sort();
  }

  has(key: string): boolean {
    return this.where.has(key);
  }

  info(key: string): TensorInfo | undefined {
    return this.where.get(key)?.info(key);
  }

  shape(key: string): number[] | undefined {
    return this.info(key)?.shape;
  }

  /** Tensors read with NaN or infinite values, and how many of each: a corrupt checkpoint (the outputs would be NaN). */
  readonly nonFinite = new Map<string, { nan: number; infinite: number }>();

  /** Read one tensor as float32 (widening F16/BF16); in `scratch` memory if given. */
  readFloat32(key: string, scratch?: Scratch): Float32Array {
    const f = this.where.get(key);
    if (!f) throw new CheckpointError('BLIP4006', `${this.dir}: no tensor "${key}"`, this.dir, key);
    const t = f.info(key)!;
    if (!FLOAT_DTYPES.includes(t.dtype)) {
      throw new CheckpointError('BLIP4005', `${t.file}: tensor "${key}" has dtype ${t.dtype}; weights must be F32, F16 or BF16`, t.file, key);
    }
    const raw = f.readRaw(key, scratch);
    this.digests.set(key, createHash('sha256').update(t.dtype).update(JSON.stringify(t.shape)).update(raw).digest('hex'));
    const data = toFloat32(raw, t.dtype, scratch);
    // x * 0 is NaN only for NaN and the infinities: one cheap pass (~1 ns a value), a count only then
    let probe = 0;
    for (let i = 0; i < data.length; i++) probe += data[i] * 0;
    if (probe !== probe) {
      let nan = 0;
      let infinite = 0;
      for (let i = 0; i < data.length; i++) {
        const v = data[i]!;
        if (v !== v) nan++;
        else if (v === Infinity || v === -Infinity) infinite++;
      }
      this.nonFinite.set(key, { nan, infinite });
    }
    return data;
  }

  /** Dtypes present, with their tensor counts (for the summary). */
  dtypes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, f] of this.where) {
      const d = f.info(k)!.dtype;
      out[d] = (out[d] ?? 0) + 1;
    }
    return out;
  }

  /** Total bytes of the safetensors files. */
  get bytes(): number {
    return this.files.reduce((a, f) => a + f.size, 0);
  }

  get fileNames(): string[] {
    return this.files.map((f) => f.path);
  }

  /**
   * A content fingerprint: sha256 over config.json and, in key order, each tensor that was read
   * (name, dtype, shape, bytes). Computed from the reads the compile does anyway, so the checkpoint
   * is not read a second time; tensors no node consumes are not part of it.
   */
  fingerprint(): string {
    const h = createHash('sha256').update(this.configText);
    for (const k of [...this.digests.keys()].sort()) h.update(k).update('\0').update(this.digests.get(k)!);
    return h.digest('hex');
  }

  /** A JSON file of the checkpoint directory, or undefined when absent. */
  readJson(name: string): JsonObject | undefined {
    const p = join(this.dir, name);
    if (!existsSync(p)) return undefined;
    return parseJsonObject(p, readText(p));
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

/** `dir`/config.json, after checking that both exist (BLIP4001 otherwise). */
function configPathOf(dir: string): string {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new CheckpointError('BLIP4001', `checkpoint directory ${dir} does not exist or is not a directory`, dir);
  }
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new CheckpointError('BLIP4001', `${dir} has no config.json (a HuggingFace checkpoint directory is expected)`, configPath);
  return configPath;
}

/** A text file of the checkpoint; one that cannot be read (a folder, no permission) is BLIP4001 naming it. */
function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new CheckpointError('BLIP4001', `${path} cannot be read: ${isSystemError(e) ? systemErrorMeaning(e) : String(e)}`, path);
  }
}

function parseJsonObject(path: string, text: string): JsonObject {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError('BLIP4001', `${path} is not valid JSON (${describeJsonError(text, e)})`, path);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CheckpointError('BLIP4001', `${path} is not a JSON object`, path);
  return v as JsonObject;
}
