"""A full-size BLIP-base captioning checkpoint with random weights, for the compile benchmark
(docs/performance.md) and test/unit/compiler/fullsize.test.ts. Not committed: ~1 GB.

    cd /work/main && ../shared/oracle/py test/oracle/make_fullsize.py [--out .bench/blip-base-random]

BlipConfig() is the BLIP-base layout (ViT-B/16 at 384 px, 12 layers of 768; BERT-base text decoder,
vocabulary 30524), as in Salesforce/blip-image-captioning-base. Every parameter is drawn fresh
(transformers' own init leaves the vision weights near zero), then the model is saved as
transformers 5 saves it, with the outputs of a few inputs to compare against:

    expected.safetensors  pixel_values (2, 3, 384, 384), image_embeds (2, 577, 768),
                          decoder_logits (2, 6, 30524) for decoder_input_ids
    expected.json         decoder_input_ids, the config summary
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import BlipConfig, BlipForConditionalGeneration

torch.manual_seed(1234)
torch.set_num_threads(2)


def randomise(model: torch.nn.Module) -> None:
    """N(0, 0.02) for weights and biases, N(1, 0.02) for layer-norm scales: activations stay O(1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm_scale = name.endswith(".weight") and ("LayerNorm" in name or "layer_norm" in name or "layernorm" in name)
            if is_norm_scale:
                p.copy_(1 + 0.02 * torch.randn_like(p))
            else:
                p.copy_(0.02 * torch.randn_like(p))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".bench/blip-base-random")
    out = Path(ap.parse_args().out)
    ckpt = out / "checkpoint"
    ckpt.mkdir(parents=True, exist_ok=True)

    # BlipTextConfig's default has 8 heads; the published blip-image-captioning-base decoder has 12
    # (the pinned graph says so). Same tensors either way, but the layout should be the real one.
    model = BlipForConditionalGeneration(BlipConfig(text_config={"num_attention_heads": 12})).eval()
    randomise(model)
    model.save_pretrained(ckpt)

    pixel_values = torch.randn(2, 3, 384, 384)
    # [DEC] a picture of ... (BERT ids), two rows, the second right-padded.
    ids = torch.tensor([[30522, 1037, 3861, 1997, 1037, 4937], [30522, 1037, 3899, 1997, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        image_embeds = model.vision_model(pixel_values=pixel_values).last_hidden_state
        logits = model.text_decoder(input_ids=ids, attention_mask=mask, encoder_hidden_states=image_embeds).logits
    save_file(
        {"pixel_values": pixel_values.contiguous(), "image_embeds": image_embeds.contiguous(), "decoder_logits": logits.contiguous()},
        str(out / "expected.safetensors"),
    )
    (out / "expected.json").write_text(
        json.dumps({"decoder_input_ids": ids.tolist(), "attention_mask": mask.tolist(), "parameters": sum(p.numel() for p in model.parameters())}, indent=1)
    )
    print(f"wrote {ckpt} ({sum(f.stat().st_size for f in ckpt.iterdir()) / 1e6:.0f} MB) and {out}/expected.*")


if __name__ == "__main__":
    main()
