// CapFilt inputs: `--input` values (a folder, a glob, a brace pattern such as
// data/{00000..00099}.tar, a .tar shard or a .jsonl file) expanded to a sorted, deterministic
// plan of shard tasks, each named by the output shard it writes. Every process of a run (single,
// `--shard I/N`, enqueue) computes the same plan from the same inputs.
import { createReadStream } from 'node:fs';
import { access, constants, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { BlipError, UsageError } from '../cli/Command.js';

export type ShardSource =
  | { kind: 'tar'; path: string; bytes: number }
  /** Lines [firstLine, firstLine + lines) of a JSONL file: bytes [start, end). */
  | { kind: 'jsonl'; path: string; start: number; end: number; firstLine: number; lines: number };

export interface ShardTask {
  /** The output shard's path relative to the output folder, with '/' separators (e.g. "00003.tar"). */
  id: string;
  source: ShardSource;
}

/** Bytes of input a task reads (the unit of progress and ETA). */
export function taskWeight(t: ShardTask): number {
  return t.source.kind === 'tar' ? t.source.bytes : t.source.end - t.source.start;
}

const MAX_EXPANSION = 1_000_000;

/** Split `s` at top-level commas (commas not inside nested braces). */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let last = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '{') depth++;
    else if (c === '}') depth = Math.max(0, depth - 1);
    else if (c === ',' && depth === 0) {
      parts.push(s.slice(last, i));
      last = i + 1;
    }
  }
  parts.push(s.slice(last));
  return parts;
}

/**
 * Brace expansion as the shell and WebDataset do it: `{a,b}` alternatives and `{000..099}`
 * numeric ranges (zero-padded when an end is). A brace group that is neither stays literal.
 */
export function expandBraces(pattern: string): string[] {
  const out: string[] = [];
  const rec = (p: string, from: number): void => {
    let depth = 0;
    let open = -1;
    for (let i = from; i < p.length; i++) {
      const c = p[i];
      if (c === '{') {
        if (depth === 0) open = i;
        depth++;
      } else if (c === '}' && depth > 0) {
        depth--;
        if (depth !== 0) continue;
        const body = p.slice(open + 1, i);
        const head = p.slice(0, open);
        const tail = p.slice(i + 1);
        let items: string[] | undefined;
        const alts = splitTopLevel(body);
        if (alts.length > 1) items = alts;
        else {
          const m = /^(-?\d+)\.\.(-?\d+)(?:\.\.(\d+))?$/.exec(body);
          if (m) {
            const [a, b] = [Number(m[1]), Number(m[2])];
            const step = m[3] ? Math.max(1, Number(m[3])) : 1;
            const padded = /^-?0\d/.test(m[1]) || /^-?0\d/.test(m[2]);
            const width = padded ? Math.max(m[1].replace('-', '').length, m[2].replace('-', '').length) : 0;
            if (Math.abs(b - a) / step + 1 > MAX_EXPANSION) throw new UsageError(`the brace range {${body}} in '${pattern}' expands to more than ${MAX_EXPANSION} names`);
            items = [];
            const dir = a <= b ? 1 : -1;
            for (let v = a; dir > 0 ? v <= b : v >= b; v += dir * step) {
              const s = String(Math.abs(v)).padStart(width, '0');
              items.push(v < 0 ? `-${s}` : s);
            }
          }
        }
        if (!items) {
          // Not an expansion: leave it literal and expand what follows it.
          rec(p, i + 1);
          return;
        }
        for (const it of items) {
          rec(head + it + tail, 0);
          if (out.length > MAX_EXPANSION) throw new UsageError(`'${pattern}' expands to more than ${MAX_EXPANSION} names`);
        }
        return;
      }
    }
    out.push(p);
  };
  rec(pattern, 0);
  return out;
}

const hasGlob = (segment: string): boolean => /[*?[]/.test(segment);
const hasPattern = (p: string): boolean => /[*?[{]/.test(p);

/** A glob segment (`*`, `?`, `[...]`) as a regular expression; `*` and `?` never match '/' or a leading dot. */
function segmentRegex(seg: string): RegExp {
  let re = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const close = seg.indexOf(']', i + 2);
      if (close < 0) re += '\\[';
      else {
        let cls = seg.slice(i + 1, close);
        if (cls.startsWith('!')) cls = '^' + cls.slice(1);
        re += `[${cls.replace(/\\/g, '\\\\')}]`;
        i = close;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^(?!\\.)${re}$`);
}

/**
 * What a folder entry is, links followed: a folder, a regular file, something else (a pipe, a
 * socket, a device: reading one may block forever), or nothing (a dangling link).
 */
type EntryKind = 'dir' | 'file' | 'other' | 'missing';

async function listDir(dir: string): Promise<Array<{ name: string; kind: EntryKind; dir: boolean }>> {
  try {
    const ents = await readdir(dir, { withFileTypes: true });
    const out: Array<{ name: string; kind: EntryKind; dir: boolean }> = [];
    for (const e of ents) {
      let kind: EntryKind = e.isDirectory() ? 'dir' : e.isFile() ? 'file' : 'other';
      if (e.isSymbolicLink()) {
        const st = await stat(join(dir, e.name)).catch(() => undefined);
        kind = !st ? 'missing' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
      }
      out.push({ name: e.name, kind, dir: kind === 'dir' });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch {
    return [];
  }
}

/** Expand one glob pattern (no braces) to existing paths, sorted. Supports `*`, `?`, `[...]` and `**`. */
export async function expandGlob(pattern: string): Promise<string[]> {
  const segs = pattern.split('/');
  const first = segs.findIndex(hasGlob);
  if (first < 0) return [pattern];
  const base = segs.slice(0, first).join('/') || (pattern.startsWith('/') ? '/' : '.');
  const out: string[] = [];
  const entered = new Set<string>(); // folders `**` went into (real paths): a link loop ends there
  const walk = async (dir: string, rest: string[]): Promise<void> => {
    if (rest.length === 0) {
      out.push(dir);
      return;
    }
    const [seg, ...tail] = rest;
    if (seg === '**') {
      const key = `${rest.length}\0${await realpath(dir).catch(() => dir)}`;
      if (entered.has(key)) return;
      entered.add(key);
      await walk(dir, tail);
      for (const e of await listDir(dir)) if (e.dir && !e.name.startsWith('.')) await walk(join(dir, e.name), rest);
      return;
    }
    if (!hasGlob(seg)) {
      const p = join(dir, seg);
      if (tail.length === 0) {
        if (await stat(p).catch(() => undefined)) out.push(p);
      } else await walk(p, tail);
      return;
    }
    const re = segmentRegex(seg);
    for (const e of await listDir(dir)) {
      if (!re.test(e.name)) continue;
      if (tail.length === 0) out.push(join(dir, e.name));
      else if (e.dir) await walk(join(dir, e.name), tail);
    }
  };
  await walk(base, segs.slice(first));
  return [...new Set(out)].sort();
}

/** The folder output names are relative to: the pattern's part before its first wildcard or brace. */
function patternBase(pattern: string): string {
  const segs = pattern.split('/');
  const first = segs.findIndex((s) => hasPattern(s));
  const base = segs.slice(0, first).join('/');
  return base || (pattern.startsWith('/') ? '/' : '.');
}

const isInside = (child: string, parent: string): boolean => {
  const r = relative(parent, child);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

/** How many skipped names a note lists before "and N more". */
const NOTE_NAMES = 8;

/**
 * The .tar files under `dir`. Only regular files (links followed): a pipe, socket or device named
 * *.tar would block the run or read forever, so it is skipped, with a note naming it, as blip run
 * skips one named like an image in a folder.
 */
async function walkTars(dir: string, exclude: string, note?: (line: string) => void): Promise<string[]> {
  const out: string[] = [];
  const entered = new Set<string>(); // real paths: a folder reached twice through links is read once
  const rec = async (d: string): Promise<void> => {
    if (isInside(resolve(d), exclude)) return;
    const real = await realpath(d).catch(() => resolve(d));
    if (entered.has(real) || isInside(real, exclude)) return;
    entered.add(real);
    const skipped: string[] = [];
    for (const e of await listDir(d)) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.kind === 'dir') await rec(p);
      else if (inputKind(e.name) !== 'tar') continue;
      else if (e.kind === 'other') skipped.push(e.name);
      else out.push(p); // (a dangling link too: planShards says what it is)
    }
    if (skipped.length) {
      const listed = skipped.slice(0, NOTE_NAMES).join(', ') + (skipped.length > NOTE_NAMES ? `, and ${skipped.length - NOTE_NAMES} more` : '');
      const one = skipped.length === 1;
      note?.(`note: skipped ${skipped.length} ${one ? 'entry' : 'entries'} named *.tar in ${d} that ${one ? 'is not a regular file' : 'are not regular files'} (a pipe, socket or device): ${listed}`);
    }
  };
  await rec(dir);
  return out;
}

const toPosix = (p: string): string => p.split(sep).join('/');

/** Where each JSONL chunk of `lines` lines starts and ends, in bytes, and its first line. */
async function jsonlChunks(path: string, perShard: number): Promise<Array<{ start: number; end: number; firstLine: number; lines: number }>> {
  const chunks: Array<{ start: number; end: number; firstLine: number; lines: number }> = [];
  let pos = 0;
  let line = 0;
  let chunkStart = 0;
  let chunkFirst = 0;
  let lastByte = 0x0a;
  for await (const buf of createReadStream(path) as AsyncIterable<Buffer>) {
    let i = buf.indexOf(0x0a);
    while (i >= 0) {
      line++;
      if (line - chunkFirst === perShard) {
        const end = pos + i + 1;
        chunks.push({ start: chunkStart, end, firstLine: chunkFirst, lines: perShard });
        chunkStart = end;
        chunkFirst = line;
      }
      i = buf.indexOf(0x0a, i + 1);
    }
    pos += buf.length;
    if (buf.length) lastByte = buf[buf.length - 1];
  }
  const total = line + (lastByte === 0x0a ? 0 : 1);
  if (pos > chunkStart) chunks.push({ start: chunkStart, end: pos, firstLine: chunkFirst, lines: total - chunkFirst });
  return chunks;
}

export interface PlanOptions {
  /** The output folder: never read as input (a folder input may contain it). */
  output: string;
  /** JSONL inputs are cut into output shards of this many lines. */
  samplesPerShard: number;
  /** Gets a line about what a folder holds that is skipped (a pipe named *.tar, say). */
  note?: (line: string) => void;
}

/** What an input file is by its extension, in any case (`.TAR` too, as blip run and WebDataset take `.JPG`). */
function inputKind(p: string): 'tar' | 'jsonl' | undefined {
  if (/\.tar$/i.test(p)) return 'tar';
  if (/\.(jsonl|ndjson)$/i.test(p)) return 'jsonl';
  return undefined;
}

/** "is a link to T, which does not exist" when `path` is a link that `e` (from following it) says leads nowhere. */
async function brokenLink(path: string, e: NodeJS.ErrnoException): Promise<string | undefined> {
  if (e.code !== 'ENOENT' && e.code !== 'ELOOP') return undefined;
  const to = await readlink(path).catch(() => undefined);
  if (to === undefined) return undefined;
  return e.code === 'ENOENT' ? `is a link to ${to}, which does not exist` : `is a link to ${to}, in a loop of links that never reaches a file`;
}

/**
 * Expand `--input` values into the run's shard plan, sorted by output name. Throws BlipError
 * BLIP5801 for an input that does not exist, cannot be read, matches nothing, or collides with
 * another input on an output name.
 */
export async function planShards(inputs: string[], opts: PlanOptions): Promise<ShardTask[]> {
  const output = resolve(opts.output);
  const found: Array<{ path: string; base: string }> = [];
  for (const input of inputs) {
    const patterns = expandBraces(input);
    const isPattern = hasPattern(input);
    const base = patternBase(input);
    for (const p of patterns) {
      const paths = hasGlob(p) ? await expandGlob(p) : [p];
      if (paths.length === 0) {
        if (patterns.length === 1) throw new BlipError('BLIP5801', `input '${input}' matches no file`);
        continue;
      }
      for (const path of paths) {
        const st = await stat(path).catch((e: NodeJS.ErrnoException) => e);
        if (st instanceof Error) {
          const link = await brokenLink(path, st);
          throw new BlipError('BLIP5801', link ? `input ${path} ${link}` : st.code === 'ENOENT' ? `input ${path} does not exist` : `cannot read input ${path}: ${st.code ?? st.message}`);
        }
        if (st.isDirectory()) {
          if (!isPattern && isInside(resolve(path), output)) throw new BlipError('BLIP5801', `input folder ${path} is the output folder or inside it: CapFilt never reads its own output; give another --output`);
          const tars = await walkTars(path, output, opts.note);
          if (tars.length === 0 && !isPattern) throw new BlipError('BLIP5801', `input folder ${path} has no .tar shards`);
          for (const t of tars) found.push({ path: t, base: isPattern ? base : path });
        } else if (st.isFile()) {
          if (!inputKind(path)) {
            if (isPattern) continue;
            throw new BlipError('BLIP5801', `input ${path} is neither a WebDataset .tar shard, a .jsonl file nor a folder`);
          }
          found.push({ path, base: isPattern ? base : dirname(path) });
        } else throw new BlipError('BLIP5801', `input ${path} is not a regular file or folder`);
      }
    }
  }
  if (found.length === 0) throw new BlipError('BLIP5801', `no .tar or .jsonl input matches ${inputs.map((i) => `'${i}'`).join(', ')}`);

  const tasks: ShardTask[] = [];
  const owner = new Map<string, string>();
  const seen = new Set<string>();
  for (const { path, base } of found) {
    const abs = resolve(path);
    if (seen.has(abs)) continue; // the same file named twice
    seen.add(abs);
    if (isInside(abs, output)) continue; // a glob may reach into the output folder: never read our own output
    try {
      await access(abs, constants.R_OK);
    } catch (e) {
      // (a dangling link in an input folder: walkTars lists it, as blip run lists one named like an image)
      const link = await brokenLink(path, e as NodeJS.ErrnoException);
      throw new BlipError('BLIP5801', link ? `input ${path} ${link}` : `cannot read input ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    let rel = toPosix(relative(resolve(base), abs));
    if (rel.startsWith('..')) rel = basename(abs);
    const add = (id: string, source: ShardSource): void => {
      const prev = owner.get(id);
      if (prev !== undefined) throw new BlipError('BLIP5801', `inputs ${prev} and ${abs} would both write output shard ${id}`);
      owner.set(id, abs);
      tasks.push({ id, source });
    };
    if (inputKind(abs) === 'tar') {
      add(rel, { kind: 'tar', path: abs, bytes: (await stat(abs)).size });
    } else {
      const stem = rel.replace(/\.(jsonl|ndjson)$/i, '');
      const chunks = await jsonlChunks(abs, opts.samplesPerShard);
      chunks.forEach((c, i) => add(`${stem}-${String(i).padStart(5, '0')}.tar`, { kind: 'jsonl', path: abs, ...c }));
    }
  }
  if (tasks.length === 0) {
    const inside = [...seen].filter((p) => isInside(p, output)).length;
    const why = inside === seen.size ? `every input is inside the output folder ${opts.output}` : inside ? `the .jsonl inputs are empty and the others inside the output folder ${opts.output}` : `the .jsonl input${seen.size === 1 ? ' is' : 's are'} empty (no samples)`;
    throw new BlipError('BLIP5801', `no input shard to process: ${why}`);
  }
  return tasks.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export interface ShardSpec {
  index: number;
  count: number;
}

/** Parse `--shard I/N` (0 <= I < N): this process takes plan entries I, I+N, I+2N, ... */
export function parseShardSpec(s: string): ShardSpec {
  const m = /^(\d+)\/(\d+)$/.exec(s.trim());
  if (!m) throw new UsageError(`--shard expects I/N with 0 <= I < N (e.g. 0/4), got '${s}'`);
  const [index, count] = [Number(m[1]), Number(m[2])];
  if (count < 1 || index >= count) throw new UsageError(`--shard expects I/N with 0 <= I < N (e.g. 0/4), got '${s}'`);
  return { index, count };
}

export function selectShards(plan: ShardTask[], spec: ShardSpec | undefined): ShardTask[] {
  return spec ? plan.filter((_, i) => i % spec.count === spec.index) : plan;
}
