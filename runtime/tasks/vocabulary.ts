// Token ids a model has no embedding for. A tokenizer can hold tokens beyond the vocabulary of the
// encoder that reads its ids (BLIP-2's processor adds `<image>` to a Q-Former tokenizer of exactly
// its vocabulary's size); onnxruntime would fail in a Gather far from the cause, transformers with
// an IndexError. Named here instead, with the text and the token (BLIP5033).
import { BlipRuntimeError } from '../errors.js';
import type { HfTokenizer } from '../tokenizers/hf.js';

/**
 * Refuse a row of `ids` (unmasked positions) holding an id >= `vocab`. `texts[i]` is row i's text,
 * `reader` what reads the ids ("the Q-Former").
 */
export function checkVocabulary(tok: HfTokenizer, ids: number[][], mask: number[][] | undefined, texts: readonly string[], vocab: number | undefined, reader: string): void {
  if (vocab === undefined) return;
  for (let i = 0; i < ids.length; i++) {
    const j = ids[i].findIndex((id, k) => id >= vocab && (!mask || mask[i][k] !== 0));
    if (j < 0) continue;
    const id = ids[i][j];
    const text = texts[i] ?? '';
    throw new BlipRuntimeError(
      'BLIP5033',
      `text ${JSON.stringify(text.length > 60 ? text.slice(0, 57) + '...' : text)} has the token ${JSON.stringify(tok.idToToken(id) ?? '?')} (id ${id}), which ${reader} has no embedding for: its vocabulary has ${vocab} tokens and the tokenizer more; leave that token out of the text`,
    );
  }
}
