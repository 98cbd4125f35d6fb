// Which checkpoint tensors transformers keeps in float32 when it loads a model in float16
// (from_pretrained(torch_dtype=torch.float16)), so that `--dtype fp16` can keep the same ones.
//
// transformers 5 (modeling_utils.py, core_model_loading.py): a class's `_keep_in_fp32_modules` is
// gathered, in PreTrainedModel.post_init, with those of its parts (the language model's T5 adds
// "wo"); `_get_dtype_plan` maps each name to float32 when the requested dtype is float16; and
// `convert_and_load_state_dict_in_model` joins them into one regex alternation searched
// (`re.search`, unanchored) in every tensor's name. A name is kept wherever it occurs in a tensor's
// name, not only as a module: T5's "wo" also catches InstructBLIP's Q-Former
// `qformer.embeddings.word_embeddings` (measured with transformers 5.12.1).
//
// BLIP-2's whole Q-Former is the qformer node's keep_float32 attribute; LowerContext.keptFloat32
// answers for the single tensors a kind reads where such a match can fall (T5's `wo`, src/nodes/t5.ts;
// the Q-Former's text embeddings).
import type { JsonObject } from '../weights/checkpoint.js';

/** T5's `_keep_in_fp32_modules` (T5, MT5 and UMT5 pretrained models). */
const T5_FAMILY = new Set(['t5', 'mt5', 'umt5']);

/**
 * The keep-in-float32 names of the model a config.json describes: its class's and its parts'
 * `_keep_in_fp32_modules`. BLIP-2's classes keep ["query_tokens", "qformer"], InstructBLIP's
 * ["query_tokens"], BLIP's none; a T5 language model adds "wo" (OPT and LLaMA add none). A left-out
 * text_config is OPT's, as transformers builds it.
 */
export function keepFloat32Names(config: JsonObject): string[] {
  const type = String(config.model_type ?? '');
  const names = type === 'blip-2' || type === 'blip_2' ? ['query_tokens', 'qformer'] : type === 'instructblip' ? ['query_tokens'] : [];
  const text = config.text_config;
  const textType = typeof text === 'object' && text !== null && !Array.isArray(text) ? (text as JsonObject).model_type : undefined;
  if (type !== 'blip' && T5_FAMILY.has(String(textType))) names.push('wo');
  return names;
}

/**
 * Whether transformers loads checkpoint tensor `key` as float32 in a float16 model with these
 * keep-in-float32 names: one of them, read as transformers reads it (a regex, `*` as `.*`), is found
 * anywhere in the name.
 */
export function keptFloat32(names: readonly string[], key: string): boolean {
  return names.some((n) => new RegExp(n.replaceAll('*', '.*')).test(key));
}
