"""BLIP-2 fixtures: Blip2ForConditionalGeneration with OPT and Flan-T5, and Blip2ForImageTextRetrieval.

Same procedure as blip.py: build from a config, randomise every parameter, save in HF layout, load back
with from_pretrained and record what transformers computes. Pixel values come from the PIL backend.

Placeholder semantics (transformers 5): the processor puts num_query_tokens copies of "<image>" in front
of the tokenised prompt; the model overwrites those positions' embeddings with the projected Q-Former
outputs ("prefix_embeds"). blip2-opt-legacy has no image_token_index and no "<image>" token (checkpoints
from before placeholders): there the projected queries are *prepended* to the prompt embeddings, which
transformers 4 did inside Blip2ForConditionalGeneration; transformers 5.12 no longer has that branch, so
its expectations are computed with transformers' own modules in that order (vision_model -> qformer ->
language_projection -> concat with language_model's input embeddings -> language_model /
language_model.generate(inputs_embeds=...)), and checked equal to the placeholder path on the same weights.
"""

from __future__ import annotations

import json

import torch
from transformers import (
    AutoImageProcessor,
    AutoTokenizer,
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2ForImageTextRetrieval,
    Blip2Processor,
    BlipImageProcessor,
    BlipImageProcessorPil,
)

from build_tokenizers import copy_tokenizer
from common import (
    GENERATIONS,
    dir_size,
    randomize_parameters,
    record_generation,
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

QUESTION = "Question: what is in the image? Answer:"

SPECS = {
    "blip2-opt-a": dict(
        kind="opt",
        seed=201,
        tokenizer="opt",
        num_query_tokens=8,
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=32, patch_size=8, layer_norm_eps=1e-6),
        qformer=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                     cross_attention_frequency=1, layer_norm_eps=1e-12, max_position_embeddings=32),
        text=dict(model_type="opt", hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                  max_position_embeddings=64, do_layer_norm_before=True, vocab_size=480,
                  bos_token_id=2, eos_token_id=2, pad_token_id=1, dropout=0.0),
        eos_boost=True,  # EOS (</s>, 2) made to occur mid-sequence
        images=["rgb_37x23.png", "photo_64x48.jpg"],
        padded_prompts=["a photo of", "Question: how many dogs are there? Answer:"],
    ),
    "blip2-opt-b": dict(
        kind="opt",
        seed=202,
        tokenizer="opt",
        num_query_tokens=4,
        vision=dict(hidden_size=40, intermediate_size=56, num_hidden_layers=3, num_attention_heads=4,
                    image_size=40, patch_size=10, layer_norm_eps=1e-5),
        qformer=dict(hidden_size=40, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                     cross_attention_frequency=2, layer_norm_eps=1e-12, max_position_embeddings=32),
        # OPT-350m style: word_embed_proj_dim != hidden_size (project_in / project_out) and post-LN
        text=dict(model_type="opt", hidden_size=48, word_embed_proj_dim=24, ffn_dim=64, num_hidden_layers=3,
                  num_attention_heads=3, max_position_embeddings=48, do_layer_norm_before=False,
                  vocab_size=480, bos_token_id=2, pad_token_id=1, dropout=0.0),
        # the public BLIP-2 OPT configs stop at "\n" (eos_token_id 50118), not at </s>
        eos_token="\n",
        eos_boost=True,
        images=["blocks_1000x700.png", "rgba_29x41.png"],
    ),
    "blip2-opt-legacy": dict(
        kind="opt",
        legacy=True,
        seed=203,
        tokenizer="opt",
        num_query_tokens=6,
        vision=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                    image_size=32, patch_size=16, layer_norm_eps=1e-6),
        qformer=dict(hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=3,
                     cross_attention_frequency=2, layer_norm_eps=1e-12, max_position_embeddings=32),
        text=dict(model_type="opt", hidden_size=40, ffn_dim=80, num_hidden_layers=2, num_attention_heads=5,
                  max_position_embeddings=64, do_layer_norm_before=True, vocab_size=476,
                  bos_token_id=2, eos_token_id=2, pad_token_id=1, dropout=0.0),
        images=["gray_45x31.png", "photo_50x40.webp"],
    ),
    "blip2-t5-a": dict(
        kind="t5",
        seed=204,
        tokenizer="t5",
        num_query_tokens=6,
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    image_size=32, patch_size=8, layer_norm_eps=1e-6),
        qformer=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                     cross_attention_frequency=2, layer_norm_eps=1e-12, max_position_embeddings=32),
        # Flan-T5 style: gated-gelu (gelu_new), untied lm_head without output scaling, more decoder layers
        # (num_decoder_layers > num_layers breaks generate() in transformers 5.12: its cache is sized by
        # num_layers -> IndexError; so the encoder is the deeper one here)
        text=dict(model_type="t5", vocab_size=320, d_model=32, d_kv=8, d_ff=48, num_layers=3,
                  num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=8,
                  relative_attention_max_distance=20, feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6,
                  tie_word_embeddings=False, dropout_rate=0.0, decoder_start_token_id=0, bos_token_id=1,
                  eos_token_id=1, pad_token_id=0),
        eos_boost=True,
        images=["rgb_37x23.png", "palette_33x17.png"],
    ),
    "blip2-itm-a": dict(
        kind="itm",
        seed=205,
        tokenizer="bert",
        num_query_tokens=8,
        image_text_hidden_size=16,
        vision=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                    image_size=32, patch_size=8, layer_norm_eps=1e-6),
        qformer=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                     cross_attention_frequency=1, layer_norm_eps=1e-12, max_position_embeddings=32,
                     use_qformer_text_input=True),
        images=["photo_64x48.jpg", "blocks_1000x700.png"],
        texts=["a photo of a cat sitting on a red couch", "Two dogs!"],
    ),
}
# OPTConfig's structural switches over blip2-opt-a's vision and Q-Former: layer norms without scale and
# shift (no tensors stored, the final one still applied), projections without biases, a gelu MLP. No EOS
# boost: after a non-affine final norm the mean head input is ~0 and the boost has no direction.
SPECS["blip2-opt-c"] = dict(
    {k: v for k, v in SPECS["blip2-opt-a"].items() if k not in ("eos_boost", "padded_prompts")},
    seed=206,
    num_query_tokens=4,
    text=dict(SPECS["blip2-opt-a"]["text"], ffn_dim=48, layer_norm_elementwise_affine=False, enable_bias=False,
              activation_function="gelu"),
)
FIXTURES = list(SPECS)


def image_processor(spec, pil: bool):
    size = spec["vision"]["image_size"]
    cls = BlipImageProcessorPil if pil else BlipImageProcessor
    return cls(size={"height": size, "width": size}, resample=3)


def make_config(spec, tok, image_token_index) -> Blip2Config:
    text = dict(spec.get("text", {}))
    if spec.get("eos_token"):
        text["eos_token_id"] = tok.convert_tokens_to_ids(tok.tokenize(spec["eos_token"]))[0]
    qformer = dict(spec["qformer"])
    if spec["kind"] == "itm":
        qformer["vocab_size"] = len(tok) - 1  # the tokenizer without "<image>" (placeholders are stripped)
        qformer["pad_token_id"] = tok.pad_token_id
    kw = dict(
        vision_config=spec["vision"],
        qformer_config=qformer,
        num_query_tokens=spec["num_query_tokens"],
        image_token_index=image_token_index,
    )
    if text:
        kw["text_config"] = text
    if spec["kind"] == "itm":
        kw["image_text_hidden_size"] = spec["image_text_hidden_size"]
    cfg = Blip2Config(**kw)
    strip_half_dtypes(cfg)
    return cfg


def model_class(spec):
    return Blip2ForImageTextRetrieval if spec["kind"] == "itm" else Blip2ForConditionalGeneration


@torch.no_grad()
def prefix_path(model, pix):
    """vision -> Q-Former -> language_projection, exactly as Blip2ForConditionalGeneration.generate does."""
    img = model.vision_model(pixel_values=pix).last_hidden_state
    q = model.qformer(
        query_embeds=model.query_tokens.expand(img.shape[0], -1, -1),
        encoder_hidden_states=img,
        encoder_attention_mask=torch.ones(img.shape[:-1], dtype=torch.long),
    ).last_hidden_state
    proj = model.language_projection(q) if hasattr(model, "language_projection") else None
    return img, q, proj


def caption_ids(model, batch: int) -> torch.Tensor:
    """What generate() builds with no prompt: [image_token_index] * N + [text_config.bos_token_id]."""
    cfg = model.config
    return torch.tensor([[cfg.image_token_index] * cfg.num_query_tokens + [cfg.text_config.bos_token_id]] * batch)


def build_one(name: str) -> None:
    spec = SPECS[name]
    out = reset_dir(ROOT / name)
    ckpt = out / "checkpoint"
    seed_all(spec["seed"])
    legacy = spec.get("legacy", False)
    tok = AutoTokenizer.from_pretrained(str(ROOT / "tokenizers" / spec["tokenizer"]))
    if legacy:
        processor, image_token_index = None, None
    else:
        processor = Blip2Processor(image_processor(spec, pil=False), tok, num_query_tokens=spec["num_query_tokens"])
        image_token_index = tok.convert_tokens_to_ids("<image>")
    cfg = make_config(spec, tok, image_token_index)
    cls = model_class(spec)
    model = cls(cfg).eval()
    randomize_parameters(model, spec["seed"])
    zero_vision_key_bias(model)
    if spec["kind"] == "t5":
        untie_t5_lm_head(model.language_model, spec["seed"] + 1)
    boost = None
    if spec.get("eos_boost"):
        boost = tune_eos(spec, model, tok)
    model.save_pretrained(str(ckpt))
    if spec["kind"] == "t5":
        patch_flan_t5_config(ckpt / "config.json")
    if legacy:
        image_processor(spec, pil=False).save_pretrained(str(ckpt))
        copy_tokenizer(spec["tokenizer"], ckpt)
    else:
        processor.save_pretrained(str(ckpt))
    del model

    # ---------------- from the saved files only ----------------
    model = cls.from_pretrained(str(ckpt)).eval()
    tok = AutoTokenizer.from_pretrained(str(ckpt))
    ip = AutoImageProcessor.from_pretrained(str(ckpt), backend="pil")
    assert type(ip).__name__ == "BlipImageProcessorPil"
    if legacy:
        assert model.config.image_token_index is None
        nq = None
    else:
        nq = json.loads((ckpt / "processor_config.json").read_text())["num_query_tokens"]
        assert nq == model.config.num_query_tokens
    processor = Blip2Processor(ip, tok, num_query_tokens=nq) if not legacy else None
    images = load_images(spec["images"])
    tensors = {}
    pix = ip(images=images, return_tensors="pt")["pixel_values"]
    tensors["pixel_values"] = pix
    img, q, proj = prefix_path(model, pix)
    tensors["image_embeds"] = img
    tensors["qformer_last_hidden_state"] = q
    if proj is not None:
        tensors["prefix_embeds"] = proj

    tc = model.config.text_config if spec["kind"] != "itm" else None
    rec = {
        "fixture": name,
        "model_class": cls.__name__,
        "transformers_version": __import__("transformers").__version__,
        "checkpoint_layout": "preprocessor_config.json (legacy)" if legacy else "processor_config.json",
        "image_processor": {"class": type(ip).__name__, "size": dict(ip.size), "resample": int(ip.resample)},
        "images": spec["images"],
        "num_query_tokens": model.config.num_query_tokens,
        "image_token_index": model.config.image_token_index,
        "tokenizer_len": len(tok),
        "config": {
            "vision": spec["vision"],
            "qformer": spec["qformer"],
            "text": {k: getattr(tc, k) for k in sorted(spec["text"]) if k != "model_type"} if tc else None,
        },
    }
    if tc is not None:
        rec["special_ids"] = {
            "bos_token_id": tc.bos_token_id,
            "eos_token_id": tc.eos_token_id,
            "pad_token_id": tc.pad_token_id,
            "decoder_start_token_id": getattr(tc, "decoder_start_token_id", None),
            "tokenizer_bos": tok.bos_token_id,
            "tokenizer_eos": tok.eos_token_id,
            "tokenizer_pad": tok.pad_token_id,
        }
        rec["generation_config_effective"] = gen_config_dict(model.language_model.generation_config)
        rec["generation_config_saved"] = gen_config_dict(model.generation_config)
    if boost is not None:
        rec["eos_boost"] = boost
        rec["note_eos"] = (
            f"before saving, the LM-head row of eos_token_id was raised by {boost['beta']} along the mean LM-head "
            "input (test/oracle/vlm.py boost_eos) so that greedy decoding stops mid-sequence"
        )
    with torch.no_grad():
        if spec["kind"] == "itm":
            rec["retrieval"] = itm_records(spec, model, processor, tok, images, pix, tensors)
        elif legacy:
            rec["cases"] = legacy_cases(spec, model, tok, pix, proj, tensors)
        else:
            rec["cases"] = placeholder_cases(spec, model, processor, tok, images, pix, tensors)
    if spec["kind"] == "t5":
        rec["note_t5"] = (
            "config.json states text_config.tie_word_embeddings=false (Flan-T5 form): separate "
            "language_model.lm_head.weight, decoder output NOT scaled by d_model**-0.5"
        )
    rec["arrays"] = tensor_index(tensors)
    write_tensors(out / "expected.safetensors", tensors)
    write_json(out / "expected.json", rec)
    print(f"  {name}: {dir_size(out) / 1e3:.0f} kB")


@torch.no_grad()
def tune_eos(spec, model, tok) -> dict:
    ip = image_processor(spec, pil=True)
    pix = ip(images=load_images(spec["images"]), return_tensors="pt")["pixel_values"]
    eos = model.config.text_config.eos_token_id
    lm = model.language_model
    ids = caption_ids(model, pix.shape[0])

    def run():
        seqs = model.generate(pixel_values=pix, input_ids=ids.clone(), **GENERATIONS[0][1])
        return seqs[:, ids.shape[1]:] if spec["kind"] == "opt" else seqs[:, 1:]

    beta = boost_eos(lm.lm_head, eos, run)
    return {"beta": beta, "token_id": eos}


def placeholder_cases(spec, model, processor, tok, images, pix, tensors) -> list:
    kind = spec["kind"]
    cases = []
    B = pix.shape[0]
    prompts = [("caption", None), ("question", QUESTION)]
    for cname, prompt in prompts:
        case = {"name": cname, "prompt": prompt}
        if prompt is None:
            ids = caption_ids(model, B)
            mask = torch.ones_like(ids)
            gen_inputs = {"pixel_values": pix}
            case["input_ids_note"] = "no prompt: generate() builds [image_token_index]*N + [text_config.bos_token_id]"
        else:
            enc = processor(images=images, text=[prompt] * B, return_tensors="pt")
            assert torch.equal(enc["pixel_values"], pix)
            ids, mask = enc["input_ids"], enc["attention_mask"]
            gen_inputs = {"pixel_values": pix, "input_ids": ids, "attention_mask": mask}
        case["input_ids"] = ids.tolist()
        case["attention_mask"] = mask.tolist()
        nq = model.config.num_query_tokens
        if kind == "opt":
            out = model(pixel_values=pix, input_ids=ids, attention_mask=mask)
            store_lm_logits(tensors, case, cname, out.logits, nq)
            prompt_length = ids.shape[1]
        else:
            dec = torch.full((B, 1), model.config.text_config.decoder_start_token_id, dtype=torch.long)
            out = model(pixel_values=pix, input_ids=ids, attention_mask=mask, decoder_input_ids=dec)
            tensors[f"{cname}/decoder_logits"] = out.logits
            tensors[f"{cname}/encoder_last_hidden_state"] = out.language_model_outputs.encoder_last_hidden_state
            case["decoder_input_ids"] = dec.tolist()
            prompt_length = 1
        case["generation"] = generations(model, gen_inputs, prompt_length, tok, tensors, cname)
        cases.append(case)
    if spec.get("padded_prompts"):
        # different prompts in one batch, left padding (the tokenizer's pads go between the placeholders and
        # the text, as the processor concatenates after padding)
        tok.padding_side = "left"
        enc = processor(images=images, text=spec["padded_prompts"], padding=True, return_tensors="pt")
        tok.padding_side = "right"
        ids, mask = enc["input_ids"], enc["attention_mask"]
        case = {"name": "padded", "prompt": spec["padded_prompts"], "padding_side": "left",
                "input_ids": ids.tolist(), "attention_mask": mask.tolist()}
        out = model(pixel_values=pix, input_ids=ids, attention_mask=mask)
        store_lm_logits(tensors, case, "padded", out.logits, model.config.num_query_tokens)
        gin = {"pixel_values": pix, "input_ids": ids, "attention_mask": mask}
        case["generation"] = generations(model, gin, ids.shape[1], tok, tensors, "padded", which=["greedy", "beam3"])
        tensors.pop("padded/greedy/step_logits", None)
        cases.append(case)
    return cases


def legacy_cases(spec, model, tok, pix, proj, tensors) -> list:
    B, N = pix.shape[0], proj.shape[1]
    lm = model.language_model
    emb = model.get_input_embeddings()
    cases = []
    for cname, prompt in [("caption", None), ("question", QUESTION)]:
        if prompt is None:
            ids = torch.tensor([[model.config.text_config.bos_token_id]] * B)
        else:
            ids = tok([prompt] * B, return_tensors="pt")["input_ids"]
        mask = torch.ones_like(ids)
        embeds = torch.cat([proj, emb(ids)], dim=1)
        full_mask = torch.cat([torch.ones(B, N, dtype=torch.long), mask], dim=1)
        case = {
            "name": cname,
            "prompt": prompt,
            "input_ids": ids.tolist(),
            "attention_mask": mask.tolist(),
            "input_ids_note": "text ids only (no placeholders); the N projected queries are prepended as embeddings "
            "and the attention mask is extended with N ones in front",
        }
        logits = lm(inputs_embeds=embeds, attention_mask=full_mask).logits
        store_lm_logits(tensors, case, cname, logits, N)
        gens = generations(lm, {"inputs_embeds": embeds, "attention_mask": full_mask}, 0, tok, tensors, cname)
        # the same weights through the transformers 5 placeholder path must agree
        placeholder = 0  # "<s>": never produced by the tokenizer, so safe as a stand-in placeholder id
        model.config.image_token_index = placeholder
        ph_ids = torch.cat([torch.full((B, N), placeholder), ids], dim=1)
        for g in gens:
            if "penalties" in g["name"]:
                # with inputs_embeds only, repetition_penalty / no_repeat_ngram_size see only the new tokens;
                # the placeholder path also counts the prompt ids, so the two may legitimately differ
                continue
            ph = model.generate(pixel_values=pix, input_ids=ph_ids.clone(), attention_mask=torch.ones_like(ph_ids), **g["kwargs"])
            assert ph[:, ph_ids.shape[1]:].tolist() == g["new_tokens"], (cname, g["name"])
        model.config.image_token_index = None
        case["generation"] = gens
        case["generate_output_note"] = (
            "sequences = new tokens only (language_model.generate with inputs_embeds and no input_ids, as "
            "transformers 4 returned them for this layout); prompt_length = 0. repetition_penalty and "
            "no_repeat_ngram_size therefore only see the generated tokens here (not the prompt)"
        )
        cases.append(case)
    return cases


def itm_records(spec, model, processor, tok, images, pix, tensors) -> dict:
    enc = processor(images=images, text=spec["texts"], padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    itm = model(pixel_values=pix, input_ids=ids, attention_mask=mask, use_image_text_matching_head=True)
    tensors["itm_logits"] = itm.logits_per_image
    tensors["itm_probs"] = torch.softmax(itm.logits_per_image, dim=-1)[:, 1]
    itc = model(pixel_values=pix, input_ids=ids, attention_mask=mask, use_image_text_matching_head=False)
    tensors["itc_matrix"] = itc.logits_per_image
    tensors["itc_scores"] = torch.diagonal(itc.logits_per_image)
    tensors["image_feat"] = itc.image_embeds
    tensors["text_feat"] = itc.text_embeds
    nq = model.config.num_query_tokens
    return {
        "texts": spec["texts"],
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "text_input_ids": ids[:, nq:].tolist(),
        "text_attention_mask": mask[:, nq:].tolist(),
        "itm_probs": tensors["itm_probs"].tolist(),
        "itc_scores": tensors["itc_scores"].tolist(),
        "note": (
            "input_ids / attention_mask as the processor gives them (N '<image>' placeholders first); the model "
            "drops the first N ids (text_input_ids). ITM: Q-Former over [query tokens; text embeddings] with "
            "attention_mask as given (N ones + text mask), cross-attending image_embeds; itm_logits (B, 2) = mean "
            "over the N query positions of itm_head; itm_probs = softmax[:, 1]. ITC: image_feat (B, N, E) = "
            "normalize(vision_projection(qformer(query tokens))), text_feat (B, E) = normalize(text_projection("
            "qformer(text only, text mask)[:, 0])); itc_matrix (B_img, B_txt) = max over queries of image_feat . "
            "text_feat; itc_scores its diagonal."
        ),
    }


def build(names=None) -> None:
    for name in names or FIXTURES:
        build_one(name)


if __name__ == "__main__":
    build()
