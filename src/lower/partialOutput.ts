// Where a compile writes before its output is complete, and what is left of compiles that were
// killed: OUT.tmp-<pid>-<call> while writing, OUT.old-<pid>-<call> for the moment a finished compile
// swaps itself for the model already at OUT. <call> tells apart the compiles of one process (two
// compile() calls to the same OUT at once): each writes its own folder, and the last to finish is
// the one at OUT (the swap is two renames with no await between them, so one event loop never
// interleaves two swaps; two threads or processes can: swapIntoPlace then tries again). A
// compile stopped by a signal it can handle removes its own (see
// CompileOptions.signal); one killed outright (SIGKILL, out of memory, power) cannot, so the next
// compile to the same OUT removes those of processes that no longer exist.
import { existsSync, lstatSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { MANIFEST_FILE, MANIFEST_FORMAT } from '../artifact/manifest.js';
import { basename, dirname, join, resolve } from 'node:path';
import { threadId } from 'node:worker_threads';

let calls = 0;

/** A name for one compile of this process, unique among its threads' compiles: `<thread>.<n>`. */
export function compileCall(): string {
  return `${threadId}.${++calls}`;
}

/** The directory a compile of `out` by process `pid` (its call `call`) writes into before renaming it to `out`. */
export function partialOutputPath(out: string, call: string, pid: number = process.pid): string {
  return `${resolve(out)}.tmp-${pid}-${call}`;
}

/** The name a finished compile gives the model it replaces, for the moment between two renames. */
export function replacedOutputPath(out: string, call: string, pid: number = process.pid): string {
  return `${resolve(out)}.old-${pid}-${call}`;
}

/**
 * Written first into a compile's partial output and removed just before it is renamed to OUT, so
 * that a folder merely named like one (a user's OUT.tmp-20240101) is never taken for ours.
 */
export const PARTIAL_MARKER = '.blip-partial-output';

/** What a compile writes into OUT (and so what its partial output or a replaced model can hold). */
const COMPILED_ENTRIES = new Set(['manifest.json', 'weights.bin', 'encode.onnx', 'decoder.onnx', 'retrieval.onnx', 'tokenizer', 'qformer_tokenizer', PARTIAL_MARKER]);

/** Marks `tmp` (just made) as a compile's partial output. */
export function markPartialOutput(tmp: string): void {
  writeFileSync(join(tmp, PARTIAL_MARKER), 'a blip compile writes here; removed when it finishes\n');
}

/** Unmarks the finished `tmp` before it becomes OUT (once its manifest is there it is recognised by that). */
export function unmarkPartialOutput(tmp: string): void {
  rmSync(join(tmp, PARTIAL_MARKER), { force: true });
}

/** Whether `dir`'s manifest.json is blip-graph's: the model a swap moved aside, or a partial output that was finished. */
function holdsCompiledModel(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as { format?: unknown } | null)?.format === MANIFEST_FORMAT;
  } catch {
    return false;
  }
}

/** Linux's ceiling for pid_max: no process id is larger, so OUT.tmp-20240101 names a date, not a compile. */
const PID_CEILING = 4194304;

/**
 * What OUT.<entry> is: a compile's partial output or replaced model (of which process), or none of
 * ours. The name alone is not enough (OUT.old-2023 may be a user's backup): a folder is ours only
 * when its contents are what a compile leaves there too. (The caller still keeps those of a running
 * process.)
 */
function leftover(entry: string, path: string): { pid: number } | undefined {
  const now = /^\.(tmp|old)-(\d+)-\d+\.\d+$/.exec(entry);
  // OUT.tmp-<pid> is what compiles before <call> left; their replaced models (OUT.old-<pid>) are
  // whole models, not told apart from a backup, so left alone
  const before = now ? null : /^\.tmp-(\d+)$/.exec(entry);
  if (!now && !before) return undefined;
  const pid = Number(now ? now[2] : before![1]);
  let entries: string[];
  try {
    if (!lstatSync(path).isDirectory()) return undefined;
    entries = readdirSync(path);
  } catch {
    return undefined;
  }
  // a partial output is marked from its start (or, finished, has its manifest); a replaced model
  // has its manifest (or was the empty folder OUT); a folder just made is empty
  if (now && (entries.length === 0 || (now[1] === 'tmp' && entries.includes(PARTIAL_MARKER)) || holdsCompiledModel(path))) return { pid };
  // Unmarked OUT.tmp-<pid>[-<call>]: compiles before the marker wrote both names without one, and one
  // killed mid-weights.bin left gigabytes there. Ours when it holds only the compiler's own files,
  // unfinished (no manifest, which a backup of a model would have), and its <pid> is one a process
  // can have (a date or serial past pid_max is a user's name).
  const partialByName = (!now || now[1] === 'tmp') && pid >= 1 && pid <= PID_CEILING;
  const ours = partialByName && entries.length > 0 && entries.every((e) => COMPILED_ENTRIES.has(e)) && !entries.includes(MANIFEST_FILE);
  return ours ? { pid } : undefined;
}

/** Removes the partial outputs of `out` this process is writing (`blip compile`'s second signal does not wait for the compile to). */
export function removeOwnPartialOutputs(out: string): void {
  const dir = dirname(resolve(out));
  const name = basename(resolve(out));
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const entry of entries) {
    if (entry.startsWith(name + '.tmp-') && leftover(entry.slice(name.length), join(dir, entry))?.pid === process.pid) rmSync(join(dir, entry), { recursive: true, force: true });
  }
}

/** Whether a process with this id exists (on this machine), whoever owns it. */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes OUT.tmp-<pid>[-<call>] and OUT.old-<pid>-<call> left by compiles whose process is gone (see
 * leftover()); returns what it removed. Those of a live process (a compile running now) are left alone.
 */
export function removeStaleLeftovers(out: string): string[] {
  const dir = dirname(resolve(out));
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return []; // no such folder yet, or not listable: nothing of ours to find there
  }
  const name = basename(resolve(out));
  const removed: string[] = [];
  for (const entry of entries) {
    if (!entry.startsWith(name + '.')) continue;
    const ours = leftover(entry.slice(name.length), join(dir, entry));
    if (!ours) continue;
    const pid = ours.pid;
    if (pid === process.pid || processExists(pid)) continue;
    rmSync(join(dir, entry), { recursive: true, force: true });
    removed.push(join(dir, entry));
  }
  return removed;
}

/** A turn of the event loop, so that a signal's handler can run between two pieces of synchronous work. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((res) => setImmediate(res));
}

/**
 * Put the finished `tmp` at `out`, moving a model already there to `old` and removing it. Another
 * compile (another thread or process) may swap at the same moment: `out` gone when it was to be
 * moved, or back before `tmp` could take its place. Each is tried again, a few times: the last
 * compile to swap wins, and every one that returns left a whole model at `out`.
 */
export function swapIntoPlace(tmp: string, out: string, old: string, rename: (from: string, to: string) => void = renameSync): void {
  for (let attempt = 1; ; attempt++) {
    try {
      rmSync(old, { recursive: true, force: true }); // (a model moved aside by an earlier attempt)
      if (existsSync(out)) rename(out, old);
      rename(tmp, out);
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (attempt >= 5 || !(code === 'ENOENT' || code === 'ENOTEMPTY' || code === 'EEXIST') || !existsSync(tmp)) throw e;
    }
  }
  rmSync(old, { recursive: true, force: true });
}
