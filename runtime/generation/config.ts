// GenerationOptions from an artifact's manifest (`generation` defaults and `text` special ids),
// with the caller's overrides on top (a --max-new-tokens flag, a per-request setting, ...).
import type { Generation, TextConventions } from '../../src/artifact/manifest.js';
import type { GenerationOptions } from './types.js';

/**
 * transformers semantics carried over: a max_length that came from no file (`source.max_length ===
 * 'default'`) means "20 new tokens", as generate() treats its built-in default, the whole sequence
 * capped at the generating model's max_position_embeddings (text.max_position_embeddings; artifacts
 * compiled before it record the learned table's rows only); EOS and padding come from the manifest's
 * text conventions (BLIP: [SEP] / [PAD], as its generate() sets them).
 */
export function generationOptionsFromManifest(gen: Generation | undefined, text: TextConventions, overrides: GenerationOptions = {}): GenerationOptions {
  const o: GenerationOptions = {
    eosTokenId: text.eos_token_id.length === 1 ? text.eos_token_id[0] : [...text.eos_token_id],
    padTokenId: text.pad_token_id,
  };
  const positions = text.max_position_embeddings ?? text.max_positions?.decoder;
  if (positions !== undefined) o.maxPositionEmbeddings = positions;
  if (gen) {
    if (gen.max_new_tokens !== undefined) o.maxNewTokens = gen.max_new_tokens;
    else if (gen.max_length !== undefined && gen.source?.max_length !== 'default') o.maxLength = gen.max_length;
    if (gen.min_new_tokens !== undefined) o.minNewTokens = gen.min_new_tokens;
    if (gen.min_length !== undefined) o.minLength = gen.min_length;
    o.numBeams = gen.num_beams;
    o.doSample = gen.do_sample;
    if (gen.length_penalty !== undefined) o.lengthPenalty = gen.length_penalty;
    if (gen.early_stopping !== undefined) o.earlyStopping = gen.early_stopping;
    if (gen.repetition_penalty !== undefined) o.repetitionPenalty = gen.repetition_penalty;
    if (gen.no_repeat_ngram_size !== undefined) o.noRepeatNgramSize = gen.no_repeat_ngram_size;
    if (gen.top_p !== undefined) o.topP = gen.top_p;
    if (gen.top_k !== undefined) o.topK = gen.top_k;
    if (gen.temperature !== undefined) o.temperature = gen.temperature;
  }
  // an override of either bound of a length replaces both from the manifest (the new-token bound
  // wins over the whole-sequence one, so the manifest's min_new_tokens would outlive a minLength)
  if (overrides.maxNewTokens !== undefined || overrides.maxLength !== undefined) {
    delete o.maxNewTokens;
    delete o.maxLength;
  }
  if (overrides.minNewTokens !== undefined || overrides.minLength !== undefined) {
    delete o.minNewTokens;
    delete o.minLength;
  }
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) (o as Record<string, unknown>)[k] = v;
  return o;
}
