// Where a compile writes before its output is complete, and what is left of compiles that were
// killed: OUT.tmp-<pid>-<call> while writing, OUT.old-<pid>-<call> for the moment a finished compile
// swaps itself for the model already at OUT. <call> tells apart the compiles of one process (two
// compile() calls to the same OUT at once): each writes its own folder, and the last to finish is
// the one at OUT (the swap is two renames with no await between them, so one event loop never
// interleaves two swaps; two threads or processes can: swapIntoPlace then tries again). A
// compile stopped by a signal it can handle removes its own (see
// CompileOptions.signal); one killed outright (SIGKILL, out of memory, power) cannot, so the next
// compile to the same OUT removes those of processes that no longer exist.
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
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

/** What OUT.<entry> is: a compile's partial output or replaced model (of which process), or none of ours. */
function leftover(entry: string): { pid: number } | undefined {
  // OUT.tmp-<pid> and OUT.old-<pid> are what compiles before <call> left
  const m = /^\.(?:tmp|old)-(\d+)(?:-\d+\.\d+)?$/.exec(entry);
  return m ? { pid: Number(m[1]) } : undefined;
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
    if (entry.startsWith(name + '.tmp-') && leftover(entry.slice(name.length))?.pid === process.pid) rmSync(join(dir, entry), { recursive: true, force: true });
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
 * Removes OUT.tmp-<pid>[-<call>] and OUT.old-<pid>[-<call>] left by compiles whose process is gone; returns what it
 * removed. Those of a live process (a compile running now) are left alone.
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
    const ours = leftover(entry.slice(name.length));
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
