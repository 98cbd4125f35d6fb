"""What transformers computes for a BLIP-2 fixture loaded in float16 (from_pretrained(dtype=float16)).

transformers keeps BLIP-2's Q-Former and query tokens in float32 in a float16 model
(`_keep_in_fp32_modules = ["query_tokens", "qformer"]`): the vision encoder runs in float16, its
features are cast up to float32 for the Q-Former, and the query outputs are cast back to float16
for the language projection. This records, on the fixture's own pixel values, the image features,
the Q-Former outputs and the projected prefix, all as float32 arrays, into
test/fixtures/<fixture>/fp16.safetensors; and the same from the model with *every* module in
float16 (`.half()`), the alternative that `--dtype fp16` must not follow, for comparison.

    cd /work/main && ../shared/oracle/py test/oracle/blip2_fp16.py blip2-opt-a
"""

from __future__ import annotations

import sys

import torch
from safetensors.torch import load_file
from transformers import Blip2ForConditionalGeneration

from common import FIXTURES, write_tensors



def features(model, pixel_values: torch.Tensor) -> dict:
    with torch.inference_mode():
        image = model.vision_model(pixel_values=pixel_values.to(model.vision_model.dtype))[0]
        queries = model.query_tokens.expand(image.shape[0], -1, -1)
        q = model.qformer(query_embeds=queries, encoder_hidden_states=image)[0]
        prefix = model.language_projection(q.to(image.dtype))
    return {"image_embeds": image.float(), "qformer_last_hidden_state": q.float(), "prefix_embeds": prefix.float()}


def main(name: str) -> None:
    fixture = FIXTURES / name
    pixels = load_file(str(fixture / "expected.safetensors"))["pixel_values"]
    kept = Blip2ForConditionalGeneration.from_pretrained(fixture / "checkpoint", dtype=torch.float16)
    assert kept.qformer.layernorm.weight.dtype == torch.float32, "transformers no longer keeps the Q-Former in float32"
    assert kept.vision_model.embeddings.patch_embedding.weight.dtype == torch.float16
    allhalf = Blip2ForConditionalGeneration.from_pretrained(fixture / "checkpoint", dtype=torch.float32).half()
    out = {f"fp16/{k}": v for k, v in features(kept, pixels).items()}
    out.update({f"all_half/{k}": v for k, v in features(allhalf, pixels).items()})
    out["pixel_values"] = pixels
    write_tensors(fixture / "fp16.safetensors", out, {"transformers": __import__("transformers").__version__})
    for k, v in out.items():
        print(k, tuple(v.shape))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "blip2-opt-a")
