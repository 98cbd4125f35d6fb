// The images `blip run --image PATH ...` names: files as given, folders expanded to their images.
// Nothing here throws for one bad entry: a missing file, a dangling link or a folder that cannot
// be listed is an entry with its error, in input order, so that the others still run.
import { lstatSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { BlipRuntimeError, ImageDecodeError } from '../../runtime/errors.js';
import { isSystemError, systemErrorMeaning } from '../filesystem.js';

/**
 * The extensions a folder's images are found by: those PIL opens these formats under (its
 * registered extensions for JPEG, PNG, WebP, GIF, TIFF, AVIF), and BMP's, which the decoder
 * refuses with an error line of its own rather than skipping the file unseen.
 */
export const IMAGE_EXTENSIONS = ['.png', '.apng', '.jpg', '.jpeg', '.jpe', '.jfif', '.webp', '.gif', '.tif', '.tiff', '.avif', '.bmp'];
const IMAGE_EXT_SET = new Set(IMAGE_EXTENSIONS);

/** One image to run: its path, or why it cannot be (then it gets an error line and is not run). */
export interface ImageEntry {
  file: string;
  error?: BlipRuntimeError;
}

export interface ImageList {
  entries: ImageEntry[];
  /** Lines for stderr: the files a folder holds that are not images by their extension. */
  notes: string[];
}

/** How many skipped names a note lists before "and N more". */
const NOTE_NAMES = 8;

/** Why `path` (which stat could not follow) cannot be read: a dangling link says so, and to what. */
function missing(path: string, e: unknown): ImageDecodeError {
  try {
    if (lstatSync(path).isSymbolicLink()) return new ImageDecodeError(path, `it is a link to ${readlinkSync(path)}, which does not exist`);
  } catch {
    // (not even the name exists: the error below)
  }
  const code = (e as { code?: string }).code;
  return new ImageDecodeError(path, code === 'ENOENT' ? 'no such file or folder' : isSystemError(e) ? systemErrorMeaning(e) : String(e));
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
      const image = IMAGE_EXT_SET.has(extname(name).toLowerCase());
      let isFolder = false;
      try {
        isFolder = statSync(f).isDirectory();
      } catch (e) {
        // a dangling link (or an entry gone since the listing): an error line when named as an image
        if (image) images.push({ file: f, error: missing(f, e) });
        else skipped.push(name);
        continue;
      }
      if (isFolder) continue; // (not recursive)
      if (image) images.push({ file: f });
      else skipped.push(name);
    }
    if (skipped.length) {
      const listed = skipped.slice(0, NOTE_NAMES).join(', ') + (skipped.length > NOTE_NAMES ? `, and ${skipped.length - NOTE_NAMES} more` : '');
      notes.push(`note: skipped ${skipped.length} ${skipped.length === 1 ? 'file' : 'files'} in ${p} that ${skipped.length === 1 ? 'is not an image' : 'are not images'} by ${skipped.length === 1 ? 'its' : 'their'} extension: ${listed}`);
    }
    if (images.length === 0) entries.push({ file: p, error: new ImageDecodeError(p, `the folder has no images (${IMAGE_EXTENSIONS.join(', ')})`) });
    entries.push(...images);
  }
  return { entries, notes };
}
