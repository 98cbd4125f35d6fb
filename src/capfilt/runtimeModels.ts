// The CapFilt models over the runtime's task API (runtime/model.ts): the captioner samples K
// captions per image with BLIP's CapFilt settings, and the filter scores every (image, text) pair
// with the ITM head. Images arrive decoded (PIL-exact, by the pipeline) and are never decoded again;
// they are resized as the image backend the run was given says (--image-backend).
import { join } from 'node:path';
import { load, type BlipModel } from '../../runtime/model.js';
import { preprocessFromManifest, resizeForModel, type PreprocessConfig } from '../../runtime/preprocess/index.js';
import { isCjk } from '../../runtime/tokenizers/cjk.js';
import { loadTokenizer, type HfTokenizer } from '../../runtime/tokenizers/hf.js';
import { BlipError } from '../cli/Command.js';
import type { CapfiltModels, ImageInput, ModelSpec, Pixels } from './model.js';

/** BLIP's captioner prompt (models/blip.py generate); the caption is what follows it. */
export const CAPTION_PROMPT = 'a picture of ';
/** BLIP's ITM head reads at most 35 tokens ([CLS] and [SEP] included; models/blip_itm.py). */
export const ITM_MAX_TOKENS = 35;
/** BLIP's CapFilt samples with this repetition penalty (models/blip.py generate, sample=True). */
export const CAPTION_REPETITION_PENALTY = 1.1;

/** What BERT's pre-tokenizer always splits after: whitespace, punctuation (its ASCII list and \p{P}). */
const SPLITS = /[\p{White_Space}\p{P}!-/:-@[-`{-~]/u;
/** ... and a CJK character, which its normalizer spaces apart. */
const isSplitPoint = (ch: string): boolean => SPLITS.test(ch) || isCjk(ch.codePointAt(0)!, 0x2b920);

/**
 * The start of `text` that holds its first `maxTokens` tokens, so that a huge web text is not
 * tokenized whole to score its first 35 tokens. The cut falls where BERT's pre-tokenizer splits,
 * so the start's tokens are the text's first tokens; it grows until it holds enough of them.
 */
export function itmPrefix(tok: HfTokenizer, text: string, maxTokens = ITM_MAX_TOKENS, chars = 4096): string {
  for (let budget = chars; budget < text.length; budget *= 4) {
    let cut = budget;
    while (cut > 0 && !isSplitPoint(text[cut - 1])) cut--;
    if (cut === 0) {
      // one word longer than the budget: cut after it
      const m = SPLITS.exec(text.slice(budget));
      cut = m ? budget + m.index + 1 : text.length;
    }
    const head = text.slice(0, cut);
    if (cut >= text.length || tok.encode(head, { addSpecialTokens: false }).length >= maxTokens) return head;
  }
  return text;
}

/**
 * A sampled caption as BLIP's CapFilt takes it: the whole sequence decoded, prompt included, then
 * the prompt's characters cut off (models/blip.py: caption[len(self.prompt):]). A first token that
 * continues the prompt's last word ("##s") thus eats into the caption, as it does there.
 */
export function captionText(tok: HfTokenizer, promptIds: number[], tokenIds: number[]): string {
  return [...tok.decode([...promptIds, ...tokenIds], { skipSpecialTokens: true })].slice(CAPTION_PROMPT.length).join('');
}

export type RuntimeModelSpec = ModelSpec;

/** Load the captioner and the filter with the runtime (the folders are checked first by loadModels). */
export async function loadRuntimeModels(spec: RuntimeModelSpec): Promise<CapfiltModels> {
  const opts = { device: spec.device, threads: spec.threads, imageBackend: spec.imageBackend };
  const cap = await load(spec.captioner, opts);
  let itm: BlipModel;
  try {
    itm = await load(spec.filter, opts);
  } catch (e) {
    await cap.close();
    throw e;
  }
  const tokenizerOf = (m: BlipModel, flag: string, dir: string): HfTokenizer => {
    const d = m.manifest.tokenizer?.dir;
    if (!d) throw new BlipError('BLIP5806', `${flag} ${dir}: the manifest names no tokenizer; recompile the model`);
    return loadTokenizer(join(dir, d));
  };
  const tok = tokenizerOf(itm, '--filter', spec.filter);
  const capTok = tokenizerOf(cap, '--captioner', spec.captioner);
  const promptIds = capTok.encode(CAPTION_PROMPT, { addSpecialTokens: false });
  // the ITM head's 35 tokens, or fewer where the filter has fewer positions (BLIP-2's Q-Former: 32)
  const lim = itm.manifest.text.max_positions;
  const itmTokens = Math.min(ITM_MAX_TOKENS, lim?.text ?? lim?.qformer_text ?? ITM_MAX_TOKENS);
  const backend = spec.imageBackend ?? 'pil';
  const capPre = { ...preprocessFromManifest(cap.manifest.preprocess, `${join(spec.captioner, 'manifest.json')} preprocess`), backend };
  const itmPre = { ...preprocessFromManifest(itm.manifest.preprocess, `${join(spec.filter, 'manifest.json')} preprocess`), backend };
  // Each image is resized once per distinct preprocessing (the captioner and the filter of one BLIP
  // family usually share theirs), as soon as it is decoded (prepare), and the runtime then only
  // normalises it.
  const resizeKey = (cfg: PreprocessConfig): string => JSON.stringify([cfg.do_resize, cfg.image_size, cfg.resample]);
  const resize = (pixels: Pixels, cfg: PreprocessConfig): Pixels => {
    const r = resizeForModel(pixels, cfg);
    return { data: r.data, width: r.width, height: r.height, channels: 3 };
  };
  const prepare = (pixels: Pixels): Map<string, Pixels> => {
    const per = new Map<string, Pixels>();
    for (const cfg of [capPre, itmPre]) if (!per.has(resizeKey(cfg))) per.set(resizeKey(cfg), resize(pixels, cfg));
    return per;
  };
  // (images given full size, not prepared: resized on first use)
  const resized = new WeakMap<ImageInput, Map<string, Pixels>>();
  // whether the filter's retrieval.onnx takes each image once for all its pairs
  const pairedItm = (itm.manifest.graphs.retrieval?.inputs ?? []).some((i) => i.name === 'pair_image');
  const sized = (im: ImageInput, cfg: PreprocessConfig): Pixels => {
    const key = resizeKey(cfg);
    const ready = im.prepared?.get(key);
    if (ready) return ready;
    if (!im.pixels) throw new Error(`image ${im.key} has neither its pixels nor them resized for this model`);
    let per = resized.get(im);
    if (!per) resized.set(im, (per = new Map()));
    let px = per.get(key);
    if (!px) per.set(key, (px = resize(im.pixels, cfg)));
    return px;
  };

  return {
    prepare,
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
            repetitionPenalty: CAPTION_REPETITION_PENALTY,
            maxLength: o.maxLength,
            minLength: o.minLength,
            minNewTokens: 0,
            numReturnSequences: o.k,
            seed: o.seeds.flat(),
            batchSize: images.length,
          },
        );
        // BLIP's decoder continues the prompt in its own text: cut as BLIP cuts it; an LLM's new text is apart
        const blip = cap.manifest.family === 'blip';
        return res.map((r) => (r.sequences ?? [r]).map((s) => (blip ? captionText(capTok, promptIds, s.tokenIds) : s.text)));
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
            pairsText.push(itmPrefix(tok, t, itmTokens));
          }
        });
        if (pairsImg.length === 0) return images.map(() => []);
        // Calls of as many pairs as the batch has images, or, where retrieval.onnx takes each image
        // once (pair_image), as one image has texts if that is more: itm() keeps an image's pairs in
        // one call, so each image is encoded once. (An older artifact runs the ViT once per pair:
        // K + 1 rows would be K + 1 images' activations.)
        const perCall = Math.max(1, images.length, ...(pairedItm ? texts.map((t) => t.length) : []));
        const scores = await itm.itm(pairsImg, pairsText, { batchSize: perCall, maxTextTokens: itmTokens });
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
