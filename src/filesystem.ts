// Folder creation and file-system errors as one line, for every command that writes output.
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * `mkdir -p`, one component at a time. Not `mkdirSync(p, { recursive: true })`: Node 20's
 * recursive mkdir never returns where a parent exists but refuses new entries with ENOENT
 * (`--out /proc/x`: it retries the parent forever, blocking the event loop and so SIGTERM).
 * Throws the failing component's own error (EACCES, ENOTDIR, ENOENT, EROFS, ENOSPC …).
 */
export function makeDirectories(path: string): void {
  const missing: string[] = [];
  let p = resolve(path);
  for (;;) {
    let isDir: boolean | undefined;
    try {
      isDir = statSync(p).isDirectory();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (isDir === true) break;
    if (isDir === false) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${p}'`), { code: 'ENOTDIR', syscall: 'mkdir', path: p });
    missing.push(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(dir).isDirectory()) throw e;
    }
  }
}

/** What the common error codes mean, as `ls` or `cp` would say it. */
const MEANINGS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'is a folder',
  ENOENT: 'no such file or folder',
  EEXIST: 'already exists',
  ENAMETOOLONG: 'name too long',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
  ENOTEMPTY: 'folder not empty',
  EXDEV: 'cannot rename across file systems',
};

const VERBS: Record<string, string> = {
  open: 'open',
  write: 'write',
  read: 'read',
  mkdir: 'create the folder',
  rename: 'rename',
  unlink: 'remove',
  rmdir: 'remove',
  copyfile: 'copy',
  stat: 'read',
  scandir: 'list',
  fsync: 'write',
};

/** A Node system error (it has a code like ENOSPC and a syscall), not a program error. */
export function isSystemError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && /^E[A-Z0-9]+$/.test((e as NodeJS.ErrnoException).code!) && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}

/** "no space left on the device (ENOSPC)". */
export function systemErrorMeaning(e: NodeJS.ErrnoException): string {
  const code = e.code ?? '';
  return `${MEANINGS[code] ?? /^[A-Z0-9]+: ([^,]+)/.exec(e.message)?.[1] ?? e.message.split('\n')[0]} (${code})`;
}

/** "cannot write /out/weights.bin: no space left on the device (ENOSPC)". */
export function systemErrorLine(e: NodeJS.ErrnoException): string {
  const verb = VERBS[e.syscall ?? ''] ?? e.syscall ?? 'use';
  const dest = (e as { dest?: string }).dest;
  const where = e.path ? ` ${e.path}${dest ? ` to ${dest}` : ''}` : '';
  return `cannot ${verb}${where}: ${systemErrorMeaning(e)}`;
}
