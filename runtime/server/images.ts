// Image references in requests -> encoded bytes. Accepted: `data:image/...;base64,...` URLs, and
// `file://` URLs only when the server was started with --allow-files DIR and the file (symbolic
// links resolved) lies inside DIR. Remote http(s) URLs are never fetched. Decoding happens in the
// worker (runtime/preprocess), where a file that is not an image becomes a 400.
import { realpath, stat, readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError, badRequest } from './errors.js';

export interface ImageBytes {
  /** For messages ("cannot read image NAME"): "data:image/png;base64,... (1234 bytes)" or the file's path. */
  name: string;
  bytes: Uint8Array;
  /** The request field it came from (`messages[0].content[1].image_url`, `image`, `input[1]`): an error about the image names it. */
  param: string;
}

export interface ImageUrlOptions {
  /** Real path of the folder file:// URLs may read from (absent: file:// refused). */
  allowFiles?: string;
  /** The most bytes an image may have. */
  maxBytes: number;
}

const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;
const BASE64URL = /^[A-Za-z0-9\-_\s]*={0,2}\s*$/;

export async function resolveImageUrl(url: unknown, param: string, o: ImageUrlOptions): Promise<ImageBytes> {
  if (typeof url !== 'string' || url.length === 0) throw badRequest(`${param} must be a non-empty string URL (data:image/...;base64,... or file://...)`, param, 'invalid_image_url');
  const scheme = url.slice(0, url.indexOf(':') + 1).toLowerCase();
  if (scheme === 'data:') return dataUrl(url, param, o);
  if (scheme === 'file:') return fileUrl(url, param, o);
  if (scheme === 'http:' || scheme === 'https:') {
    throw badRequest(`${param}: remote image URLs are not fetched by this server; send the image inline as a data:image/...;base64,... URL`, param, 'invalid_image_url');
  }
  throw badRequest(`${param}: unsupported image URL ${JSON.stringify(url.slice(0, 40))}; expected data:image/...;base64,... (or file:// with --allow-files)`, param, 'invalid_image_url');
}

function dataUrl(url: string, param: string, o: ImageUrlOptions): ImageBytes {
  const comma = url.indexOf(',');
  if (comma < 0) throw badRequest(`${param}: malformed data: URL (no comma)`, param, 'invalid_image_url');
  const meta = url.slice(5, comma).split(';').map((s) => s.trim().toLowerCase());
  const mime = meta[0] || 'text/plain';
  if (!meta.includes('base64')) throw badRequest(`${param}: the data: URL must be base64-encoded (data:${mime};base64,...)`, param, 'invalid_image_url');
  if (!mime.startsWith('image/') && mime !== 'application/octet-stream') {
    throw badRequest(`${param}: the data: URL has content type ${mime}; an image (image/png, image/jpeg, image/webp) is expected`, param, 'invalid_image_content_type');
  }
  const payload = url.slice(comma + 1);
  if (!BASE64.test(payload) && !BASE64URL.test(payload)) throw badRequest(`${param}: the data: URL payload is not valid base64`, param, 'invalid_image_url');
  const bytes = Buffer.from(payload, 'base64');
  if (bytes.length === 0) throw badRequest(`${param}: the data: URL holds no bytes`, param, 'invalid_image');
  if (bytes.length > o.maxBytes) throw new ApiError(413, `${param}: the image is ${bytes.length} bytes; at most ${o.maxBytes} are accepted`, 'invalid_request_error', 'image_too_large', param);
  // a fresh, exactly sized buffer (transferable to the worker)
  return { name: `data:${mime};base64,... (${bytes.length} bytes)`, bytes: new Uint8Array(bytes), param };
}

async function fileUrl(url: string, param: string, o: ImageUrlOptions): Promise<ImageBytes> {
  if (!o.allowFiles) throw new ApiError(403, `${param}: file:// image URLs are disabled on this server (start it with --allow-files DIR)`, 'permission_error', 'file_urls_disabled', param);
  let path: string;
  try {
    const u = new URL(url);
    if (u.host !== '' && u.host !== 'localhost') throw new Error(`host ${u.host}`);
    // %2F or %5C in a segment would smuggle a separator past the URL's own normalisation
    if (/%2f|%5c|%00/i.test(u.pathname)) throw new Error('encoded separators');
    path = fileURLToPath(u);
  } catch (e) {
    throw badRequest(`${param}: malformed file:// URL (${(e as Error).message})`, param, 'invalid_image_url');
  }
  let real: string;
  try {
    real = await realpath(path);
  } catch {
    // do not tell files outside the folder from missing ones
    throw forbiddenOrMissing(path, await resolvedAsFarAsExists(path), param, o.allowFiles);
  }
  const rel = relative(o.allowFiles, real);
  if (rel === '' || rel.startsWith('..' + sep) || rel === '..' || isAbsolute(rel)) {
    throw new ApiError(403, `${param}: ${path} is outside the folder this server may read images from`, 'permission_error', 'file_not_allowed', param);
  }
  const st = await stat(real);
  if (!st.isFile()) throw badRequest(`${param}: ${path} is not a file`, param, 'invalid_image');
  if (st.size > o.maxBytes) throw new ApiError(413, `${param}: ${path} is ${st.size} bytes; at most ${o.maxBytes} are accepted`, 'invalid_request_error', 'image_too_large', param);
  return { name: path, bytes: new Uint8Array(await readFile(real)), param };
}

/** `path` with its deepest existing folder resolved (links followed) and the missing rest appended. */
async function resolvedAsFarAsExists(path: string): Promise<string> {
  const rest: string[] = [];
  for (let dir = path; ; ) {
    try {
      return join(await realpath(dir), ...rest.reverse());
    } catch {
      const parent = dirname(dir);
      if (parent === dir) return path;
      rest.push(basename(dir));
      dir = parent;
    }
  }
}

/**
 * A missing file is judged where it would be once links are followed: a link inside the folder to
 * one outside must not tell a client which files exist there (403 for both, not 400 for the missing).
 */
function forbiddenOrMissing(path: string, resolved: string, param: string, allow: string): ApiError {
  const rel = relative(allow, resolved);
  if (rel.startsWith('..') || isAbsolute(rel)) return new ApiError(403, `${param}: ${path} is outside the folder this server may read images from`, 'permission_error', 'file_not_allowed', param);
  return badRequest(`${param}: no such file ${path}`, param, 'invalid_image');
}
