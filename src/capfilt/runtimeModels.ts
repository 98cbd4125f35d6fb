// The CapFilt models over the runtime's task API (runtime/model.ts): the captioner samples K
// captions per image with BLIP's CapFilt settings, and the filter scores every (image, text) pair
// with the ITM head. Images arrive decoded (PIL-exact, by the pipeline) and are never decoded again.
import { join } from 'node:path';
import { load, type BlipModel } from '../../runtime/model.js';
import { preprocessFromManifest, resizeForModel, type PreprocessConfig } from '../../runtime/preprocess/index.js';
import { loadTokenizer, type HfTokenizer } from '../../runtime/tokenizers/hf.js';
import { BlipError } from '../cli/Command.js';
import type { CapfiltModels, ImageInput, ModelSpec, Pixels } from './model.js';

/** BLIP's captioner prompt (models/blip.py generate); the caption is what follows it. */
export const CAPTION_PROMPT = 'a picture of ';
/** BLIP's ITM head reads at most 35 tokens ([CLS] and [SEP] included; models/blip_itm.py). */
export const ITM_MAX_TOKENS = 35;

/**
 * `text` cut to at most `maxTokens` tokens (special tokens included) at a word boundary. A huge web
 * text is cut to its first words before it is tokenized at all.
 */
export function truncateForItm(tok: HfTokenizer, text: string, maxTokens = ITM_MAX_TOKENS): string {
  const words = text.split(/\s+/).filter((w) => w !== '');
  if (words.length <= maxTokens && tok.encode(text).length <= maxTokens) return text;
  // Every word is at least one token, so the first maxTokens words hold at least maxTokens tokens.
  const fits = (k: number): boolean => tok.encode(words.slice(0, k).join(' ')).length <= maxTokens;
  let lo = 0;
  let hi = Math.min(words.length, maxTokens); // fits(lo) holds, fits(hi) does not
  if (fits(hi)) return words.slice(0, hi).join(' ');
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  // A first word longer than the budget on its own: keep its first characters.
  return lo === 0 ? words[0].slice(0, maxTokens) : words.slice(0, lo).join(' ');
}

export type RuntimeModelSpec = ModelSpec;

/** Load the captioner and the filter with the runtime (the folders are checked first by loadModels). */
export async function loadRuntimeModels(spec: RuntimeModelSpec): Promise<CapfiltModels> {
  const opts = { device: spec.device, threads: spec.threads };
  const cap = await load(spec.captioner, opts);
  let itm: BlipModel;
  try {
    itm = await load(spec.filter, opts);
  } catch (e) {
    await cap.close();
    throw e;
  }
  const tokDir = itm.manifest.tokenizer?.dir;
  if (!tokDir) throw new BlipError('BLIP5806', `--filter ${spec.filter}: the manifest names no tokenizer; recompile the model`);
  const tok = loadTokenizer(join(spec.filter, tokDir));
  const capPre = preprocessFromManifest(cap.manifest.preprocess, `${join(spec.captioner, 'manifest.json')} preprocess`);
  const itmPre = preprocessFromManifest(itm.manifest.preprocess, `${join(spec.filter, 'manifest.json')} preprocess`);
  // Each image is resized once per distinct preprocessing (the captioner and the filter of one BLIP
  // family usually share theirs), and the runtime then only normalises it.
  const resized = new WeakMap<ImageInput, Map<string, Pixels>>();
  // whether the filter's retrieval.onnx takes each image once for all its pairs
  const pairedItm = (itm.manifest.graphs.retrieval?.inputs ?? []).some((i) => i.name === 'pair_image');
  const sized = (im: ImageInput, cfg: PreprocessConfig): Pixels => {
    const key = JSON.stringify([cfg.do_resize, cfg.image_size, cfg.resample]);
    let per = resized.get(im);
    if (!per) resized.set(im, (per = new Map()));
    let px = per.get(key);
    if (!px) {
      const r = resizeForModel(im.pixels, cfg);
      px = { data: r.data, width: r.width, height: r.height, channels: 3 };
      per.set(key, px);
    }
    return px;
  };

  return {
    captioner: {
      async caption(images, o) {
        const res = await cap.generate(
          images.map((im) => sized(im, capPre)),
          {
            prompt: CAPTION_PROMPT,
            doSample: true,
            topP: o.topP,
            topK: 50, // transformers' default, active in BLIP's CapFilt sampling
            temperature: 1,
            numBeams: 1,
            repetitionPenalty: 1,
            maxLength: o.maxLength,
            minLength: o.minLength,
            minNewTokens: 0,
            numReturnSequences: o.k,
            seed: o.seeds.flat(),
            batchSize: images.length,
          },
        );
        return res.map((r) => (r.sequences ?? [r]).map((s) => s.text));
      },
    },
    matcher: {
      async itm(images, texts) {
        // One resized image object shared by all the pairs of an image.
        const pairsImg: Pixels[] = [];
        const pairsText: string[] = [];
        images.forEach((im: ImageInput, i) => {
          const px = sized(im, itmPre);
          for (const t of texts[i]) {
            pairsImg.push(px);
            pairsText.push(truncateForItm(tok, t));
          }
        });
        if (pairsImg.length === 0) return images.map(() => []);
        // Calls of as many pairs as the batch has images, or, where retrieval.onnx takes each image
        // once (pair_image), as one image has texts if that is more: itm() keeps an image's pairs in
        // one call, so each image is encoded once. (An older artifact runs the ViT once per pair:
        // K + 1 rows would be K + 1 images' activations.)
        const perCall = Math.max(1, images.length, ...(pairedItm ? texts.map((t) => t.length) : []));
        const scores = await itm.itm(pairsImg, pairsText, { batchSize: perCall });
        const out: number[][] = [];
        let k = 0;
        for (let i = 0; i < images.length; i++) {
          const row: number[] = [];
          for (let j = 0; j < texts[i].length; j++, k++) {
            const p = scores[k].itm;
            if (!Number.isFinite(p)) throw new BlipError('BLIP5806', `--filter ${spec.filter} returned no ITM probability (its retrieval graph has no itm_score output)`);
            row.push(p);
          }
          out.push(row);
        }
        return out;
      },
    },
    async close() {
      await cap.close();
      await itm.close();
    },
  };
}
