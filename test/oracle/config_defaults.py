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

SPARSE = [
    {"model_type": "blip", "vision_config": {"hidden_size": 64}, "text_config": {"encoder_hidden_size": 32, "hidden_size": 48}},
    {"model_type": "blip-2", "vision_config": {"hidden_size": 48, "layer_norm_eps": 1e-5},
     "qformer_config": {"hidden_size": 32, "encoder_hidden_size": 16}, "text_config": {"hidden_size": 64}},
    {"model_type": "blip-2", "num_query_tokens": 8, "vision_config": {}, "qformer_config": {},
     "text_config": {"model_type": "t5", "d_model": 64}},
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
