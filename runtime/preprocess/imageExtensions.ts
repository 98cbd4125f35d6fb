// The file extensions images are recognised by, wherever a name has to say it is an image before
// its bytes are read: `blip run`'s folders (src/cli/imageList.ts) and CapFilt's WebDataset samples
// (src/capfilt/webdataset.ts). One list, so that a file one of them takes the other takes too.

/**
 * The extensions under which PIL opens the formats the decoder reads (image.ts: its registered
 * extensions for PNG, JPEG, WebP, GIF, TIFF and AVIF), lower case, with the dot. BMP and PIL's other
 * formats are not among them: the decoder does not read them.
 */
// JPEG first: a WebDataset sample with several images gives CapFilt its first in this order, and
// .jpg was CapFilt's first choice before the list was shared (as in WebDataset's usual "jpg;png").
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.jpe', '.jfif', '.png', '.apng', '.webp', '.gif', '.tif', '.tiff', '.avif'];

const IMAGE_EXTENSION_SET = new Set(IMAGE_EXTENSIONS);

/** Whether `ext` (with its dot, any case: ".JPG") is one of IMAGE_EXTENSIONS. */
export function isImageExtension(ext: string): boolean {
  return IMAGE_EXTENSION_SET.has(ext.toLowerCase());
}
