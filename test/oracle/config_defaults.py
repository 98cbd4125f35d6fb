"""What transformers reads from a config.json that leaves keys out: test/fixtures/config-defaults.json.

`classes`: every scalar default of the config classes blip-graph reads (BlipVisionConfig, OPTConfig, …).
`sparse`: config.json texts with most keys left out, and each section as transformers reads it back
(left-out keys defaulted, text_config without model_type read as OPT, the Q-Former's / BLIP text
encoder's encoder_hidden_size overwritten with the vision hidden_size). src/weights/transformersConfig.ts
is held to both by test/unit/weights/transformersConfig.test.ts.
"""

from __future__ import annotations

import transformers
from transformers import CONFIG_MAPPING

from common import FIXTURES, write_json

CLASSES = [
    "BlipConfig", "BlipVisionConfig", "BlipTextConfig",
    "Blip2Config", "Blip2VisionConfig", "Blip2QFormerConfig",
    "InstructBlipConfig", "InstructBlipVisionConfig", "InstructBlipQFormerConfig",
    "OPTConfig", "T5Config", "LlamaConfig",
]

# config.json of Salesforce/blip2-opt-2.7b and Salesforce/blip2-flan-t5-xl as the hub serves them
# (saved by transformers 4.47: the vision and Q-Former sections hold no sizes at all; T5's
# task_specific_params left out here).
HUB_BLIP2_OPT_2_7B = {
    "architectures": ["Blip2ForConditionalGeneration"], "image_text_hidden_size": 256, "image_token_index": 50265,
    "initializer_factor": 1.0, "initializer_range": 0.02, "model_type": "blip-2", "num_query_tokens": 32,
    "qformer_config": {"classifier_dropout": None, "model_type": "blip_2_qformer"},
    "text_config": {"_name_or_path": "facebook/opt-2.7b", "activation_dropout": 0.0, "architectures": ["OPTForCausalLM"],
                    "eos_token_id": 50118, "ffn_dim": 10240, "hidden_size": 2560, "model_type": "opt", "num_attention_heads": 32,
                    "num_hidden_layers": 32, "prefix": "</s>", "torch_dtype": "float16", "vocab_size": 50304, "word_embed_proj_dim": 2560},
    "torch_dtype": "float32", "transformers_version": "4.47.0.dev0", "use_decoder_only_language_model": True,
    "vision_config": {"dropout": 0.0, "initializer_factor": 1.0, "model_type": "blip_2_vision_model", "num_channels": 3, "projection_dim": 512},
}
HUB_BLIP2_FLAN_T5_XL = {
    "architectures": ["Blip2ForConditionalGeneration"], "image_text_hidden_size": 256, "image_token_index": 32100,
    "initializer_factor": 1.0, "initializer_range": 0.02, "model_type": "blip-2", "num_query_tokens": 32,
    "qformer_config": {"classifier_dropout": None, "model_type": "blip_2_qformer"},
    "text_config": {"architectures": ["T5ForConditionalGeneration"], "bos_token_id": 1, "classifier_dropout": 0.0, "d_ff": 5120,
                    "d_kv": 64, "d_model": 2048, "decoder_start_token_id": 0, "dense_act_fn": "gelu", "dropout_rate": 0.1,
                    "eos_token_id": 1, "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0, "is_encoder_decoder": True,
                    "is_gated_act": True, "layer_norm_epsilon": 1e-06, "model_type": "t5", "n_positions": 512, "num_decoder_layers": 24,
                    "num_heads": 32, "num_layers": 24, "output_past": True, "pad_token_id": 0, "relative_attention_max_distance": 128,
                    "relative_attention_num_buckets": 32, "tie_word_embeddings": False, "torch_dtype": "float32", "vocab_size": 32128},
    "torch_dtype": "float32", "transformers_version": "4.47.0.dev0", "use_decoder_only_language_model": False,
    "vision_config": {"dropout": 0.0, "initializer_factor": 1.0, "model_type": "blip_2_vision_model", "num_channels": 3, "projection_dim": 512},
}

# Salesforce/blip-image-captioning-base's config.json (saved by transformers 4.26 with every generic
# PretrainedConfig key, left out here), whose text_config has no encoder_hidden_size: BlipConfig sets it.
HUB_BLIP_CAPTIONING_BASE = {
    "architectures": ["BlipForConditionalGeneration"], "image_text_hidden_size": 256, "initializer_factor": 1.0,
    "logit_scale_init_value": 2.6592, "model_type": "blip", "projection_dim": 512, "torch_dtype": "float32",
    "text_config": {"attention_probs_dropout_prob": 0.0, "bos_token_id": 30522, "eos_token_id": 2, "hidden_act": "gelu",
                    "hidden_dropout_prob": 0.0, "hidden_size": 768, "initializer_factor": 1.0, "initializer_range": 0.02,
                    "intermediate_size": 3072, "is_decoder": True, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
                    "model_type": "blip_text_model", "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0,
                    "projection_dim": 768, "sep_token_id": 102, "tie_word_embeddings": True, "use_cache": True, "vocab_size": 30524},
    "vision_config": {"attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "gelu", "hidden_size": 768, "image_size": 384,
                      "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
                      "model_type": "blip_vision_model", "num_attention_heads": 12, "num_channels": 3, "num_hidden_layers": 12,
                      "patch_size": 16, "projection_dim": 512},
}

SPARSE = [
    HUB_BLIP2_OPT_2_7B,
    HUB_BLIP2_FLAN_T5_XL,
    HUB_BLIP_CAPTIONING_BASE,
    {"model_type": "blip", "vision_config": {"hidden_size": 64}, "text_config": {"encoder_hidden_size": 32, "hidden_size": 48}},
    {"model_type": "blip-2", "vision_config": {"hidden_size": 48, "layer_norm_eps": 1e-5},
     "qformer_config": {"hidden_size": 32, "encoder_hidden_size": 16}, "text_config": {"hidden_size": 64}},
    {"model_type": "blip-2", "num_query_tokens": 8, "vision_config": {}, "qformer_config": {},
     "text_config": {"model_type": "t5", "d_model": 64}},
    {"model_type": "blip-2"},
    {"model_type": "blip", "vision_config": None, "text_config": {"hidden_size": 48}},
    {"model_type": "instructblip", "vision_config": {"image_size": 64}, "qformer_config": {"num_hidden_layers": 2},
     "text_config": {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4}},
]


def scalars(cfg) -> dict:
    return {k: v for k, v in cfg.to_dict().items() if isinstance(v, (int, float, str, bool)) or v is None}


def build_all() -> None:
    classes = {name: scalars(getattr(transformers, name)()) for name in CLASSES}
    sparse = []
    for given in SPARSE:
        cfg = CONFIG_MAPPING[given["model_type"]].from_dict(dict(given))
        read = {"": scalars(cfg)}
        for section in ("vision_config", "qformer_config", "text_config"):
            sub = getattr(cfg, section, None)
            if sub is not None:
                read[section] = scalars(sub)
        sparse.append({"config": given, "read": read})
    write_json(FIXTURES / "config-defaults.json", {"transformers": transformers.__version__, "classes": classes, "sparse": sparse})
