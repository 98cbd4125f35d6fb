// What a checkpoint's config.json means to transformers: a key a section leaves out takes its config
// class's default (BlipVisionConfig's layer_norm_eps is 1e-5, Blip2VisionConfig's 1e-6, BlipTextConfig
// has 8 heads, …), and the composite configs overwrite one key of their own accord (the Q-Former's and
// BLIP's text encoder_hidden_size is the vision hidden_size, whatever the file says). Reading the file
// without these would compile another model than transformers runs, or refuse one it loads.
//
// Only the keys blip-graph reads are listed. Keys transformers derives from others (OPT's
// word_embed_proj_dim, LLaMA's head_dim and num_key_value_heads, T5's num_decoder_layers and its
// activation) are derived by the node kinds' fromConfig, as transformers does, and are not listed.
// test/unit/weights/transformersConfig.test.ts holds this table against transformers 5.12's classes
// (test/fixtures/config-defaults.json, written by test/oracle/config_defaults.py).
import type { JsonObject } from './checkpoint.js';

type Defaults = Readonly<Record<string, number | string | boolean | null>>;

const VISION_EVA: Defaults = {
  hidden_size: 1408, intermediate_size: 6144, num_hidden_layers: 39, num_attention_heads: 16, image_size: 224, patch_size: 14,
  hidden_act: 'gelu', layer_norm_eps: 1e-6, qkv_bias: true,
};
const QFORMER: Defaults = {
  vocab_size: 30522, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, hidden_act: 'gelu',
  max_position_embeddings: 512, layer_norm_eps: 1e-12, cross_attention_frequency: 2, pad_token_id: 0,
};

/** transformers 5.12's defaults, by config class, of the keys blip-graph reads. */
export const CONFIG_CLASS_DEFAULTS: Readonly<Record<string, Defaults>> = {
  BlipConfig: { projection_dim: 512, image_text_hidden_size: 256 },
  BlipVisionConfig: {
    hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, image_size: 384, patch_size: 16,
    hidden_act: 'gelu', layer_norm_eps: 1e-5,
  },
  BlipTextConfig: {
    vocab_size: 30524, hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 8, max_position_embeddings: 512,
    hidden_act: 'gelu', layer_norm_eps: 1e-12, bos_token_id: 30522, eos_token_id: 2, pad_token_id: 0, sep_token_id: 102,
  },
  Blip2Config: { num_query_tokens: 32, image_text_hidden_size: 256 },
  Blip2VisionConfig: VISION_EVA,
  Blip2QFormerConfig: QFORMER,
  InstructBlipConfig: { num_query_tokens: 32 },
  InstructBlipVisionConfig: VISION_EVA,
  InstructBlipQFormerConfig: QFORMER,
  OPTConfig: {
    vocab_size: 50272, hidden_size: 768, num_hidden_layers: 12, ffn_dim: 3072, max_position_embeddings: 2048, do_layer_norm_before: true,
    num_attention_heads: 12, activation_function: 'relu', pad_token_id: 1, bos_token_id: 2, eos_token_id: 2, tie_word_embeddings: true,
    enable_bias: true, layer_norm_elementwise_affine: true, _remove_final_layer_norm: false,
  },
  T5Config: {
    vocab_size: 32128, d_model: 512, d_kv: 64, d_ff: 2048, num_layers: 6, num_heads: 8, relative_attention_num_buckets: 32,
    relative_attention_max_distance: 128, layer_norm_epsilon: 1e-6, feed_forward_proj: 'relu', pad_token_id: 0, eos_token_id: 1,
  },
  LlamaConfig: {
    vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, hidden_act: 'silu',
    max_position_embeddings: 2048, rms_norm_eps: 1e-6, pad_token_id: null, bos_token_id: 1, eos_token_id: 2, tie_word_embeddings: false,
    attention_bias: false, mlp_bias: false,
  },
};

/** The language models' config classes by model_type (transformers' CONFIG_MAPPING, the ones blip-graph lowers). */
const LANGUAGE_MODEL_CLASSES: Record<string, string> = { opt: 'OPTConfig', t5: 'T5Config', llama: 'LlamaConfig' };

const FAMILY_CLASSES: Record<string, { root: string; sections: Record<string, string> }> = {
  blip: { root: 'BlipConfig', sections: { vision_config: 'BlipVisionConfig', text_config: 'BlipTextConfig' } },
  'blip-2': { root: 'Blip2Config', sections: { vision_config: 'Blip2VisionConfig', qformer_config: 'Blip2QFormerConfig' } },
  instructblip: { root: 'InstructBlipConfig', sections: { vision_config: 'InstructBlipVisionConfig', qformer_config: 'InstructBlipQFormerConfig' } },
};
FAMILY_CLASSES.blip_2 = FAMILY_CLASSES['blip-2'];

/** BlipVisionConfig's, Blip2VisionConfig's and InstructBlipVisionConfig's model_type (what their to_dict writes): the vit kind's modelTypes. */
export const BLIP_VISION_MODEL_TYPES: readonly string[] = ['blip_vision_model', 'blip_2_vision_model', 'instructblip_vision_model'];

/**
 * The model_types the BLIP families' section classes write (their to_dict), by section. Blip2Config
 * and the others read a section with their own class whatever model_type it names (vision_config is
 * Blip2VisionConfig(**section), even one saying "siglip_vision_model"), so these read as the family's
 * class, as transformers reads them. Any other model_type is another model, which the family's
 * classes cannot build (Blip2VisionModel has no SigLIP tower): its keys are not Blip2VisionConfig's
 * to fill, and what it leaves out is the node kind's to say (its lowering.defaults).
 */
const FAMILY_SECTION_TYPES: Record<string, readonly string[]> = {
  vision_config: BLIP_VISION_MODEL_TYPES,
  qformer_config: ['blip_2_qformer', 'instructblip_qformer'],
  text_config: ['blip_text_model'],
};

/** A JSON object (not null, not an array): a config section. */
export const isJsonObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A table entry by a name config.json gives: own keys only ("constructor" is no model_type). */
const own = <T>(table: Record<string, T>, key: unknown): T | undefined => (typeof key === 'string' && Object.hasOwn(table, key) ? table[key] : undefined);

/**
 * Keys written as null that transformers 5.12 refuses (its config classes are typed dataclasses:
 * `hidden_size: int` takes no None), as [section ('' the top level), key]. The special ids may be
 * null (no such token), and keys blip-graph does not read are not looked at.
 */
export function nullProblems(config: JsonObject): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const name of ['', 'vision_config', 'qformer_config', 'text_config']) {
    const section = name === '' ? config : config[name];
    const cls = configClassOf(config, name);
    if (!cls || !isJsonObject(section)) continue;
    for (const [k, v] of Object.entries(CONFIG_CLASS_DEFAULTS[cls])) {
      if (section[k] === null && v !== null && !k.endsWith('_token_id')) out.push([name, k]);
    }
  }
  return out;
}

/**
 * The config class transformers reads a section with ('' is the top level), or undefined for a
 * section it does not know, or one of another model (a vision_config of model_type
 * "siglip_vision_model": FAMILY_SECTION_TYPES).
 */
export function configClassOf(config: JsonObject, section: string): string | undefined {
  const family = own(FAMILY_CLASSES, config.model_type);
  if (!family) return undefined;
  if (section === '') return family.root;
  if (section === 'text_config' && family.root !== 'BlipConfig') {
    // Blip2Config / InstructBlipConfig: text_config.get("model_type", "opt")
    const text = config.text_config;
    const type = isJsonObject(text) && text.model_type !== undefined ? text.model_type : 'opt';
    return own(LANGUAGE_MODEL_CLASSES, type);
  }
  const given = config[section];
  const type = isJsonObject(given) ? given.model_type : undefined;
  if (typeof type === 'string' && type !== '' && !own(FAMILY_SECTION_TYPES, section)?.includes(type)) return undefined;
  return own(family.sections, section);
}

export interface EffectiveConfig {
  /** config.json as transformers reads it: left-out keys filled with their class's defaults, forced keys forced. */
  config: JsonObject;
  /** Per section ('' the top level): the class whose defaults filled keys, and which keys it filled. */
  filled: Map<string, { cls: string; keys: Set<string> }>;
  /** Sections config.json leaves out (or writes as null), built from their class's defaults alone. */
  wholeDefaults: Set<string>;
}

/**
 * config.json as transformers' config classes read it. A section that is left out or null is built
 * from its class's defaults; one that is not an object is left as it is, for the compiler to refuse.
 */
export function effectiveConfig(config: JsonObject): EffectiveConfig {
  const out: JsonObject = { ...config };
  const filled: EffectiveConfig['filled'] = new Map();
  const wholeDefaults = new Set<string>();
  const fill = (name: string, section: JsonObject): JsonObject => {
    const cls = configClassOf(config, name);
    if (!cls) return section;
    const next: JsonObject = { ...section };
    const keys = new Set<string>();
    // Only left-out keys: one written as null is not "left out" (transformers 5.12's typed fields
    // refuse it; nullProblems says so).
    for (const [k, v] of Object.entries(CONFIG_CLASS_DEFAULTS[cls])) {
      if (next[k] === undefined && v !== null) (next[k] = v), keys.add(k);
    }
    // Blip2Config / InstructBlipConfig read a text_config without model_type as OPT's
    if (name === 'text_config' && cls === 'OPTConfig' && next.model_type === undefined) (next.model_type = 'opt'), keys.add('model_type');
    if (keys.size) filled.set(name, { cls, keys });
    return next;
  };
  Object.assign(out, fill('', config));
  for (const name of ['vision_config', 'qformer_config', 'text_config']) {
    if (isJsonObject(config[name])) out[name] = fill(name, config[name] as JsonObject);
    // A section left out (or null) is its class with every default, as the composite configs build it.
    else if ((config[name] === undefined || config[name] === null) && configClassOf(config, name)) (out[name] = fill(name, {})), wholeDefaults.add(name);
  }
  // BlipConfig: text_config.encoder_hidden_size = vision_config.hidden_size; Blip2Config and
  // InstructBlipConfig: the same for qformer_config.
  const family = own(FAMILY_CLASSES, config.model_type);
  const fed = family?.root === 'BlipConfig' ? 'text_config' : family ? 'qformer_config' : undefined;
  const vision = out.vision_config;
  if (fed && isJsonObject(out[fed]) && isJsonObject(vision) && typeof vision.hidden_size === 'number') {
    const section = out[fed] as JsonObject;
    if (section.encoder_hidden_size !== vision.hidden_size) {
      out[fed] = { ...section, encoder_hidden_size: vision.hidden_size };
      const given = config[fed];
      if (!isJsonObject(given) || given.encoder_hidden_size === undefined) {
        const entry = filled.get(fed) ?? { cls: configClassOf(config, fed)!, keys: new Set<string>() };
        entry.keys.add('encoder_hidden_size');
        filled.set(fed, entry);
      }
    }
  }
  return { config: out, filled, wholeDefaults };
}
