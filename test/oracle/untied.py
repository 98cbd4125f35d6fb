"""Stored copies of tied tensors: test/fixtures/untied/expected.json.

transformers ties BLIP's LM head (text_decoder.cls.predictions.decoder.{weight,bias}) to the word
embeddings / cls.predictions.bias, T5's lm_head / encoder.embed_tokens / decoder.embed_tokens to
`shared` (T5Config always ties), and an OPT / LLaMA lm_head to the token embeddings when
text_config.tie_word_embeddings is true (the top-level key is not read). When a checkpoint stores
both sides of a tied pair with different values, from_pretrained keeps them untied ("both are
present in the checkpoints with different values, so we will NOT tie them"); equal ones are tied
(one parameter); when it stores only the target, the source is tied to it; with tie_word_embeddings
false (BLIP: in both config.json and text_config; OPT / LLaMA: in text_config) nothing is tied and a
missing head is newly initialised.

Each variant edits a committed fixture checkpoint (blip-caption-a, blip-vqa-a, blip2-t5-a,
blip2-opt-a, blip2-llama-a) in a way
the TypeScript test repeats exactly (no random numbers): `edits` in order, each either
{"set": key, "from": key, "reverse": bool} (a copy of another tensor as the state dict holds it at
that point, its first axis reversed when asked) or {"drop": key}; `config` sets config.json keys
("text_config.x" inside text_config). Recorded per variant: the keys from_pretrained reports
missing, which stored tensor each tied parameter holds once loaded (`loaded`), which of them
are one parameter once loaded (`tied`: groups of two or more, as tie_weights left them), and greedy
generation (`generation`, as in the other fixtures: new_tokens, margins) on the base fixture's two
images and case (`case`: its prompt / questions). Variants with missing keys record no generation
(transformers would run a randomly initialised head). The edited checkpoints are not committed.

    cd /work/main && ../shared/oracle/py test/oracle/make_fixtures.py --only untied
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, Blip2ForConditionalGeneration, BlipForConditionalGeneration, BlipForQuestionAnswering

from common import FIXTURES, GEN_GREEDY, record_generation, rel, write_json

OUT = FIXTURES / "untied"

BLIP_HEAD = "text_decoder.cls.predictions.decoder.weight"
BLIP_HEAD_BIAS = "text_decoder.cls.predictions.decoder.bias"
BLIP_WORDS = "text_decoder.bert.embeddings.word_embeddings.weight"
BLIP_BIAS = "text_decoder.cls.predictions.bias"
T5 = "language_model."
LM = "language_model."
OPT_EMBED = LM + "model.decoder.embed_tokens.weight"
LLAMA_EMBED = LM + "model.embed_tokens.weight"
HEAD = LM + "lm_head.weight"
TIE = {"text_config.tie_word_embeddings": True}
NO_TIE = {"text_config.tie_word_embeddings": False}
UNTIED = {"tie_word_embeddings": False, "text_config.tie_word_embeddings": False}

VARIANTS = [
    # BLIP captioning, tied config (the fixture's): a stored head / head bias that differs serves
    {"name": "blip-head", "fixture": "blip-caption-a", "case": "noprompt",
     "edits": [{"set": BLIP_HEAD, "from": BLIP_WORDS, "reverse": True}]},
    {"name": "blip-head-bias", "fixture": "blip-caption-a", "case": "noprompt",
     "edits": [{"set": BLIP_HEAD_BIAS, "from": BLIP_BIAS, "reverse": True}]},
    # only the head stored: the word embeddings are tied to it
    {"name": "blip-head-only", "fixture": "blip-caption-a", "case": "noprompt",
     "edits": [{"set": BLIP_HEAD, "from": BLIP_WORDS, "reverse": False}, {"drop": BLIP_WORDS}]},
    # untied config: the stored head and bias serve, cls.predictions.bias is not used
    {"name": "blip-untied", "fixture": "blip-caption-a", "case": "noprompt", "config": UNTIED,
     "edits": [{"set": BLIP_HEAD, "from": BLIP_WORDS, "reverse": True}, {"set": BLIP_HEAD_BIAS, "from": BLIP_BIAS, "reverse": True}]},
    # untied config without the head, or without its bias: newly initialised (missing keys)
    {"name": "blip-untied-no-head", "fixture": "blip-caption-a", "case": "noprompt", "config": UNTIED, "edits": []},
    {"name": "blip-untied-no-head-bias", "fixture": "blip-caption-a", "case": "noprompt", "config": UNTIED,
     "edits": [{"set": BLIP_HEAD, "from": BLIP_WORDS, "reverse": True}]},
    # BLIP VQA: the same text decoder
    {"name": "blip-vqa-head", "fixture": "blip-vqa-a", "case": "vqa",
     "edits": [{"set": BLIP_HEAD, "from": BLIP_WORDS, "reverse": True}]},
    # BLIP-2 Flan-T5 (lm_head stored, untied): decoder.embed_tokens stored apart serves the decoder
    {"name": "t5-decoder-embed", "fixture": "blip2-t5-a", "case": "question",
     "edits": [{"set": T5 + "decoder.embed_tokens.weight", "from": T5 + "shared.weight", "reverse": True}]},
    # encoder.embed_tokens stored apart: unused (the prompt is embedded through `shared`)
    {"name": "t5-encoder-embed", "fixture": "blip2-t5-a", "case": "question",
     "edits": [{"set": T5 + "encoder.embed_tokens.weight", "from": T5 + "shared.weight", "reverse": True}]},
    # no `shared`: it is tied to lm_head, the first stored of the tied keys
    {"name": "t5-no-shared", "fixture": "blip2-t5-a", "case": "question",
     "edits": [{"drop": T5 + "shared.weight"}]},
    # neither `shared` nor lm_head: both tied to encoder.embed_tokens; decoder.embed_tokens differs
    {"name": "t5-encoder-embed-only", "fixture": "blip2-t5-a", "case": "question",
     "edits": [{"set": T5 + "encoder.embed_tokens.weight", "from": T5 + "shared.weight", "reverse": False},
               {"set": T5 + "decoder.embed_tokens.weight", "from": T5 + "shared.weight", "reverse": True},
               {"drop": T5 + "shared.weight"}, {"drop": T5 + "lm_head.weight"}]},
    # lm_head stored equal to `shared`: tied, one parameter
    {"name": "t5-head-equal", "fixture": "blip2-t5-a", "case": "question",
     "edits": [{"set": HEAD, "from": T5 + "shared.weight", "reverse": False}]},
    # BLIP-2 OPT (tied config, no lm_head stored): a stored lm_head equal to the embeddings is tied to
    # them, one that differs serves
    {"name": "opt-head-equal", "fixture": "blip2-opt-a", "case": "question",
     "edits": [{"set": HEAD, "from": OPT_EMBED, "reverse": False}]},
    {"name": "opt-head", "fixture": "blip2-opt-a", "case": "question",
     "edits": [{"set": HEAD, "from": OPT_EMBED, "reverse": True}]},
    # untied config: the stored head serves, equal or not; a missing one is newly initialised
    {"name": "opt-untied-head-equal", "fixture": "blip2-opt-a", "case": "question", "config": NO_TIE,
     "edits": [{"set": HEAD, "from": OPT_EMBED, "reverse": False}]},
    {"name": "opt-untied-head", "fixture": "blip2-opt-a", "case": "question", "config": NO_TIE,
     "edits": [{"set": HEAD, "from": OPT_EMBED, "reverse": True}]},
    {"name": "opt-untied-no-head", "fixture": "blip2-opt-a", "case": "question", "config": NO_TIE, "edits": []},
    # BLIP-2 LLaMA (untied config, lm_head stored apart): tied in text_config, the stored head that
    # differs serves, an equal one is tied, none is the embeddings
    {"name": "llama-tied-head", "fixture": "blip2-llama-a", "case": "question", "config": TIE, "edits": []},
    {"name": "llama-tied-head-equal", "fixture": "blip2-llama-a", "case": "question", "config": TIE,
     "edits": [{"set": HEAD, "from": LLAMA_EMBED, "reverse": False}]},
    {"name": "llama-tied-no-head", "fixture": "blip2-llama-a", "case": "question", "config": TIE,
     "edits": [{"drop": HEAD}]},
    # untied (the fixture's config): an equal stored head stays a parameter of its own
    {"name": "llama-head-equal", "fixture": "blip2-llama-a", "case": "question",
     "edits": [{"set": HEAD, "from": LLAMA_EMBED, "reverse": False}]},
]

MODEL_CLASS = {
    "blip-caption-a": BlipForConditionalGeneration,
    "blip-vqa-a": BlipForQuestionAnswering,
    "blip2-t5-a": Blip2ForConditionalGeneration,
    "blip2-opt-a": Blip2ForConditionalGeneration,
    "blip2-llama-a": Blip2ForConditionalGeneration,
}

FAMILY = {"blip-caption-a": "blip", "blip-vqa-a": "blip", "blip2-t5-a": "t5", "blip2-opt-a": "opt", "blip2-llama-a": "llama"}

# the loaded parameters whose source the variants are about, per model class
TIED_PARAMS = {
    "blip": [BLIP_HEAD, BLIP_HEAD_BIAS, BLIP_WORDS, BLIP_BIAS],
    "t5": [T5 + k for k in ("shared.weight", "lm_head.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight")],
    "opt": [HEAD, OPT_EMBED],
    "llama": [HEAD, LLAMA_EMBED],
}


def edit_state(sd: dict, edits: list) -> dict:
    sd = dict(sd)
    for e in edits:
        if "drop" in e:
            del sd[e["drop"]]
        else:
            t = sd[e["from"]]
            sd[e["set"]] = (t.flip(0) if e["reverse"] else t).clone().contiguous()
    return sd


def edit_config(path: Path, changes: dict) -> None:
    c = json.loads(path.read_text())
    for k, v in changes.items():
        if k.startswith("text_config."):
            c["text_config"][k.split(".", 1)[1]] = v
        else:
            c[k] = v
    path.write_text(json.dumps(c, indent=2))


def loaded_sources(model, sd: dict, family: str) -> dict:
    """For each tied parameter: the stored key whose values it holds once loaded (the first in sorted
    order), or "initialized"."""
    params = dict(model.named_parameters(remove_duplicate=False))
    out = {}
    for name in TIED_PARAMS[family]:
        p = params[name].detach()
        out[name] = next((k for k in sorted(sd) if sd[k].shape == p.shape and torch.equal(sd[k], p)), "initialized")
    return out


def tied_groups(model, family: str) -> list:
    """The tied parameters that are one tensor once loaded (the same storage), in groups of two or more."""
    params = dict(model.named_parameters(remove_duplicate=False))
    groups: dict = {}
    for name in TIED_PARAMS[family]:
        groups.setdefault(params[name].data_ptr(), []).append(name)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


@torch.no_grad()
def build_variant(v: dict, work: Path) -> dict:
    src = FIXTURES / v["fixture"] / "checkpoint"
    base = json.loads((FIXTURES / v["fixture"] / "expected.json").read_text())
    case = next(c for c in base["cases"] if c["name"] == v["case"])
    ckpt = work / v["name"]
    shutil.copytree(src, ckpt)
    sd = edit_state(load_file(str(src / "model.safetensors")), v["edits"])
    save_file(sd, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    if v.get("config"):
        edit_config(ckpt / "config.json", v["config"])
    cls = MODEL_CLASS[v["fixture"]]
    model, info = cls.from_pretrained(str(ckpt), output_loading_info=True)
    model.eval()
    family = FAMILY[v["fixture"]]
    rec = {
        "name": v["name"],
        "fixture": v["fixture"],
        "model_class": cls.__name__,
        "edits": v["edits"],
        "config": v.get("config", {}),
        "case": {k: case[k] for k in ("name", "prompt", "questions") if k in case},
        "missing_keys": sorted(info["missing_keys"]),
        "loaded": loaded_sources(model, sd, family),
        "tied": tied_groups(model, family),
    }
    if rec["missing_keys"]:
        return rec
    pix = load_file(str(FIXTURES / v["fixture"] / "expected.safetensors"))["pixel_values"]
    inputs = {"pixel_values": pix}
    if "input_ids" in case:
        inputs["input_ids"] = torch.tensor(case["input_ids"])
        inputs["attention_mask"] = torch.tensor(case["attention_mask"])
    tok = AutoTokenizer.from_pretrained(str(ckpt))
    # a decoder-only LM returns the prompt with the new tokens, an encoder-decoder / BLIP decoder its start token
    prompt_length = inputs["input_ids"].shape[1] if family in ("opt", "llama") else 1
    rec["generation"] = [record_generation(model, inputs, dict(GEN_GREEDY), prompt_length, tok, "greedy", {}, v["name"])]
    return rec


def build() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        variants = [build_variant(v, Path(tmp)) for v in VARIANTS]
    write_json(OUT / "expected.json", {
        "transformers_version": __import__("transformers").__version__,
        "note": __doc__.split("\n\n")[0] + " See test/oracle/untied.py.",
        "variants": variants,
    })
    print(f"wrote {rel(OUT / 'expected.json')}")


if __name__ == "__main__":
    build()
