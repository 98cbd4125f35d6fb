// Where a compile writes before its output is complete, and what is left of compiles that were
// killed: OUT.tmp-<pid> while writing, OUT.old-<pid> for the moment a finished compile swaps itself
// for the model already at OUT. A compile stopped by a signal it can handle removes its own (see
// CompileOptions.signal); one killed outright (SIGKILL, out of memory, power) cannot, so the next
// compile to the same OUT removes those of processes that no longer exist.
import { readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/** The directory a compile of `out` by process `pid` writes into before renaming it to `out`. */
export function partialOutputPath(out: string, pid: number = process.pid): string {
  return `${resolve(out)}.tmp-${pid}`;
}

/** The name a finished compile gives the model it replaces, for the moment between two renames. */
export function replacedOutputPath(out: string, pid: number = process.pid): string {
  return `${resolve(out)}.old-${pid}`;
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
 * Removes OUT.tmp-<pid> and OUT.old-<pid> left by compiles whose process is gone; returns what it
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
    const m = /^\.(tmp|old)-(\d+)$/.exec(entry.slice(name.length));
    if (!m) continue;
    const pid = Number(m[2]);
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
