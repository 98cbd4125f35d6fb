"""The composition fixture: a pairing the BLIP papers never shipped, a BLIP-2 Q-Former feeding a LLaMA
decoder (graphs/examples/blip2-llama.blip). transformers can build it (Blip2ForConditionalGeneration
takes any causal-LM text config), so it is checked exactly like the published families, not just run.

    cd /work/main && ../shared/oracle/py test/oracle/composition.py

Reuses blip2.py's procedure (random weights, saved in HF layout, reloaded, outputs recorded).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import blip2  # noqa: E402

SPEC = dict(
    kind="opt",  # decoder-only: the same placeholder path as OPT in Blip2ForConditionalGeneration
    seed=401,
    tokenizer="llama",
    num_query_tokens=6,
    vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                image_size=32, patch_size=8, layer_norm_eps=1e-6),
    qformer=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                 cross_attention_frequency=1, layer_norm_eps=1e-12, max_position_embeddings=32),
    # LLaMA with grouped KV heads and a 48-wide model: the projection maps 32 -> 48
    text=dict(model_type="llama", hidden_size=48, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6,
              rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, vocab_size=608,
              bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False),
    eos_boost=True,
    images=["rgb_37x23.png", "photo_64x48.jpg"],
)

if __name__ == "__main__":
    blip2.SPECS["blip2-llama-a"] = SPEC
    blip2.build_one("blip2-llama-a")
