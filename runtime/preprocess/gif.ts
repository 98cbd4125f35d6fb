// A GIF's first frame as PIL shows it. PIL keeps the frame as palette indices, fills what the frame
// does not cover with the transparency index (0 without one), and convert("RGB") maps every index
// through the palette, the transparent one too. libvips decodes the transparent index to
// (0, 0, 0, 0) and what the frame does not cover to black: both are, for PIL, the palette's colour
// at the transparency index (or at 0).

/** Where the first frame lies on the GIF's screen, and the colour PIL gives its transparent and uncovered pixels. */
export interface GifFirstFrame {
  left: number;
  top: number;
  width: number;
  height: number;
  colour: [number, number, number];
}

/** The first frame of a GIF file, or undefined when the bytes are not a GIF this can read. */
export function gifFirstFrame(b: Uint8Array): GifFirstFrame | undefined {
  const magic = String.fromCharCode(...b.subarray(0, 6));
  if (b.length < 13 || (magic !== 'GIF89a' && magic !== 'GIF87a')) return undefined;
  const u16 = (at: number): number => b[at]! | (b[at + 1]! << 8);
  const tableBytes = (packed: number): number => (packed & 0x80 ? 3 << ((packed & 7) + 1) : 0);
  let i = 13;
  const globalBytes = tableBytes(b[10]!);
  const global = globalBytes ? b.subarray(i, (i += globalBytes)) : undefined;
  let transparency: number | undefined;
  while (i < b.length) {
    if (b[i] === 0x21) {
      // an extension; a Graphic Control Extension applies to the image that follows it
      if (b[i + 1] === 0xf9 && b[i + 2]! >= 4) transparency = b[i + 3]! & 1 ? b[i + 6] : undefined;
      i += 2;
      while (i < b.length && b[i] !== 0) i += b[i]! + 1;
      i++;
    } else if (b[i] === 0x2c) {
      if (i + 10 > b.length) return undefined;
      const localBytes = tableBytes(b[i + 9]!);
      const palette = localBytes ? b.subarray(i + 10, i + 10 + localBytes) : global;
      const index = transparency ?? 0;
      const colour: [number, number, number] = palette && 3 * index + 2 < palette.length ? [palette[3 * index]!, palette[3 * index + 1]!, palette[3 * index + 2]!] : [0, 0, 0];
      return { left: u16(i + 1), top: u16(i + 3), width: u16(i + 5), height: u16(i + 7), colour };
    } else {
      return undefined;
    }
  }
  return undefined;
}

/** Give the pixels of a decoded first frame (grey or RGB, with or without alpha) that PIL shows in the transparency colour that colour, in place. */
export function fillAsPil(data: Uint8Array, width: number, height: number, channels: number, frame: GifFirstFrame): void {
  const [r, g, b] = frame.colour;
  const alpha = channels === 2 || channels === 4 ? channels - 1 : -1;
  for (let y = 0; y < height; y++) {
    const rowInside = y >= frame.top && y < frame.top + frame.height;
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * channels;
      const inside = rowInside && x >= frame.left && x < frame.left + frame.width;
      if (inside && !(alpha > 0 && data[o + alpha] === 0)) continue;
      data[o] = r; // (a grey decode comes from a grey palette: r = g = b)
      if (channels >= 3) {
        data[o + 1] = g;
        data[o + 2] = b;
      }
    }
  }
}
