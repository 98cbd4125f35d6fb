// The output folder of a CapFilt run and how it is written safely:
//   DEST/<id>                          output shards, mirroring the input shards
//   DEST/stats.json, DEST/errors.jsonl  written once every planned shard is complete
//   DEST/_capfilt/run.json             the run's settings and plan; a re-run must match it
//   DEST/_capfilt/shards/<id>.json     per-shard stats and errors (merged into stats.json)
//   DEST/_capfilt/tmp/                 files being written (<name>.<host>-<pidns>.<pid>.<random>.tmp)
// Every file is written under tmp/ and renamed into place when complete; a shard counts as
// complete when its tar exists (its sidecar is renamed first), so a re-run skips it.
import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { BlipError } from '../cli/Command.js';
import { processExists } from '../lower/partialOutput.js';
import { isSystemError, makeDirectories, systemErrorMeaning } from '../filesystem.js';

export const META_DIR = '_capfilt';

/** Temp files untouched for this long are taken as left by a dead process on another machine. */
export const STALE_TEMP_MS = 6 * 3600 * 1000;

/**
 * Who writes a temp file: host name plus, on Linux, the PID namespace, so that a PID is only
 * checked for liveness by a process that sees the same PIDs (containers share host names at times).
 */
function machineTag(): string {
  let ns = '';
  try {
    ns = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? '';
  } catch {
    // not Linux: the host name alone
  }
  return (hostname() + (ns ? `-${ns}` : '')).replace(/[^A-Za-z0-9_-]/g, '_');
}
const MACHINE = machineTag();

/** The last code points of `s` that fit in `bytes` UTF-8 bytes. */
function tail(s: string, bytes: number): string {
  const cps = [...s];
  let out = '';
  for (let i = cps.length - 1; i >= 0 && Buffer.byteLength(cps[i] + out) <= bytes; i--) out = cps[i] + out;
  return out;
}

export class OutputDir {
  readonly root: string;
  constructor(root: string) {
    this.root = resolve(root);
  }

  get metaDir(): string {
    return join(this.root, META_DIR);
  }
  get tmpDir(): string {
    return join(this.metaDir, 'tmp');
  }
  shardPath(id: string): string {
    return join(this.root, ...id.split('/'));
  }
  sidecarPath(id: string): string {
    return join(this.metaDir, 'shards', ...`${id}.json`.split('/'));
  }

  /** BLIP5802 when the output path exists and is not a folder. */
  async checkNotFile(): Promise<void> {
    const st = await stat(this.root).catch(() => undefined);
    if (st && !st.isDirectory()) throw new BlipError('BLIP5802', `output ${this.root} exists and is not a folder`);
  }

  /** Create the folder (BLIP5802 when it is a file or cannot be created). */
  async prepare(): Promise<void> {
    await this.checkNotFile();
    try {
      makeDirectories(this.tmpDir);
      makeDirectories(join(this.metaDir, 'shards'));
    } catch (e) {
      throw new BlipError('BLIP5802', `cannot create output folder ${this.root}: ${isSystemError(e) ? systemErrorMeaning(e) : (e as Error).message}`);
    }
  }

  /** A fresh temp path for `name` (unique per process and call). */
  tempPath(name: string): string {
    let safe = name.replace(/[/\\]/g, '__');
    // a file name holds 255 bytes: a deep shard path keeps its end and a hash of the whole
    if (Buffer.byteLength(safe) > 120) safe = `${createHash('sha256').update(name).digest('hex').slice(0, 16)}~${tail(safe, 60)}`;
    return join(this.tmpDir, `${safe}.${MACHINE}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  }

  /** Move a finished temp file to `dest`, creating its folder. */
  async commit(tmp: string, dest: string): Promise<void> {
    makeDirectories(dirname(dest));
    await rename(tmp, dest);
  }

  /** Write `data` to `dest` through a temp file, fsynced, then renamed. */
  async writeAtomic(dest: string, data: string | Uint8Array): Promise<void> {
    const tmp = this.tempPath(dest.slice(this.root.length + 1));
    const fh = await open(tmp, 'w');
    try {
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await this.commit(tmp, dest);
    } catch (e) {
      // never a partial temp file left behind (a full disk: the write failed half way)
      await rm(tmp, { force: true }).catch(() => undefined);
      throw e;
    }
  }

  async isComplete(id: string): Promise<boolean> {
    const [a, b] = await Promise.all([stat(this.shardPath(id)).catch(() => undefined), stat(this.sidecarPath(id)).catch(() => undefined)]);
    return !!a?.isFile() && !!b?.isFile();
  }

  async readJson<T>(path: string): Promise<T | undefined> {
    try {
      return JSON.parse(await readFile(path, 'utf8')) as T;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /**
   * Remove temp files that no running process will finish: those of this machine whose process
   * is gone, and any not modified for STALE_TEMP_MS (left by a machine that went away).
   */
  async removeDeadTemps(): Promise<number> {
    let n = 0;
    for (const name of await readdir(this.tmpDir).catch(() => [] as string[])) {
      const m = /\.([A-Za-z0-9_-]+)\.(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name);
      if (!m) continue;
      const p = join(this.tmpDir, name);
      let dead = false;
      if (m[1] === MACHINE && Number(m[2]) !== process.pid) dead = !processExists(Number(m[2]));
      if (!dead) {
        const st = await stat(p).catch(() => undefined);
        dead = !!st && Date.now() - st.mtimeMs > STALE_TEMP_MS;
      }
      if (dead && (await unlink(p).then(() => true, () => false))) n++;
    }
    return n;
  }
}

