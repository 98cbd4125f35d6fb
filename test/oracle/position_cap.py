"""Generation length against the decoder's positions: test/fixtures/position-cap/expected.json.

transformers 5.12 (GenerationMixin._prepare_generated_length) gives a generate() call that sets no
length (no max_length / max_new_tokens kwarg, none in the generating model's own generation_config)
its model-agnostic default of 20 new tokens, the whole sequence capped at the generating model's
`config.max_position_embeddings`: max_length = min(input_ids_length + 20, max_position_embeddings),
with the UserWarning "Using the model-agnostic default `max_length` (=N)". An input as long as the
cap is a ValueError ("Input length of input_ids is N, but `max_length` is set to N"). An explicit
max_new_tokens / max_length is not capped: BLIP's BERT decoder and OPT index their position tables
until they run out (IndexError once a fed-back token needs position max_position_embeddings), LLaMA
(rotary) runs on. T5 has no max_position_embeddings: nothing is capped. BLIP, BLIP-2 and InstructBLIP
call the inner decoder's generate(), whose generation_config does not get generation_config.json:
a max_length / max_new_tokens there is not applied (blip-graph applies it, as the kwarg would be).

Each variant edits a committed fixture checkpoint the way the TypeScript test repeats it: config.json
`text_config.max_position_embeddings` set to `positions` and the learned position tables cut to
their first rows (`tables`: BLIP's decoder and question encoder `positions` rows, OPT's
`positions + 2`: its offset), and generation_config.json keys set (`generation_config`). It runs
greedy generate() with `kwargs` on the base fixture's images (its committed pixel_values) and
`case` (a prompt, questions or an instruction; BLIP-2 / InstructBLIP inputs as the base fixture
committed them; the legacy BLIP-2 layout as blip2.py builds it: language_model.generate() over the
projected queries and BOS as embeddings, whose default therefore counts no input). Recorded: `result` = a generation record (new_tokens, margins, as in the other
fixtures) or `error` ({type, message}); `warnings` (transformers' UserWarnings about lengths) and
`max_length` (the default's capped value, read from that warning). `same_as`: a variant whose
generation_config.json setting transformers leaves unapplied names the variant that passes it as a
kwarg (what blip-graph does with the file). The edited checkpoints are not committed.

    cd /work/main && ../shared/oracle/py test/oracle/make_fixtures.py --only position-cap
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoTokenizer,
    Blip2ForConditionalGeneration,
    BlipForConditionalGeneration,
    BlipForQuestionAnswering,
    InstructBlipForConditionalGeneration,
)

from blip2 import prefix_path
from common import FIXTURES, record_generation, rel, write_json

OUT = FIXTURES / "position-cap"

BLIP_DEC = "text_decoder.bert.embeddings.position_embeddings.weight"
BLIP_ENC = "text_encoder.embeddings.position_embeddings.weight"
OPT_POS = "language_model.model.decoder.embed_positions.weight"

MODEL_CLASS = {
    "blip-caption-a": BlipForConditionalGeneration,
    "blip-vqa-a": BlipForQuestionAnswering,
    "blip2-opt-a": Blip2ForConditionalGeneration,
    "blip2-llama-a": Blip2ForConditionalGeneration,
    "blip2-t5-a": Blip2ForConditionalGeneration,
    "blip2-opt-legacy": Blip2ForConditionalGeneration,
    "instructblip-vicuna-b": InstructBlipForConditionalGeneration,
}
# position tables: rows kept = positions + offset (OPT's learned positions are offset by 2)
TABLES = {
    "blip-caption-a": {BLIP_DEC: 0},
    "blip-vqa-a": {BLIP_DEC: 0, BLIP_ENC: 0},
    "blip2-opt-a": {OPT_POS: 2},
    "blip2-opt-legacy": {OPT_POS: 2},
    "blip2-llama-a": {},
    "instructblip-vicuna-b": {},
}
GREEDY = {"num_beams": 1, "do_sample": False}
EIGHT = " ".join(["a"] * 8)  # [DEC] + 8 tokens: the 9 positions of a 9-position decoder

# (name, fixture, positions or None (unedited), case, kwargs, generation_config.json keys, same_as)
# case: {"prompt": str | None} (BLIP caption), {"questions": [...]} (BLIP VQA), {"fixture_case": name}
VARIANTS = [
    # BLIP captioning: the default is capped at the decoder's positions ([DEC] + 20 > P)
    ("caption-p9", "blip-caption-a", 9, {"prompt": None}, {}, {}, None),
    ("caption-p16", "blip-caption-a", 16, {"prompt": None}, {}, {}, None),
    ("caption-p16-prompt", "blip-caption-a", 16, {"prompt": "a picture of"}, {}, {}, None),
    ("caption-p32", "blip-caption-a", None, {"prompt": None}, {}, {}, None),  # 21 <= 32: not capped
    ("caption-p9-full-prompt", "blip-caption-a", 9, {"prompt": EIGHT}, {}, {}, None),  # ValueError
    # explicit lengths are not capped: the last new token is never fed back, one more runs off the table
    ("caption-p9-max-new-9", "blip-caption-a", 9, {"prompt": None}, {"max_new_tokens": 9}, {}, None),
    ("caption-p9-max-new-10", "blip-caption-a", 9, {"prompt": None}, {"max_new_tokens": 10}, {}, None),
    ("caption-p9-max-length-6", "blip-caption-a", 9, {"prompt": None}, {"max_length": 6}, {}, None),
    ("caption-p9-max-length-10", "blip-caption-a", 9, {"prompt": None}, {"max_length": 10}, {}, None),
    ("caption-p9-max-length-11", "blip-caption-a", 9, {"prompt": None}, {"max_length": 11}, {}, None),
    # generation_config.json's max_length: not handed to the text decoder by transformers (the default
    # applies); blip-graph applies it as the kwarg would be
    ("caption-p9-file-max-length-6", "blip-caption-a", 9, {"prompt": None}, {}, {"max_length": 6}, "caption-p9-max-length-6"),
    ("caption-p9-file-max-length-11", "blip-caption-a", 9, {"prompt": None}, {}, {"max_length": 11}, "caption-p9-max-length-11"),
    # BLIP VQA: the answer decoder starts from [DEC] alone; the questions fit the encoder's 9 positions
    ("vqa-p9", "blip-vqa-a", 9, {"questions": ["what is it?", "is it red?"]}, {}, {}, None),
    # BLIP-2 OPT: the input is the placeholders, BOS and the prompt
    ("opt-p16", "blip2-opt-a", 16, {"fixture_case": "caption"}, {}, {}, None),
    ("opt-p32-question", "blip2-opt-a", 32, {"fixture_case": "question"}, {}, {}, None),
    ("opt-p23-question-full", "blip2-opt-a", 23, {"fixture_case": "question"}, {}, {}, None),  # ValueError
    # LLaMA: rotary, no table, but max_position_embeddings caps the default all the same
    ("llama-p16", "blip2-llama-a", 16, {"fixture_case": "caption"}, {}, {}, None),
    ("llama-p32-question", "blip2-llama-a", 32, {"fixture_case": "question"}, {}, {}, None),
    ("llama-p21-question-full", "blip2-llama-a", 21, {"fixture_case": "question"}, {}, {}, None),  # ValueError
    ("llama-p16-max-new-20", "blip2-llama-a", 16, {"fixture_case": "caption"}, {"max_new_tokens": 20}, {}, None),
    ("instructblip-vicuna-p28", "instructblip-vicuna-b", 28, {"fixture_case": "instruction"}, {}, {}, None),
    # BLIP-2 OPT without placeholders (queries prepended as embeddings): generate() gets no input ids,
    # so the default is min(20, P) new tokens after the prefix and BOS, which OPT's table may not hold
    ("legacy-p16", "blip2-opt-legacy", 16, {"legacy": True}, {}, {}, None),  # IndexError
    ("legacy-p32", "blip2-opt-legacy", 32, {"legacy": True}, {}, {}, None),
    # T5: no max_position_embeddings, nothing capped
    ("t5-default", "blip2-t5-a", None, {"fixture_case": "caption"}, {}, {}, None),
]


def edited_checkpoint(fixture: str, positions: int | None, gen: dict, dest: Path) -> Path:
    src = FIXTURES / fixture / "checkpoint"
    shutil.copytree(src, dest)
    if positions is not None:
        sd = load_file(str(src / "model.safetensors"))
        for key, offset in TABLES[fixture].items():
            sd[key] = sd[key][: positions + offset].clone().contiguous()
        save_file(sd, str(dest / "model.safetensors"), metadata={"format": "pt"})
        c = json.loads((src / "config.json").read_text())
        c["text_config"]["max_position_embeddings"] = positions
        (dest / "config.json").write_text(json.dumps(c, indent=2))
    if gen:
        g = json.loads((src / "generation_config.json").read_text())
        g.update(gen)
        (dest / "generation_config.json").write_text(json.dumps(g, indent=2))
    return dest


def inputs_for(fixture: str, case: dict, tok, model) -> tuple[dict, int, dict]:
    """generate()'s inputs, the length of the sequences' leading input part, and the case as recorded."""
    base = json.loads((FIXTURES / fixture / "expected.json").read_text())
    pix = load_file(str(FIXTURES / fixture / "expected.safetensors"))["pixel_values"]
    B = pix.shape[0]
    inputs = {"pixel_values": pix}
    if case.get("legacy"):
        # as test/oracle/blip2.py's legacy cases: the projected queries, then BOS, as embeddings
        _, _, proj = prefix_path(model, pix)
        ids = torch.tensor([[model.config.text_config.bos_token_id]] * B)
        embeds = torch.cat([proj, model.get_input_embeddings()(ids)], dim=1)
        return {"inputs_embeds": embeds, "attention_mask": torch.ones(embeds.shape[:2], dtype=torch.long)}, 0, {"prompt": None, "legacy": True}
    if "fixture_case" in case:
        c = next(c for c in base["cases"] if c["name"] == case["fixture_case"])
        for k in ("input_ids", "attention_mask", "qformer_input_ids", "qformer_attention_mask"):
            if k in c and not (k == "input_ids" and c.get("prompt") is None):
                inputs[k] = torch.tensor(c[k])
        if c.get("prompt") is None:
            inputs.pop("attention_mask", None)
        decoder_only = "t5" not in fixture
        prompt_length = len(c["input_ids"][0]) if decoder_only else 1
        return inputs, prompt_length, {"fixture_case": c["name"], "prompt": c.get("prompt")}
    if "questions" in case:
        enc = tok(case["questions"], padding=True, return_tensors="pt")
        inputs.update(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        return inputs, 1, {"questions": case["questions"], "input_ids": enc["input_ids"].tolist()}
    prompt = case["prompt"]
    if prompt is None:
        return inputs, 1, {"prompt": None}
    enc = tok([prompt] * B, return_tensors="pt")
    inputs.update(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    # generate() feeds [DEC] + the prompt ids: the processor's [CLS] replaced, its [SEP] dropped
    return inputs, enc["input_ids"].shape[1] - 1, {"prompt": prompt, "decoder_input_ids_length": enc["input_ids"].shape[1] - 1}


@torch.no_grad()
def build_variant(spec: tuple, work: Path) -> dict:
    name, fixture, positions, case, kwargs, gen, same_as = spec
    ckpt = edited_checkpoint(fixture, positions, gen, work / name)
    model = MODEL_CLASS[fixture].from_pretrained(str(ckpt)).eval()
    tok = AutoTokenizer.from_pretrained(str(ckpt))
    inputs, prompt_length, case_rec = inputs_for(fixture, case, tok, model)
    generator = model.language_model if case.get("legacy") else model
    base = json.loads((FIXTURES / fixture / "expected.json").read_text())
    rec = {
        "name": name,
        "fixture": fixture,
        "model_class": type(model).__name__,
        "positions": positions,
        "tables": {k: positions + off for k, off in TABLES.get(fixture, {}).items()} if positions is not None else {},
        "generation_config": gen,
        "case": case_rec,
        "images": base["images"],
        "kwargs": kwargs,
        "prompt_length": prompt_length,
    }
    if same_as:
        rec["same_as"] = same_as
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rec["result"] = record_generation(generator, inputs, {**GREEDY, **kwargs}, prompt_length, tok, "greedy", {}, name)
        except (ValueError, IndexError) as e:
            rec["error"] = {"type": type(e).__name__, "message": str(e).split("\n")[0]}
    msgs = [str(w.message) for w in caught if "max_length" in str(w.message)]
    rec["warnings"] = msgs
    m = next((re.search(r"default `max_length` \(=(\d+)\)", s) for s in msgs if "model-agnostic" in s), None)
    if m:
        rec["max_length"] = int(m.group(1))
    return rec


def build() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        variants = [build_variant(v, Path(tmp)) for v in VARIANTS]
    by_name = {v["name"]: v for v in variants}
    for v in variants:
        if "same_as" in v:
            # transformers did not apply the file: the variant ran with the default, as the unedited one
            other = by_name[v["same_as"]]
            assert v.get("max_length") is not None, v["name"]
            assert "error" in other or other["result"]["new_tokens"] != v["result"]["new_tokens"], v["name"]
    write_json(OUT / "expected.json", {
        "transformers_version": __import__("transformers").__version__,
        "note": __doc__.split("\n\n")[0] + " See test/oracle/position_cap.py.",
        "variants": variants,
    })
    print(f"wrote {rel(OUT / 'expected.json')}")


if __name__ == "__main__":
    build()
