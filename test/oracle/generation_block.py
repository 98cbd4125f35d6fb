"""transformers 5.12.1 for the generation-block settings test (test/unit/compiler/generationBlock.test.ts):
greedy / beam generate() on blip2-opt-a with the photo and the question, and on blip-caption-a with
no prompt, with the max_length / min_length / early_stopping values the test's graphs declare.
Prints a JSON object: case -> new token ids (and sequences_scores for beam search).

    cd /work/main && ../shared/oracle/py test/oracle/generation_block.py
"""

import json
from pathlib import Path

import torch
from PIL import Image
from transformers import (
    AutoImageProcessor,
    AutoTokenizer,
    Blip2ForConditionalGeneration,
    Blip2Processor,
    BlipForConditionalGeneration,
)

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent.parent
FIX = ROOT / "test" / "fixtures"
QUESTION = "Question: how many cats are there? Answer:"


def run(model, inputs, prompt_len, **kwargs):
    with torch.no_grad():
        out = model.generate(**inputs, output_scores=True, return_dict_in_generate=True, **kwargs)
    rec = {"tokens": [row[prompt_len:].tolist() for row in out.sequences]}
    if getattr(out, "sequences_scores", None) is not None:
        rec["scores"] = out.sequences_scores.tolist()
    return rec


def main():
    res = {}
    ckpt = FIX / "blip2-opt-a" / "checkpoint"
    model = Blip2ForConditionalGeneration.from_pretrained(str(ckpt)).eval()
    tok = AutoTokenizer.from_pretrained(str(ckpt))
    ip = AutoImageProcessor.from_pretrained(str(ckpt), backend="pil")
    nq = json.loads((ckpt / "processor_config.json").read_text())["num_query_tokens"]
    proc = Blip2Processor(ip, tok, num_query_tokens=nq)
    image = Image.open(FIX / "images" / "photo_64x48.jpg")
    inputs = proc(images=image, text=QUESTION, return_tensors="pt")
    n = inputs["input_ids"].shape[1]
    res["opt_input_length"] = n
    res["opt_greedy_6"] = run(model, inputs, n, max_new_tokens=6)
    res["opt_never"] = run(model, inputs, n, num_beams=3, max_new_tokens=6, early_stopping="never")
    # graphs/blip2-opt.blip's block holds max_new_tokens 30
    res["opt_min_length_31"] = run(model, inputs, n, min_length=31, max_new_tokens=30)
    res["opt_max_length_30_min_length_30"] = run(model, inputs, n, max_length=30, min_length=30)

    ckpt = FIX / "blip-caption-a" / "checkpoint"
    model = BlipForConditionalGeneration.from_pretrained(str(ckpt)).eval()
    ip = AutoImageProcessor.from_pretrained(str(ckpt), backend="pil")
    img_a = json.loads((FIX / "blip-caption-a" / "expected.json").read_text())
    res["caption_images"] = img_a.get("images")
    images = [Image.open(FIX / "images" / p).convert("RGB") for p in img_a["images"]][:1]
    pix = ip(images=images, return_tensors="pt")["pixel_values"]
    # no prompt: generate() starts from [DEC] (bos), which max_length counts
    res["caption_max_length_5"] = run(model, {"pixel_values": pix}, 1, max_length=5)
    res["caption_greedy_12"] = run(model, {"pixel_values": pix}, 1, max_new_tokens=12)
    print(json.dumps(res))


main()
