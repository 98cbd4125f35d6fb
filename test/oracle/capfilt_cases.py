"""Oracle for `blip capfilt`: BLIP's CapFilt (models/blip.py generate, models/blip_itm.py) on the tiny
random BLIP fixtures, as transformers computes it.

- captions: blip-caption-a, BLIP's nucleus-sampling settings with the nucleus shrunk to one token
  (top_p -> 0: the most likely token after the repetition penalty of 1.1, i.e. greedy with it),
  prompt "a picture of ", max_length 30 and min_length 5 (prompt included), the whole sequence
  decoded and the prompt's characters cut off, as BLIP does.
- itm: blip-itm-a, P(match) of texts tokenized with truncation=True, max_length=35, as BLIP's ITM
  model reads them (long English, CJK without spaces, emoji, a word longer than the budget).

Writes test/fixtures/capfilt/oracle.json.

    cd /work/main && ../shared/oracle/py test/oracle/capfilt_cases.py
"""

from __future__ import annotations

import torch
from transformers import AutoImageProcessor, AutoTokenizer, BlipForConditionalGeneration, BlipForImageTextRetrieval
from PIL import Image

from common import FIXTURES, IMAGES_DIR, write_json

torch.set_num_threads(1)
PROMPT = "a picture of "
IMAGES = ["rgb_37x23.png", "photo_64x48.jpg", "gray_45x31.png", "palette_33x17.png"]
TEXTS = [
    "a photo of a cat sitting on a red couch",
    "the quick brown fox jumps over the lazy dog " * 8,
    "猫" * 60,
    "dog " + "猫" * 60,
    "🐱" * 40,
    "Ünïcödé ACCENTS, punctuation!!! and numbers 12,345.67 " * 5,
    "x" * 5000 + " a dog on the grass",
]


def rgb(name: str) -> Image.Image:
    return Image.open(IMAGES_DIR / name).convert("RGB")


def captions() -> list[dict]:
    ckpt = FIXTURES / "blip-caption-a" / "checkpoint"
    model = BlipForConditionalGeneration.from_pretrained(ckpt).eval()
    proc = AutoImageProcessor.from_pretrained(ckpt, backend="pil")
    tok = AutoTokenizer.from_pretrained(ckpt)
    out = []
    for name in IMAGES:
        pixel_values = proc(rgb(name), return_tensors="pt")["pixel_values"]
        input_ids = tok(PROMPT, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            ids = model.generate(pixel_values=pixel_values, input_ids=input_ids, do_sample=False, num_beams=1,
                                 repetition_penalty=1.1, max_length=30, min_length=5)
        text = tok.decode(ids[0], skip_special_tokens=True)[len(PROMPT):]
        out.append({"image": name, "caption": text, "ids": ids[0].tolist()})
    return out


def itm(caps: list[dict]) -> list[dict]:
    ckpt = FIXTURES / "blip-itm-a" / "checkpoint"
    model = BlipForImageTextRetrieval.from_pretrained(ckpt).eval()
    proc = AutoImageProcessor.from_pretrained(ckpt, backend="pil")
    tok = AutoTokenizer.from_pretrained(ckpt)
    out = []
    for c in caps:
        pixel_values = proc(rgb(c["image"]), return_tensors="pt")["pixel_values"]
        for text in [*TEXTS, c["caption"]]:
            enc = tok(text, truncation=True, max_length=35, return_tensors="pt")
            with torch.no_grad():
                logits = model(pixel_values=pixel_values, input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                               use_itm_head=True).itm_score
            p = torch.softmax(logits, dim=-1)[0, 1].item()
            out.append({"image": c["image"], "text": text, "tokens": enc["input_ids"].shape[1], "itm": p})
    return out


def main() -> None:
    caps = captions()
    write_json(FIXTURES / "capfilt" / "oracle.json", {"prompt": PROMPT, "captions": caps, "itm": itm(caps)})


if __name__ == "__main__":
    main()
