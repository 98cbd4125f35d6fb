// Orientation as PIL applies it when it opens a file. PIL rotates only TIFF: TiffImageFile.load_end
// calls ImageOps.exif_transpose (Pillow 13), whose orientation is tag 274 of the first IFD or,
// without that tag, `tiff:Orientation` in the XMP packet (tag 700). JPEG, PNG and WebP keep their
// stored layout (their EXIF orientation is ignored on open), and so must AVIF, whose irot / imir
// properties libheif applies by itself and PIL (libavif) does not (heifAsPil undoes them).
import { ImageDecodeError } from '../errors.js';
import type { RgbImage } from './image.js';

/**
 * A TIFF's first frame as PIL loads it, from its pixels as stored (`im`, decoded to RGB): turned by
 * its orientation and, where PIL maps the file into memory, first read as PIL reads it then (below).
 * `fromPath`: the file was opened by its path (`Image.open(path)`), not from bytes (`BytesIO`).
 */
export function tiffAsPil(im: RgbImage, b: Uint8Array, name: string, fromPath: boolean): RgbImage {
  const dir = firstIfd(b);
  if (!dir) return im;
  const o = orientation(dir);
  if (o < 2) return im;
  // TiffImageFile._setup swaps the size for orientation tag values 5-8 (the tag only, not XMP). An
  // uncompressed single-strip (or single-tile) file in a mode PIL maps (ImageFile.load: L, P, RGBA,
  // CMYK, I;16 stored as such) opened by path is then mapped with that swapped size: its pixels, in
  // file order, are read as rows of `height` pixels, `width` rows (the stored rows cut up anew),
  // and that is what exif_transpose turns. Pixels read so come back in the stored size.
  const tag = dir.get(274);
  const tagged = tag?.count === 1 ? tag.int() : undefined;
  if (fromPath && tagged !== undefined && tagged >= 5 && tagged <= 8) {
    const map = pilMap(dir, b.length, im.width, im.height);
    if (map) im = remap(im, map, name);
  }
  return orient(im, o);
}

function orientation(dir: Ifd): number {
  const tag = dir.get(274);
  if (tag) {
    // (a tag of another type, or several values, leaves Pillow's lookup without a match)
    const v = tag.count === 1 ? tag.int() : undefined;
    return v !== undefined && v >= 2 && v <= 8 ? v : 1;
  }
  // Image.getexif: without tag 274, the XMP packet's
  const xmp = dir.get(700)?.bytes();
  if (xmp) {
    // Image.getexif: re.search(rb'tiff:Orientation(="|>)([0-9])', xmp)
    const m = /tiff:Orientation(="|>)([0-9])/.exec(Buffer.from(xmp.buffer, xmp.byteOffset, xmp.length).toString('latin1'));
    const v = m ? Number(m[2]) : 1;
    return v >= 2 && v <= 8 ? v : 1;
  }
  return 1;
}

/** How PIL maps a file's pixels (ImageFile.load's mmap path with the size swapped). */
interface PilMap {
  /** Bytes per pixel. */
  ps: number;
  /** Row stride of the mapped image (max of the tile's stride argument and width * ps). */
  stride: number;
  /** Row stride of the pixels as stored (the strip's or tile's width * ps). */
  storedStride: number;
}

/** The modes PIL maps (Image._MAPMODES) where the raw mode is the mode, by OPEN_INFO key. */
function mappedMode(le: boolean, photo: number, sf: number[], bps: number[], extra: number[]): string | undefined {
  const k = `${photo}|${sf.join(',')}|${bps.join(',')}|${extra.join(',')}`;
  if (k === '1|1|16|' || (le && k === '0|1|16|')) return 'I;16';
  if (k === '1|1|8|' || k === '1|2|8|' || k === '6|1|8|') return 'L';
  if (k === '3|1|8|') return 'P';
  if (k === '5|1|8,8,8,8|') return 'CMYK';
  if (k === '2|1|8,8,8,8|' || k === '2|1|8,8,8,8|2' || k === '2|1|8,8,8,8|999') return 'RGBA';
  return undefined;
}

/**
 * Whether Pillow 13 maps this TIFF (opened by path) into memory, and how: TiffImageFile._setup's
 * mode and tiles, then ImageFile.load's conditions (one tile, raw, raw mode = mode in _MAPMODES,
 * the mapped rows within the file).
 */
function pilMap(dir: Ifd, fileLength: number, xsize: number, ysize: number): PilMap | undefined {
  const one = (tag: number, dflt: number): number | undefined => {
    const e = dir.get(tag);
    return e ? (e.count === 1 ? e.int() : undefined) : dflt;
  };
  if (one(259, 1) !== 1 || one(266, 1) !== 1) return undefined; // compressed (libtiff) or fill order 2
  if (one(256, -1) !== xsize || one(257, -1) !== ysize) return undefined;
  const photo = one(262, 0);
  const planar = one(284, 1);
  if (photo === undefined || planar === undefined) return undefined;
  let sf = dir.get(339)?.ints() ?? [1];
  if (sf.length > 1 && sf.every((v) => v === sf[0])) sf = [sf[0]];
  let bps = dir.get(258)?.ints() ?? [1];
  let extra = dir.get(338)?.ints() ?? [];
  let spp = one(277, 1);
  if (spp === undefined || sf.length === 0 || bps.length === 0) return undefined;
  if (planar === 2 && extra.length > 0 && Math.max(...extra) === 0) {
    bps = bps.slice(0, -extra.length);
    spp -= extra.length;
    extra = [];
  }
  if (spp < bps.length) bps = bps.slice(0, spp);
  else if (spp > bps.length && bps.length === 1) bps = Array.from({ length: spp }, () => bps[0]);
  const mode = mappedMode(dir.le, photo, sf, bps, extra);
  if (!mode || (planar === 2 && mode.length > 1)) return undefined; // (planar: the tile's raw mode is rawmode[0])
  const strips = dir.get(273);
  const offsets = (strips ?? dir.get(324))?.ints();
  if (!offsets || offsets.length === 0) return undefined;
  const w = strips ? xsize : one(322, -1);
  const h = strips ? one(278, ysize) : one(323, -1);
  if (w === undefined || h === undefined || w < 1) return undefined;
  const tiles = w === xsize && h === ysize && planar !== 2 ? 1 : offsets.length;
  if (tiles !== 1) return undefined;
  const ps = mode === 'L' || mode === 'P' ? 1 : mode === 'I;16' ? 2 : 4;
  const bpsCount = (photo === 2 || photo === 6 || photo === 8 ? 3 : photo === 5 ? 4 : 1) + extra.length;
  let arg = w > xsize ? (w * bps.reduce((a, v) => a + v, 0)) / 8 : 0;
  if (planar === 2) arg /= bpsCount;
  // the mapped image is (ysize wide, xsize high): Pillow's size after the swap
  const stride = Math.max(Math.trunc(arg), ysize * ps);
  if (offsets[offsets.length - 1] + xsize * stride > fileLength) return undefined; // ("buffer is not large enough": decoded instead)
  return { ps, stride, storedStride: w * ps };
}

/** The image PIL maps (`map`), `ysize` wide and `xsize` high, taken from the stored pixels `im`. */
function remap(im: RgbImage, map: PilMap, name: string): RgbImage {
  const { width: xsize, height: ysize, channels: c, data } = im;
  const ow = ysize;
  const oh = xsize;
  const out = new Uint8Array(data.length);
  for (let r = 0; r < oh; r++) {
    for (let col = 0; col < ow; col++) {
      const p = r * map.stride + col * map.ps;
      const sy = Math.floor(p / map.storedStride);
      const sx = (p % map.storedStride) / map.ps;
      if (sy >= ysize || sx >= xsize || !Number.isInteger(sx)) {
        // (a tile wider than the image: PIL reads its padding, which the decoded image lacks)
        throw new ImageDecodeError(name, 'PIL reads this TIFF (orientation 5-8, one uncompressed tile wider than the image) out of its pixels; convert it to PNG');
      }
      const s = (sy * xsize + sx) * c;
      const d = (r * ow + col) * c;
      for (let k = 0; k < c; k++) out[d + k] = data[s + k];
    }
  }
  return { width: ow, height: oh, channels: c, data: out };
}

export interface IfdEntry {
  count: number;
  /** The value as an integer (integer types only). */
  int(): number | undefined;
  /** Every value as an integer (integer types only; undefined past the file's end). */
  ints(): number[] | undefined;
  /** The value's bytes (in range of the file), or undefined. */
  bytes(): Uint8Array | undefined;
}

const TYPE_SIZE: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8 };

/** The entries of a TIFF's (or BigTIFF's) first IFD by tag, or undefined when it cannot be read. */
export type Ifd = Map<number, IfdEntry> & { le: boolean };

export function firstIfd(b: Uint8Array): Ifd | undefined {
  if (b.length < 16) return undefined;
  const le = b[0] === 0x49 && b[1] === 0x49;
  if (!le && !(b[0] === 0x4d && b[1] === 0x4d)) return undefined;
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  const u16 = (o: number): number => dv.getUint16(o, le);
  const u32 = (o: number): number => dv.getUint32(o, le);
  const u64 = (o: number): number => {
    const hi = dv.getUint32(o + (le ? 4 : 0), le);
    return hi > 0x1fffff ? Infinity : hi * 2 ** 32 + dv.getUint32(o + (le ? 0 : 4), le);
  };
  const magic = u16(2);
  const big = magic === 43;
  if (!big && magic !== 42) return undefined;
  if (big && (u16(4) !== 8 || u16(6) !== 0)) return undefined;
  const ifd = big ? u64(8) : u32(4);
  const countSize = big ? 8 : 2;
  const entrySize = big ? 20 : 12;
  const inline = big ? 8 : 4;
  if (ifd + countSize > b.length) return undefined;
  const n = big ? u64(ifd) : u16(ifd);
  const out = Object.assign(new Map<number, IfdEntry>(), { le });
  for (let i = 0; i < n; i++) {
    const e = ifd + countSize + i * entrySize;
    if (e + entrySize > b.length) break;
    const tag = u16(e);
    const type = u16(e + 2);
    const count = big ? u64(e + 4) : u32(e + 4);
    const field = e + 4 + (big ? 8 : 4);
    const size = (TYPE_SIZE[type] ?? 0) * count;
    const at = size <= inline ? field : big ? u64(field) : u32(field);
    if (out.has(tag)) continue;
    const item = (i: number): number | undefined => {
      const o = at + i * (TYPE_SIZE[type] ?? 0);
      if (!Number.isFinite(o) || o + (TYPE_SIZE[type] ?? 0) > b.length) return undefined;
      switch (type) {
        case 1: return b[o];
        case 6: return dv.getInt8(o);
        case 3: return u16(o);
        case 8: return dv.getInt16(o, le);
        case 4: case 13: return u32(o);
        case 9: return dv.getInt32(o, le);
        case 16: case 18: return u64(o);
        default: return undefined;
      }
    };
    out.set(tag, {
      count,
      int: () => (count >= 1 ? item(0) : undefined),
      ints: () => {
        if (count > 1 << 20) return undefined;
        const v: number[] = [];
        for (let i = 0; i < count; i++) {
          const x = item(i);
          if (x === undefined) return undefined;
          v.push(x);
        }
        return v;
      },
      bytes: () => (size > 0 && Number.isFinite(at) && at + size <= b.length ? b.subarray(at, at + size) : undefined),
    });
  }
  return out;
}

/**
 * PIL's Image.transpose for EXIF orientation `o` (ImageOps.exif_transpose's table): 2 FLIP_LEFT_RIGHT,
 * 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90.
 */
export function orient(im: RgbImage, o: number): RgbImage {
  if (o < 2 || o > 8) return im;
  const { width: w, height: h, channels: c, data } = im;
  const swap = o >= 5;
  const ow = swap ? h : w;
  const oh = swap ? w : h;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      // the source pixel (sx, sy) of output pixel (x, y)
      let sx: number;
      let sy: number;
      switch (o) {
        case 2: sx = w - 1 - x; sy = y; break;
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;
        case 4: sx = x; sy = h - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = h - 1 - x; break;
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;
        default: sx = w - 1 - y; sy = x; break; // 8
      }
      const s = (sy * w + sx) * c;
      const d = (y * ow + x) * c;
      for (let k = 0; k < c; k++) out[d + k] = data[s + k];
    }
  }
  return { width: ow, height: oh, channels: c, data: out };
}

/**
 * An AVIF as PIL opens it, from what libheif decoded (`im`): libheif turns the primary image by its
 * transformative properties (irot: angle x 90 degrees anticlockwise; imir: mode 0 top-to-bottom,
 * 1 left-to-right, as libavif writes them for EXIF orientations) in the order the item lists them,
 * PIL keeps the pixels as stored: each is undone, the last first.
 */
export function heifAsPil(im: RgbImage, b: Uint8Array): RgbImage {
  const ops = heifTransforms(b);
  if (!ops) return im;
  for (let i = ops.length - 1; i >= 0; i--) {
    const t = ops[i];
    // the inverse, as an EXIF orientation: irot 1 (90 anticlockwise) by ROTATE_270 (6), 2 by 3, 3
    // by ROTATE_90 (8); a mirror by itself
    im = orient(im, t.type === 'irot' ? [1, 6, 3, 8][t.value] : t.value === 0 ? 4 : 2);
  }
  return im;
}

interface Box {
  type: string;
  /** Where the payload starts and the box ends. */
  start: number;
  end: number;
}

/** The boxes in b[start, end) (ISO-BMFF: 32-bit size, type, 64-bit size when the size is 1). */
function boxes(b: Uint8Array, start: number, end: number): Box[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  const out: Box[] = [];
  for (let at = start; at + 8 <= end; ) {
    let size = dv.getUint32(at);
    let head = 8;
    if (size === 1) {
      if (at + 16 > end) break;
      size = dv.getUint32(at + 8) * 2 ** 32 + dv.getUint32(at + 12);
      head = 16;
    } else if (size === 0) {
      size = end - at;
    }
    if (size < head || at + size > end) break;
    const type = String.fromCharCode(b[at + 4], b[at + 5], b[at + 6], b[at + 7]);
    out.push({ type, start: at + head, end: at + size });
    at += size;
  }
  return out;
}

/**
 * The irot / imir properties of a HEIF's primary item, in the order its ipma entry lists them, or
 * undefined when it has none (or the boxes cannot be read).
 */
export function heifTransforms(b: Uint8Array): Array<{ type: 'irot' | 'imir'; value: number }> | undefined {
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  const meta = boxes(b, 0, b.length).find((x) => x.type === 'meta');
  if (!meta || meta.start + 4 > meta.end) return undefined;
  const inMeta = boxes(b, meta.start + 4, meta.end); // (a full box: version and flags first)
  const pitm = inMeta.find((x) => x.type === 'pitm');
  const iprp = inMeta.find((x) => x.type === 'iprp');
  if (!pitm || !iprp || pitm.start + 6 > pitm.end) return undefined;
  const primary = b[pitm.start] === 0 ? dv.getUint16(pitm.start + 4) : pitm.start + 8 <= pitm.end ? dv.getUint32(pitm.start + 4) : -1;
  const inIprp = boxes(b, iprp.start, iprp.end);
  const ipco = inIprp.find((x) => x.type === 'ipco');
  if (!ipco) return undefined;
  const props = boxes(b, ipco.start, ipco.end); // property index i (1-based) is props[i - 1]
  const ops: Array<{ type: 'irot' | 'imir'; value: number }> = [];
  for (const ipma of inIprp.filter((x) => x.type === 'ipma')) {
    if (ipma.start + 8 > ipma.end) continue;
    const version = b[ipma.start];
    const wide = (b[ipma.start + 3] & 1) === 1;
    const entries = dv.getUint32(ipma.start + 4);
    let at = ipma.start + 8;
    for (let e = 0; e < entries; e++) {
      const idSize = version < 1 ? 2 : 4;
      if (at + idSize + 1 > ipma.end) return undefined;
      const item = version < 1 ? dv.getUint16(at) : dv.getUint32(at);
      const n = b[at + idSize];
      at += idSize + 1;
      for (let k = 0; k < n; k++) {
        if (at + (wide ? 2 : 1) > ipma.end) return undefined;
        const index = wide ? dv.getUint16(at) & 0x7fff : b[at] & 0x7f;
        at += wide ? 2 : 1;
        if (item !== primary || index < 1 || index > props.length) continue;
        const p = props[index - 1];
        if ((p.type === 'irot' || p.type === 'imir') && p.start < p.end) {
          ops.push({ type: p.type, value: b[p.start] & (p.type === 'irot' ? 3 : 1) });
        }
      }
    }
  }
  return ops.length ? ops : undefined;
}
