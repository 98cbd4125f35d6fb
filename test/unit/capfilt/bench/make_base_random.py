"""Full-size BLIP-base checkpoints with random weights for the CapFilt benchmark (src/capfilt/bench.ts):
the captioner (BlipForConditionalGeneration) and the filter (BlipForImageTextRetrieval). Not
committed: ~900 MB each.

    cd /work/main && ../shared/oracle/py test/unit/capfilt/bench/make_base_random.py [--out .bench/capfilt]

writes OUT/caption-base-random/checkpoint and OUT/itm-base-random/checkpoint. The layout is
Salesforce/blip-image-captioning-base and blip-itm-base-coco: BlipConfig() (ViT-B/16 at 384 px,
12 layers of 768; BERT-base text side, vocabulary 30524) with the text side's 12 heads (BlipConfig
defaults to 8). Weights are N(0, 0.02), layer-norm scales N(1, 0.02), so activations stay O(1) and
the timings are those of real weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval

torch.manual_seed(4321)
torch.set_num_threads(2)


def make(cls, ckpt: Path) -> None:
    ckpt.mkdir(parents=True, exist_ok=True)
    cfg = BlipConfig()
    cfg.text_config.num_attention_heads = 12
    model = cls(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            norm = name.endswith(".weight") and ("LayerNorm" in name or "layer_norm" in name or "layernorm" in name)
            p.copy_(1 + 0.02 * torch.randn_like(p) if norm else 0.02 * torch.randn_like(p))
    model.save_pretrained(ckpt)
    print(f"wrote {ckpt} ({sum(f.stat().st_size for f in ckpt.iterdir()) / 1e6:.0f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".bench/capfilt")
    out = Path(ap.parse_args().out)
    make(BlipForConditionalGeneration, out / "caption-base-random" / "checkpoint")
    make(BlipForImageTextRetrieval, out / "itm-base-random" / "checkpoint")


if __name__ == "__main__":
    main()
