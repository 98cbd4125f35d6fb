// The images `blip run --image PATH ...` names: files as given, folders expanded to their images.
// Nothing here throws for one bad entry: a missing file, a dangling link or a folder that cannot
// be listed is an entry with its error, in input order, so that the others still run.
import { lstatSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { BlipRuntimeError, ImageDecodeError } from '../../runtime/errors.js';
import { isSystemError, systemErrorMeaning } from '../filesystem.js';
import { IMAGE_EXTENSIONS, isImageExtension } from '../../runtime/preprocess/imageExtensions.js';

/**
 * A folder's images are found by these extensions (shared with CapFilt's tar samples). Other files,
 * BMP included (PIL reads it, the decoder does not), are named in a note and skipped, as before: a
 * folder that ran cleanly does not start failing for a file it always skipped. A BMP named with
 * --image is an error line.
 */
export { IMAGE_EXTENSIONS };

/** One image to run: its path, or why it cannot be (then it gets an error line and is not run). */
export interface ImageEntry {
  file: string;
  error?: BlipRuntimeError;
}

export interface ImageList {
  entries: ImageEntry[];
  /** Lines for stderr: the files a folder holds that are not image files by their extension or kind (a pipe, a device). */
  notes: string[];
}

/** How many skipped names a note lists before "and N more". */
const NOTE_NAMES = 8;

/** Why `path` (which stat could not follow) cannot be read: a dangling link or a loop of links says so, and to what. */
function missing(path: string, e: unknown): ImageDecodeError {
  const code = (e as { code?: string }).code;
  try {
    if (lstatSync(path).isSymbolicLink()) {
      const to = readlinkSync(path);
      if (code === 'ENOENT') return new ImageDecodeError(path, `it is a link to ${to}, which does not exist`);
      if (code === 'ELOOP') return new ImageDecodeError(path, `it is a link to ${to}, in a loop of links that never reaches a file`);
    }
  } catch {
    // (not even the name exists: the error below)
  }
  // a name with glob characters that is no file: the shell did not expand it, and neither does blip run
  const glob = /[*?[]/.test(path) ? ' (globs are not supported: pass the folder, or repeat --image for each file)' : '';
  return new ImageDecodeError(path, code === 'ENOENT' ? `no such file or folder${glob}` : isSystemError(e) ? systemErrorMeaning(e) : String(e));
}

/** The image entries of `paths`: files as given, folders expanded to their images (sorted by name, not recursive). */
export function expandImages(paths: string[]): ImageList {
  const entries: ImageEntry[] = [];
  const notes: string[] = [];
  for (const p of paths) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (e) {
      entries.push({ file: p, error: missing(p, e) });
      continue;
    }
    if (!isDir) {
      // (a device or a pipe is refused by the decoder, naming it)
      entries.push({ file: p });
      continue;
    }
    let names: string[];
    try {
      names = readdirSync(p).sort();
    } catch (e) {
      const why = isSystemError(e) ? systemErrorMeaning(e) : String(e);
      entries.push({ file: p, error: new BlipRuntimeError('BLIP5010', `cannot list folder ${p}: ${why}`, p) });
      continue;
    }
    const skipped: string[] = [];
    const images: ImageEntry[] = [];
    for (const name of names) {
      const f = join(p, name);
      const image = isImageExtension(extname(name));
      let kind: 'file' | 'folder' | 'other';
      try {
        const st = statSync(f);
        kind = st.isFile() ? 'file' : st.isDirectory() ? 'folder' : 'other';
      } catch (e) {
        // a dangling link (or an entry gone since the listing): an error line when named as an image
        if (image) images.push({ file: f, error: missing(f, e) });
        else skipped.push(name);
        continue;
      }
      if (kind === 'folder') continue; // (not recursive)
      // (a pipe, socket or device named like an image is no image file: skipped, as always)
      if (image && kind === 'file') images.push({ file: f });
      else skipped.push(name);
    }
    if (skipped.length) {
      const listed = skipped.slice(0, NOTE_NAMES).join(', ') + (skipped.length > NOTE_NAMES ? `, and ${skipped.length - NOTE_NAMES} more` : '');
      notes.push(`note: skipped ${skipped.length} ${skipped.length === 1 ? 'file' : 'files'} in ${p} that ${skipped.length === 1 ? 'is not an image file' : 'are not image files'} by ${skipped.length === 1 ? 'its' : 'their'} extension or kind: ${listed}`);
    }
    if (images.length === 0) entries.push({ file: p, error: new ImageDecodeError(p, `the folder has no images (${IMAGE_EXTENSIONS.join(', ')})`) });
    entries.push(...images);
  }
  return { entries, notes };
}
