"""InstructBLIP fixtures: InstructBlipForConditionalGeneration with Vicuna/LLaMA and with Flan-T5.

As blip2.py, plus the instruction goes to the Q-Former too: `qformer_tokenizer/` (BERT, with BLIP's [DEC])
tokenises the prompt into qformer_input_ids; the Q-Former runs over [query tokens; instruction tokens]
(cross-attending the image on the query positions) and only the query positions go to the projection.
"""

from __future__ import annotations

import json

import torch
from transformers import (
    AutoImageProcessor,
    AutoTokenizer,
    BertTokenizer,
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    InstructBlipProcessor,
    LlamaTokenizer,
)

from blip2 import image_processor
from common import (
    GENERATIONS,
    record_generation,
    dir_size,
    randomize_parameters,
    reset_dir,
    seed_all,
    store_lm_logits,
    strip_half_dtypes,
    tensor_index,
    write_json,
    write_tensors,
)
from common import FIXTURES as ROOT
from vlm import (
    boost_eos,
    gen_config_dict,
    generations,
    load_images,
    patch_flan_t5_config,
    untie_t5_lm_head,
    zero_vision_key_bias,
)

PROMPT = "What is unusual about this image?"
PROMPT2 = "Describe the image in detail."

SPECS = {
    "instructblip-vicuna-a": dict(
        kind="llama",
        seed=301,
        tokenizer="vicuna",  # the public Vicuna tokenizer's conventions: bos = unk = "</s>", pad "[PAD]"
        num_query_tokens=6,
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    image_size=32, patch_size=8, layer_norm_eps=1e-6),
        qformer=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                     cross_attention_frequency=2, layer_norm_eps=1e-12, max_position_embeddings=40),
        # grouped KV heads (4 query heads, 2 KV heads); the public config's pad 0 / bos 1 (the tokenizer
        # itself pads with [PAD] and starts prompts with </s> = 2)
        text=dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, vocab_size=608,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False),
        eos_boost=True,
        images=["rgb_37x23.png", "photo_64x48.jpg"],
        padded_prompts=["Is there a cat?", "What color is the large object on the left of the picture?"],
    ),
    "instructblip-vicuna-b": dict(
        kind="llama",
        seed=302,
        tokenizer="llama",  # plain LLaMA conventions: <s> = 1 BOS, no pad token
        num_query_tokens=4,
        vision=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                    image_size=48, patch_size=12, layer_norm_eps=1e-5),
        qformer=dict(hidden_size=40, intermediate_size=40, num_hidden_layers=2, num_attention_heads=5,
                     cross_attention_frequency=1, layer_norm_eps=1e-12, max_position_embeddings=40),
        text=dict(model_type="llama", hidden_size=40, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=5, num_key_value_heads=5, max_position_embeddings=64, rms_norm_eps=1e-5,
                  rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, vocab_size=601,
                  bos_token_id=1, eos_token_id=2, tie_word_embeddings=False),
        images=["blocks_1000x700.png", "gray_45x31.png"],
        # no pad id in the config or the tokenizer: a batch pads with eos, as generate() falls back to
        # (the repetition penalty and the n-gram ban see those ids)
        padded_prompts=["What is unusual about this image?", "Describe the image in detail."],
        padded_generations=["greedy", "beam3", "greedy_penalties", "beam3_penalties"],
        # a repetition penalty below 1 favours the ids already in the batch, the pads among them
        padded_extra=[
            ("greedy_favour_seen", {"max_new_tokens": 10, "min_new_tokens": 3, "num_beams": 1, "do_sample": False, "repetition_penalty": 0.8}),
            ("beam4_favour_seen", {"max_new_tokens": 10, "min_new_tokens": 3, "num_beams": 4, "do_sample": False, "repetition_penalty": 0.8,
                                   "no_repeat_ngram_size": 3, "length_penalty": 2.0, "early_stopping": False}),
        ],
    ),
    "instructblip-t5-a": dict(
        kind="t5",
        seed=303,
        tokenizer="t5",
        num_query_tokens=5,
        vision=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                    image_size=32, patch_size=8, layer_norm_eps=1e-6),
        qformer=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                     cross_attention_frequency=1, layer_norm_eps=1e-12, max_position_embeddings=40),
        text=dict(model_type="t5", vocab_size=312, d_model=24, d_kv=8, d_ff=40, num_layers=2,
                  num_decoder_layers=2, num_heads=3, relative_attention_num_buckets=16,
                  relative_attention_max_distance=32, feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6,
                  tie_word_embeddings=False, dropout_rate=0.0, decoder_start_token_id=0, bos_token_id=1,
                  eos_token_id=1, pad_token_id=0),
        eos_boost=True,
        images=["rgba_29x41.png", "photo_50x40.webp"],
    ),
}
FIXTURES = list(SPECS)


def load_lm_tokenizer(name: str):
    d = ROOT / "tokenizers"
    if name == "vicuna":
        tok = LlamaTokenizer.from_pretrained(
            str(d / "llama"), bos_token="</s>", unk_token="</s>", add_bos_token=True, add_eos_token=False
        )
        tok.add_special_tokens({"pad_token": "[PAD]"})
        assert tok("a")["input_ids"][0] == 2, "vicuna prompts start with </s>"
        return tok
    return AutoTokenizer.from_pretrained(str(d / name))


def make_config(spec, image_token_index, qtok) -> InstructBlipConfig:
    qformer = dict(spec["qformer"], vocab_size=len(qtok), pad_token_id=qtok.pad_token_id)
    cfg = InstructBlipConfig(
        vision_config=spec["vision"],
        qformer_config=qformer,
        text_config=dict(spec["text"]),
        num_query_tokens=spec["num_query_tokens"],
        image_token_index=image_token_index,
    )
    strip_half_dtypes(cfg)
    return cfg


@torch.no_grad()
def prefix_path(model, pix, qids, qmask):
    """vision -> Q-Former([queries; instruction]) -> query positions -> language_projection."""
    img = model.vision_model(pixel_values=pix).last_hidden_state
    n = model.config.num_query_tokens
    q_all = model.qformer(
        input_ids=qids,
        attention_mask=torch.cat([torch.ones(qids.shape[0], n, dtype=torch.long), qmask], dim=1),
        query_embeds=model.query_tokens.expand(img.shape[0], -1, -1),
        encoder_hidden_states=img,
        encoder_attention_mask=torch.ones(img.shape[:-1], dtype=torch.long),
    ).last_hidden_state
    return img, q_all, model.language_projection(q_all[:, :n, :])


def build_one(name: str) -> None:
    spec = SPECS[name]
    out = reset_dir(ROOT / name)
    ckpt = out / "checkpoint"
    seed_all(spec["seed"])
    tok = load_lm_tokenizer(spec["tokenizer"])
    qtok = AutoTokenizer.from_pretrained(str(ROOT / "tokenizers" / "bert"))
    processor = InstructBlipProcessor(
        image_processor(spec, pil=False), tok, qtok, num_query_tokens=spec["num_query_tokens"]
    )
    image_token_index = tok.convert_tokens_to_ids("<image>")
    cfg = make_config(spec, image_token_index, qtok)
    model = InstructBlipForConditionalGeneration(cfg).eval()
    randomize_parameters(model, spec["seed"])
    zero_vision_key_bias(model)
    if spec["kind"] == "t5":
        untie_t5_lm_head(model.language_model, spec["seed"] + 1)
    boost = tune_eos(spec, model, processor) if spec.get("eos_boost") else None
    model.save_pretrained(str(ckpt))
    if spec["kind"] == "t5":
        patch_flan_t5_config(ckpt / "config.json")
    processor.save_pretrained(str(ckpt))
    del model

    # ---------------- from the saved files only ----------------
    model = InstructBlipForConditionalGeneration.from_pretrained(str(ckpt)).eval()
    tok = AutoTokenizer.from_pretrained(str(ckpt))
    qtok = AutoTokenizer.from_pretrained(str(ckpt / "qformer_tokenizer"))
    ip = AutoImageProcessor.from_pretrained(str(ckpt), backend="pil")
    assert type(ip).__name__ == "BlipImageProcessorPil"
    nq = json.loads((ckpt / "processor_config.json").read_text())["num_query_tokens"]
    processor = InstructBlipProcessor(ip, tok, qtok, num_query_tokens=nq)
    if spec["kind"] == "llama":
        lm_cfg = json.loads((ckpt / "config.json").read_text())["text_config"]
        assert lm_cfg["rope_parameters"]["rope_theta"] == spec["text"]["rope_parameters"]["rope_theta"]
    images = load_images(spec["images"])
    tensors = {}
    tc = model.config.text_config
    rec = {
        "fixture": name,
        "model_class": type(model).__name__,
        "transformers_version": __import__("transformers").__version__,
        "checkpoint_layout": "processor_config.json + qformer_tokenizer/",
        "image_processor": {"class": type(ip).__name__, "size": dict(ip.size), "resample": int(ip.resample)},
        "images": spec["images"],
        "num_query_tokens": model.config.num_query_tokens,
        "image_token_index": model.config.image_token_index,
        "tokenizer_len": len(tok),
        "qformer_tokenizer_len": len(qtok),
        "config": {
            "vision": spec["vision"],
            "qformer": spec["qformer"],
            "text": {k: getattr(tc, k) for k in sorted(spec["text"]) if k != "model_type"},
        },
        "special_ids": {
            "bos_token_id": tc.bos_token_id,
            "eos_token_id": tc.eos_token_id,
            "pad_token_id": tc.pad_token_id,
            "decoder_start_token_id": getattr(tc, "decoder_start_token_id", None),
            "tokenizer_bos": tok.bos_token_id,
            "tokenizer_eos": tok.eos_token_id,
            "tokenizer_pad": tok.pad_token_id,
            "tokenizer_padding_side": tok.padding_side,
        },
        "generation_config_effective": gen_config_dict(model.language_model.generation_config),
        "generation_config_saved": gen_config_dict(model.generation_config),
    }
    if boost is not None:
        rec["eos_boost"] = boost
        rec["note_eos"] = (
            f"before saving, the LM-head row of eos_token_id was raised by {boost['beta']} along the mean LM-head "
            "input (test/oracle/vlm.py boost_eos) so that greedy decoding stops mid-sequence"
        )
    if spec["kind"] == "t5":
        rec["note_t5"] = (
            "config.json states text_config.tie_word_embeddings=false (Flan-T5 form): separate "
            "language_model.lm_head.weight, decoder output NOT scaled by d_model**-0.5"
        )
    with torch.no_grad():
        rec["cases"] = cases(spec, model, processor, tok, images, tensors)
    rec["arrays"] = tensor_index(tensors)
    write_tensors(out / "expected.safetensors", tensors)
    write_json(out / "expected.json", rec)
    print(f"  {name}: {dir_size(out) / 1e3:.0f} kB")


@torch.no_grad()
def tune_eos(spec, model, processor) -> dict:
    ip = image_processor(spec, pil=True)
    images = load_images(spec["images"])
    enc = processor(images=images, text=[PROMPT] * len(images), return_tensors="pt")
    enc["pixel_values"] = ip(images=images, return_tensors="pt")["pixel_values"]
    eos = model.config.text_config.eos_token_id
    n_in = enc["input_ids"].shape[1]

    def run():
        seqs = model.generate(**{k: v.clone() for k, v in enc.items()}, **GENERATIONS[0][1])
        return seqs[:, n_in:] if spec["kind"] == "llama" else seqs[:, 1:]

    beta = boost_eos(model.language_model.lm_head, eos, run)
    return {"beta": beta, "token_id": eos}


def cases(spec, model, processor, tok, images, tensors) -> list:
    kind = spec["kind"]
    n = model.config.num_query_tokens
    out = []
    runs = [("instruction", [PROMPT] * len(images), None), ("describe", [PROMPT2] * len(images), ["greedy"])]
    if spec.get("padded_prompts"):
        runs.append(("padded", spec["padded_prompts"], spec.get("padded_generations", ["greedy", "beam3"])))
        if tok.pad_token is None:
            # (in memory only: the saved tokenizer keeps none, so blip-graph pads with the config's fallback)
            tok.pad_token = tok.eos_token
    for cname, prompts, which in runs:
        enc = processor(images=images, text=prompts, padding=cname == "padded", return_tensors="pt")
        pix = enc["pixel_values"]
        if "pixel_values" not in tensors:
            tensors["pixel_values"] = pix
        assert torch.equal(pix, tensors["pixel_values"])
        img, q_all, proj = prefix_path(model, pix, enc["qformer_input_ids"], enc["qformer_attention_mask"])
        tensors.setdefault("image_embeds", img)
        tensors[f"{cname}/qformer_last_hidden_state"] = q_all
        tensors[f"{cname}/prefix_embeds"] = proj
        ids, mask = enc["input_ids"], enc["attention_mask"]
        case = {
            "name": cname,
            "prompt": prompts,
            "input_ids": ids.tolist(),
            "attention_mask": mask.tolist(),
            "qformer_input_ids": enc["qformer_input_ids"].tolist(),
            "qformer_attention_mask": enc["qformer_attention_mask"].tolist(),
        }
        if cname == "padded":
            case["padding_note"] = (
                f"padding=True; LM tokenizer padding_side={tok.padding_side!r} (its pads sit between the "
                "placeholders and the text, since the processor prepends the placeholders after padding); the "
                "Q-Former tokenizer pads on the right"
            )
        if kind == "llama":
            o = model(pixel_values=pix, input_ids=ids, attention_mask=mask,
                      qformer_input_ids=enc["qformer_input_ids"], qformer_attention_mask=enc["qformer_attention_mask"])
            store_lm_logits(tensors, case, cname, o.logits, n)
            prompt_length = ids.shape[1]
        else:
            dec = torch.full((ids.shape[0], 1), model.config.text_config.decoder_start_token_id, dtype=torch.long)
            o = model(pixel_values=pix, input_ids=ids, attention_mask=mask, decoder_input_ids=dec,
                      qformer_input_ids=enc["qformer_input_ids"], qformer_attention_mask=enc["qformer_attention_mask"])
            tensors[f"{cname}/decoder_logits"] = o.logits
            if cname == "instruction":
                tensors[f"{cname}/encoder_last_hidden_state"] = o.language_model_outputs.encoder_last_hidden_state
            case["decoder_input_ids"] = dec.tolist()
            prompt_length = 1
        gin = {k: v for k, v in enc.items()}
        case["generation"] = generations(model, gin, prompt_length, tok, tensors, cname, which=which)
        if cname == "padded":
            for gname, kwargs in spec.get("padded_extra", []):
                g = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in gin.items()}
                case["generation"].append(record_generation(model, g, kwargs, prompt_length, tok, gname, tensors, cname))
        if cname != "instruction":
            tensors.pop(f"{cname}/greedy/step_logits", None)
        out.append(case)
    return out


def build(names=None) -> None:
    for name in names or FIXTURES:
        build_one(name)


if __name__ == "__main__":
    build()
