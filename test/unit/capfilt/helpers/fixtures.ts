// Small WebDataset shards for the CapFilt tests, in img2dataset's layout (KEY.jpg|png|webp,
// KEY.txt, KEY.json), with the awkward cases: a corrupt image, a truncated JPEG, a missing text,
// an empty text, a huge text and a sample with no image at all.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import sharp from 'sharp';
import tar from 'tar-stream';

type Colour = [number, number, number];
const C: Record<string, Colour> = { red: [220, 30, 30], green: [30, 180, 40], blue: [30, 40, 220], yellow: [230, 220, 40], white: [245, 245, 245], black: [10, 10, 10] };

export async function image(colour: string, format: 'jpeg' | 'png' | 'webp'): Promise<Buffer> {
  const [r, g, b] = C[colour];
  return sharp({ create: { width: 16, height: 12, channels: 3, background: { r, g, b } } })[format]().toBuffer();
}

export async function writeTar(path: string, files: Array<[string, Buffer | string]>): Promise<void> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const [name, data] of files) pack.entry({ name, mtime: new Date(1700000000000) }, typeof data === 'string' ? Buffer.from(data) : data);
  pack.finalize();
  await done;
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, Buffer.concat(chunks));
}

export interface Fixture {
  /** The img2dataset-like folder with the shards (and some non-shard files). */
  input: string;
  /** Output shard ids, in plan order. */
  ids: string[];
  /** Keys of the samples whose image decodes, per shard id, in order. */
  validKeys: Map<string, string[]>;
}

const names = ['red', 'green', 'blue', 'yellow', 'white', 'black'];
const formats = ['jpeg', 'png', 'webp'] as const;
const ext = { jpeg: 'jpg', png: 'png', webp: 'webp' } as const;

async function normalSamples(shard: number, from: number, n: number): Promise<{ files: Array<[string, Buffer | string]>; keys: string[] }> {
  const files: Array<[string, Buffer | string]> = [];
  const keys: string[] = [];
  for (let i = from; i < from + n; i++) {
    const key = `${String(shard).padStart(4, '0')}${String(i).padStart(4, '0')}`;
    const colour = names[(shard + i) % names.length];
    const fmt = formats[i % 3];
    files.push([`${key}.${ext[fmt]}`, await image(colour, fmt)]);
    files.push([`${key}.txt`, i % 2 ? `a ${colour} tile` : `photo number ${i} of shard ${shard}`]);
    files.push([`${key}.json`, JSON.stringify({ url: `https://example.com/${key}.${ext[fmt]}`, key, status: 'success' })]);
    keys.push(key);
  }
  return { files, keys };
}

export async function buildFixture(root: string): Promise<Fixture> {
  const input = join(root, 'shards');
  const validKeys = new Map<string, string[]>();

  // Shard 0: the awkward cases.
  const s0: Array<[string, Buffer | string]> = [
    ['00000000.jpg', await image('red', 'jpeg')],
    ['00000000.txt', 'a red square on a wall'],
    ['00000000.json', JSON.stringify({ url: 'https://example.com/a.jpg', caption: 'a red square on a wall', width: 16, height: 12 })],
    ['00000001.jpg', Buffer.from('this is not a JPEG at all, just some bytes')],
    ['00000001.txt', 'a corrupt image'],
    ['00000002.png', await image('green', 'png')], // no text
    ['00000003.webp', await image('blue', 'webp')],
    ['00000003.txt', 'a blue ' + 'very '.repeat(250_000) + 'long caption'], // ~1.25 MB of text
    ['00000004.jpg', await image('yellow', 'jpeg')],
    ['00000004.txt', 'a photo of a dog'],
    ['00000005.png', await image('white', 'png')],
    ['00000005.txt', '   '], // empty text counts as missing
  ];
  await writeTar(join(input, '00000.tar'), s0);
  validKeys.set('00000.tar', ['00000000', '00000002', '00000003', '00000004', '00000005']);

  // Shard 1: a truncated JPEG and a sample without an image, then normal samples.
  const jpeg = await image('black', 'jpeg');
  const n1 = await normalSamples(1, 2, 6);
  await writeTar(join(input, '00001.tar'), [
    ['00010000.jpg', jpeg.subarray(0, Math.floor(jpeg.length / 2))],
    ['00010000.txt', 'half a picture'],
    ['00010001.txt', 'a text without its image'],
    ['00010001.json', '{"url": "https://example.com/missing.jpg"}'],
    ...n1.files,
  ]);
  validKeys.set('00001.tar', n1.keys);

  const n3 = await normalSamples(3, 0, 6);
  await writeTar(join(input, '00003.tar'), n3.files);
  validKeys.set('00003.tar', n3.keys);

  const n2 = await normalSamples(2, 0, 6);
  await writeTar(join(input, 'sub', '00002.tar'), n2.files);
  validKeys.set('sub/00002.tar', n2.keys);

  // What else img2dataset leaves next to the shards: never read as input.
  await writeFile(join(input, '00000_stats.json'), '{}');
  await writeFile(join(input, '00000.parquet'), 'PAR1');

  return { input, ids: ['00000.tar', '00001.tar', '00003.tar', 'sub/00002.tar'], validKeys };
}

/** Every file under `dir` (relative path, '/' separators) with its sha256, sorted. */
export async function treeDigest(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        out[relative(dir, p).split(sep).join('/') + '/'] = 'dir';
        await walk(p);
      } else out[relative(dir, p).split(sep).join('/')] = createHash('sha256').update(await readFile(p)).digest('hex');
    }
  };
  if ((await stat(dir)).isDirectory()) await walk(dir);
  return out;
}

/** Read every entry of a tar into a name → bytes map, in order. */
export async function readTar(path: string): Promise<Array<{ name: string; data: Buffer; mtime: number; uid: number; gid: number; mode: number }>> {
  const extract = tar.extract();
  const out: Array<{ name: string; data: Buffer; mtime: number; uid: number; gid: number; mode: number }> = [];
  const src = (await import('node:fs')).createReadStream(path);
  src.pipe(extract);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    out.push({ name: entry.header.name, data: Buffer.concat(chunks), mtime: entry.header.mtime?.getTime() ?? -1, uid: entry.header.uid ?? -1, gid: entry.header.gid ?? -1, mode: entry.header.mode ?? -1 });
  }
  return out;
}
