// TEST DOUBLE, NOT A MODEL. A deterministic stand-in for the CapFilt captioner and ITM filter,
// used only by the tests: it "captions" an image from its mean colour and a PRNG seeded with the
// caption's seed, and "scores" a text from whether it names the image's colour plus a hash.
// Like the real models, results depend only on (image, seed) and (image, text), never on the batch.
import { createHash } from 'node:crypto';
import type { CapfiltModels, ImageInput } from '../../../../src/capfilt/model.js';
import { mulberry32 } from '../../seededRandom.js';

const COLOURS: Array<[string, [number, number, number]]> = [
  ['red', [220, 30, 30]],
  ['green', [30, 180, 40]],
  ['blue', [30, 40, 220]],
  ['yellow', [230, 220, 40]],
  ['white', [245, 245, 245]],
  ['black', [10, 10, 10]],
  ['grey', [128, 128, 128]],
];
const ADJECTIVES = ['small', 'large', 'bright', 'plain', 'square', 'simple', 'flat', 'old'];
const NOUNS = ['picture', 'photo', 'square', 'tile', 'card', 'wall', 'painting', 'screen'];

export function colourOf(img: ImageInput): string {
  if (!img.pixels) throw new Error(`image ${img.key} came without its pixels (the test double has no prepare)`);
  const { data, width, height } = img.pixels;
  const sum = [0, 0, 0];
  for (let i = 0; i < width * height; i++) for (let c = 0; c < 3; c++) sum[c] += data[i * 3 + c];
  const mean = sum.map((v) => v / (width * height));
  let best = COLOURS[0][0];
  let bestD = Infinity;
  for (const [name, rgb] of COLOURS) {
    const d = rgb.reduce((a, v, c) => a + (v - mean[c]) ** 2, 0);
    if (d < bestD) [best, bestD] = [name, d];
  }
  return best;
}

const unit = (s: string): number => createHash('sha256').update(s).digest().readUInt32BE(0) / 4294967296;

export interface TestDoubleOptions {
  /** Wait this long in each caption() call (to let a test kill a process mid-shard). */
  delayMs?: number;
  /** Called after each batch is scored, with the batch's keys. */
  onBatch?: (keys: string[]) => void;
}

export function testDoubleModels(o: TestDoubleOptions = {}): CapfiltModels {
  return {
    captioner: {
      async caption(images, opts) {
        if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
        return images.map((img, i) =>
          opts.seeds[i].map((seed) => {
            // Fold the 48-bit seed into 32 bits; top-p narrows the choice like nucleus sampling would.
            const rnd = mulberry32((seed % 4294967296) ^ Math.floor(seed / 4294967296));
            const n = Math.max(1, Math.ceil(opts.topP * NOUNS.length));
            const colour = rnd() < 0.75 ? colourOf(img) : COLOURS[Math.floor(rnd() * COLOURS.length)][0];
            return `a ${ADJECTIVES[Math.floor(rnd() * ADJECTIVES.length)]} ${colour} ${NOUNS[Math.floor(rnd() * n)]}`;
          }),
        );
      },
    },
    matcher: {
      async itm(images, texts) {
        const out = images.map((img, i) => {
          const colour = colourOf(img);
          return texts[i].map((t) => {
            const h = unit(`${colour}\0${t.slice(0, 4096)}`);
            return t.toLowerCase().includes(colour) ? 0.55 + 0.45 * h : 0.6 * h;
          });
        });
        o.onBatch?.(images.map((im) => im.key));
        return out;
      },
    },
  };
}
