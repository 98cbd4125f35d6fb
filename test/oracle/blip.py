"""BLIP fixtures: tiny random BlipForConditionalGeneration / BlipForQuestionAnswering / BlipForImageTextRetrieval.

For each fixture: build the model from a config, randomise every parameter, save the checkpoint (HF layout,
with the `bert` tokenizer from test/fixtures/tokenizers and a BLIP image processor), load it back with
from_pretrained and record what transformers computes from the checkpoint as loaded. Inputs are
preprocessed with the PIL backend (`AutoImageProcessor.from_pretrained(ckpt, backend="pil")`).
"""

from __future__ import annotations

import json

import torch
from transformers import (
    AutoImageProcessor,
    AutoTokenizer,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipForImageTextRetrieval,
    BlipForQuestionAnswering,
    BlipImageProcessor,
    BlipProcessor,
)
from PIL import Image

from build_tokenizers import copy_tokenizer
from common import (
    FIXTURES,
    GENERATIONS,
    IMAGES_DIR,
    dir_size,
    randomize_parameters,
    record_generation,
    reset_dir,
    seed_all,
    strip_half_dtypes,
    tensor_index,
    write_json,
    write_tensors,
)

TOK = "bert"

# Per fixture: model class, config, image processor settings, checkpoint layout, extra tweaks.
SPECS = {
    "blip-caption-a": dict(
        cls=BlipForConditionalGeneration,
        seed=101,
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    image_size=32, patch_size=8, layer_norm_eps=1e-5),
        text=dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  layer_norm_eps=1e-12, max_position_embeddings=32),
        extra_vocab=0,
        resample=3,
        layout="processor_config",  # transformers 5 Processor.save_pretrained layout
        images=["rgb_37x23.png", "photo_64x48.jpg"],
        prompt="a picture of",
    ),
    "blip-caption-b": dict(
        cls=BlipForConditionalGeneration,
        seed=102,
        vision=dict(hidden_size=36, intermediate_size=64, num_hidden_layers=3, num_attention_heads=3,
                    image_size=48, patch_size=12, layer_norm_eps=1e-6),
        text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                  layer_norm_eps=1e-6, max_position_embeddings=40),
        extra_vocab=6,  # LM vocabulary padded past the tokenizer: ids >= len(tokenizer) exist
        eos_bias=True,  # raise the [SEP] logit bias so greedy ends early (exercises EOS handling)
        resample=3,
        layout="preprocessor_config",  # older layout: preprocessor_config.json + tokenizer files
        images=["blocks_1000x700.png", "gray_45x31.png"],
        prompt="A Photo Of",  # upper case: the BERT tokenizer lower-cases it
    ),
    "blip-vqa-a": dict(
        cls=BlipForQuestionAnswering,
        seed=103,
        vision=dict(hidden_size=40, intermediate_size=56, num_hidden_layers=2, num_attention_heads=5,
                    image_size=32, patch_size=8, layer_norm_eps=1e-5),
        text=dict(hidden_size=40, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  layer_norm_eps=1e-12, max_position_embeddings=32),
        extra_vocab=0,
        eos_bias=True,
        resample=3,
        layout="preprocessor_config",
        images=["rgba_29x41.png", "photo_50x40.webp"],
        questions=["how many cats are in the picture?", "What color is the bus on the left side?"],
    ),
    "blip-itm-a": dict(
        cls=BlipForImageTextRetrieval,
        seed=104,
        vision=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                    image_size=64, patch_size=16, layer_norm_eps=1e-5),
        text=dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=6,
                  layer_norm_eps=1e-12, max_position_embeddings=48),
        image_text_hidden_size=24,
        extra_vocab=0,
        resample=3,
        layout="processor_config",
        images=["rgb_37x23.png", "palette_33x17.png"],
        texts=["a photo of a cat sitting on a red couch", "two dogs"],
    ),
    "blip-itm-b": dict(
        cls=BlipForImageTextRetrieval,
        seed=105,
        vision=dict(hidden_size=48, intermediate_size=64, num_hidden_layers=3, num_attention_heads=3,
                    image_size=32, patch_size=8, layer_norm_eps=1e-6),
        text=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                  layer_norm_eps=1e-6, max_position_embeddings=40),
        image_text_hidden_size=16,
        extra_vocab=3,
        resample=2,  # bilinear, to check the runtime reads `resample`
        layout="preprocessor_config",
        images=["photo_64x48.jpg", "blocks_1000x700.png"],
        texts=["A MAN RIDING A BICYCLE, down a city street!", "a bowl of fruit on a wooden table"],
    ),
}
FIXTURES_LIST = list(SPECS)
FIXTURES = FIXTURES_LIST  # names this module builds (make_fixtures.py reads FIXTURES)
_ROOT = __import__("common").FIXTURES


def make_config(spec: dict, tok) -> BlipConfig:
    text = dict(spec["text"])
    text.update(
        vocab_size=len(tok) + spec.get("extra_vocab", 0),
        bos_token_id=tok.bos_token_id,  # [DEC]
        pad_token_id=tok.pad_token_id,
        sep_token_id=tok.sep_token_id,
        eos_token_id=2,  # as the public BLIP configs (unused: generate passes sep_token_id as eos)
        projection_dim=text["hidden_size"],
    )
    cfg = BlipConfig(
        vision_config=spec["vision"],
        text_config=text,
        image_text_hidden_size=spec.get("image_text_hidden_size", 256),
        projection_dim=spec.get("image_text_hidden_size", 32),
    )
    strip_half_dtypes(cfg)
    return cfg


def save_checkpoint(spec: dict, model, tok, ckpt) -> None:
    model.save_pretrained(str(ckpt))
    size = spec["vision"]["image_size"]
    # BlipImageProcessor (the class name a transformers 5 checkpoint records); values are computed with
    # the PIL backend class loaded from the same file.
    ip = BlipImageProcessor(size={"height": size, "width": size}, resample=spec["resample"])
    if spec["layout"] == "processor_config":
        BlipProcessor(image_processor=ip, tokenizer=tok).save_pretrained(str(ckpt))
    else:
        ip.save_pretrained(str(ckpt))
        copy_tokenizer(TOK, ckpt)


@torch.no_grad()
def tune_eos_bias(spec, model, tok) -> float:
    """Raise the EOS ([SEP]) logit bias in steps of 0.05 until greedy decoding of the fixture's first case
    stops with EOS after 2..11 new tokens in some row. Deterministic; the chosen value is recorded."""
    from transformers import BlipImageProcessorPil

    size = spec["vision"]["image_size"]
    ip = BlipImageProcessorPil(size={"height": size, "width": size}, resample=spec["resample"])
    pix = ip(images=load_images(spec["images"]), return_tensors="pt")["pixel_values"]
    bias = model.text_decoder.cls.predictions.bias
    eos = tok.sep_token_id
    base = float(bias[eos])
    for step in range(0, 101):
        b = 0.05 * step
        bias[eos] = base + b
        if spec["cls"] is BlipForQuestionAnswering:
            enc = tok(spec["questions"], padding=True, return_tensors="pt")
            seqs = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                  pixel_values=pix, **GENERATIONS[0][1])
        else:
            seqs = model.generate(pixel_values=pix, **GENERATIONS[0][1])
        for row in seqs[:, 1:].tolist():
            if eos in row and 2 <= row.index(eos) + 1 <= 11:
                return b
    raise RuntimeError("no EOS bias found")


def load_images(names):
    out = []
    for n in names:
        im = Image.open(IMAGES_DIR / n)
        im.load()
        out.append(im)
    return out


def build_one(name: str) -> None:
    spec = SPECS[name]
    out = reset_dir(_ROOT / name)
    ckpt = out / "checkpoint"
    seed_all(spec["seed"])
    tok = AutoTokenizer.from_pretrained(str(_ROOT / "tokenizers" / TOK))
    cfg = make_config(spec, tok)
    model = spec["cls"](cfg).eval()
    randomize_parameters(model, spec["seed"])
    eos_bias = tune_eos_bias(spec, model, tok) if spec.get("eos_bias") else None
    save_checkpoint(spec, model, tok, ckpt)
    del model

    # --- everything below uses only what was saved ---
    model = spec["cls"].from_pretrained(str(ckpt)).eval()
    tok = AutoTokenizer.from_pretrained(str(ckpt))
    ip = AutoImageProcessor.from_pretrained(str(ckpt), backend="pil")
    assert type(ip).__name__ == "BlipImageProcessorPil", type(ip)
    processor = BlipProcessor(image_processor=ip, tokenizer=tok)
    images = load_images(spec["images"])
    tensors = {}
    rec = {
        "fixture": name,
        "model_class": spec["cls"].__name__,
        "transformers_version": __import__("transformers").__version__,
        "checkpoint_layout": spec["layout"] + ".json",
        "image_processor": {"class": type(ip).__name__, "size": dict(ip.size), "resample": int(ip.resample)},
        "images": spec["images"],
        # bos_token_id: text_config.bos_token_id = [DEC], the decoder start; sep_token_id: what generate()
        # uses as EOS; eos_token_id: text_config.eos_token_id (not used by generate()); cls / enc: tokenizer's
        "special_ids": {
            "bos_token_id": cfg.text_config.bos_token_id,
            "sep_token_id": cfg.text_config.sep_token_id,
            "pad_token_id": cfg.text_config.pad_token_id,
            "eos_token_id": cfg.text_config.eos_token_id,
            "cls_token_id": tok.cls_token_id,
            "enc_token_id": tok.convert_tokens_to_ids("[ENC]"),
        },
        "vocab": {"tokenizer_len": len(tok), "text_config.vocab_size": cfg.text_config.vocab_size},
        "config": {
            "vision": {k: getattr(cfg.vision_config, k) for k in sorted(spec["vision"])},
            "text": {k: getattr(cfg.text_config, k) for k in sorted(spec["text"])},
        },
    }
    if eos_bias is not None:
        rec["note"] = (
            f"before saving, the text_decoder LM bias of [SEP] was raised by {eos_bias:g} (the smallest step of "
            "0.05 at which greedy decoding of the first case ends with EOS mid-sequence)"
        )

    with torch.no_grad():
        pix = processor(images=images, return_tensors="pt")["pixel_values"]
        tensors["pixel_values"] = pix
        vis = model.vision_model(pixel_values=pix)
        tensors["image_embeds"] = vis.last_hidden_state
        if spec["cls"] is BlipForConditionalGeneration:
            rec["cases"] = caption_cases(spec, model, processor, tok, pix, tensors)
        elif spec["cls"] is BlipForQuestionAnswering:
            rec["cases"] = vqa_cases(spec, model, processor, tok, images, pix, tensors)
        else:
            rec["retrieval"] = itm_records(spec, model, processor, tok, images, pix, tensors)
    rec["generation_config_effective"] = (
        model.text_decoder.generation_config.to_diff_dict() if hasattr(model, "text_decoder") else None
    )
    rec["arrays"] = tensor_index(tensors)
    write_tensors(out / "expected.safetensors", tensors)
    write_json(out / "expected.json", rec)
    print(f"  {name}: {dir_size(out) / 1e3:.0f} kB")


def caption_cases(spec, model, processor, tok, pix, tensors) -> list:
    cases = []
    # 1. no prompt: generate() starts from [DEC]
    # 2. prompt: processor gives [CLS] prompt [SEP]; generate() puts [DEC] in place of [CLS], drops [SEP]
    for cname, prompt in [("noprompt", None), ("prompt", spec["prompt"])]:
        case = {"name": cname, "prompt": prompt}
        if prompt is None:
            inputs = {"pixel_values": pix}
            dec_ids = torch.full((pix.shape[0], 1), model.config.text_config.bos_token_id, dtype=torch.long)
            case["processor_input_ids"] = None
        else:
            enc = processor(images=None, text=[prompt] * pix.shape[0], return_tensors="pt")
            case["processor_input_ids"] = enc["input_ids"].tolist()
            case["processor_attention_mask"] = enc["attention_mask"].tolist()
            inputs = {"pixel_values": pix, "input_ids": enc["input_ids"].clone(), "attention_mask": enc["attention_mask"]}
            dec_ids = enc["input_ids"].clone()[:, :-1]
            dec_ids[:, 0] = model.config.text_config.bos_token_id
        case["decoder_input_ids"] = dec_ids.tolist()
        # decoder logits at every position of decoder_input_ids, attending to image_embeds
        out = model.text_decoder(
            input_ids=dec_ids,
            attention_mask=torch.ones_like(dec_ids),
            encoder_hidden_states=tensors["image_embeds"],
        )
        tensors[f"{cname}/decoder_logits"] = out.logits
        case["decoder_logits_note"] = "decoder_logits (B, S, V): text_decoder logits for decoder_input_ids"
        gens = []
        for gname, kwargs in GENERATIONS:
            # BLIP's generate() writes into input_ids in place: give it a copy each time
            gin = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in inputs.items()}
            gens.append(record_generation(model, gin, kwargs, dec_ids.shape[1], tok, gname, tensors, cname))
        case["generation"] = gens
        cases.append(case)
    # 3. a prompt per row, of different lengths: right-padded by the processor, so the shorter row
    # keeps its [SEP] and padding before the new tokens, which transformers 5.12's generate()
    # numbers from the mask (cumsum - 1, 0 at padding; then the last column's + 1)
    prompts = [spec["prompt"], "a"][: pix.shape[0]]
    if pix.shape[0] == 2:
        enc = processor(images=None, text=prompts, padding=True, return_tensors="pt")
        dec_ids = enc["input_ids"].clone()[:, :-1]
        dec_ids[:, 0] = model.config.text_config.bos_token_id
        case = {
            "name": "mixed_prompts",
            "prompt": prompts,
            "processor_input_ids": enc["input_ids"].tolist(),
            "processor_attention_mask": enc["attention_mask"].tolist(),
            "decoder_input_ids": dec_ids.tolist(),
            "decoder_attention_mask": enc["attention_mask"][:, :-1].tolist(),
        }
        inputs = {"pixel_values": pix, "input_ids": enc["input_ids"].clone(), "attention_mask": enc["attention_mask"]}
        gens = []
        for gname, kwargs in GENERATIONS:
            gin = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in inputs.items()}
            gens.append(record_generation(model, gin, kwargs, dec_ids.shape[1], tok, gname, tensors, "mixed_prompts"))
        case["generation"] = gens
        cases.append(case)
    return cases


def vqa_cases(spec, model, processor, tok, images, pix, tensors) -> list:
    enc = processor(images=None, text=spec["questions"], padding=True, return_tensors="pt")
    case = {
        "name": "vqa",
        "questions": spec["questions"],
        "input_ids": enc["input_ids"].tolist(),
        "attention_mask": enc["attention_mask"].tolist(),
        "padding": "longest (right), processor(text=..., padding=True)",
    }
    q = model.text_encoder(
        input_ids=enc["input_ids"],
        attention_mask=enc["attention_mask"],
        encoder_hidden_states=tensors["image_embeds"],
        encoder_attention_mask=torch.ones(tensors["image_embeds"].shape[:-1], dtype=torch.long),
    ).last_hidden_state
    tensors["vqa/question_embeds"] = q
    dec_ids = torch.full((pix.shape[0], 1), model.decoder_start_token_id, dtype=torch.long)
    case["decoder_input_ids"] = dec_ids.tolist()
    # generate() attends over ALL question positions (its question_attention_mask is all ones, padding included)
    out = model.text_decoder(
        input_ids=dec_ids,
        encoder_hidden_states=q,
        encoder_attention_mask=torch.ones(q.shape[:-1], dtype=torch.long),
    )
    tensors["vqa/decoder_logits"] = out.logits
    case["note"] = (
        "question_embeds = text_encoder(input_ids, attention_mask, cross-attending image_embeds). "
        "generate() then decodes from [DEC] with cross-attention mask all ones over question_embeds, "
        "padding positions included (transformers behaviour)."
    )
    gens = []
    for gname, kwargs in GENERATIONS:
        gin = {"input_ids": enc["input_ids"].clone(), "attention_mask": enc["attention_mask"], "pixel_values": pix}
        gens.append(record_generation(model, gin, kwargs, 1, tok, gname, tensors, "vqa"))
    case["generation"] = gens
    return [case]


def itm_records(spec, model, processor, tok, images, pix, tensors) -> dict:
    enc = processor(images=None, text=spec["texts"], padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    itm = model(input_ids=ids, pixel_values=pix, attention_mask=mask, use_itm_head=True)
    itm_logits = itm.itm_score
    tensors["itm_logits"] = itm_logits
    tensors["itm_probs"] = torch.softmax(itm_logits, dim=-1)[:, 1]
    itc = model(input_ids=ids, pixel_values=pix, attention_mask=mask, use_itm_head=False)
    tensors["itc_matrix"] = itc.itm_score
    # the same quantities spelled out (what retrieval.onnx's outputs are)
    image_feat = torch.nn.functional.normalize(model.vision_proj(tensors["image_embeds"][:, 0, :]), dim=-1)
    text_feat = torch.nn.functional.normalize(model.text_proj(itc.question_embeds[:, 0, :]), dim=-1)
    assert torch.allclose(image_feat @ text_feat.t(), itc.itm_score, atol=1e-6)
    tensors["image_feat"] = image_feat
    tensors["text_feat"] = text_feat
    tensors["itc_scores"] = torch.diagonal(itc.itm_score)
    return {
        "texts": spec["texts"],
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "itm_probs": tensors["itm_probs"].tolist(),
        "itc_scores": tensors["itc_scores"].tolist(),
        "note": (
            "Pairs: image b with text b. itm_logits (B, 2) = itm_head(text_encoder(ids, mask, cross-attending "
            "image_embeds)[:, 0]); itm_probs = softmax(itm_logits)[:, 1]. input_ids start with [CLS] (transformers "
            "does not swap in [ENC] as LAVIS did). itc_matrix (B_img, B_txt) = image_feat @ text_feat.T with "
            "image_feat = normalize(vision_proj(image_embeds[:, 0])), text_feat = normalize(text_proj(text "
            "encoder without image, [CLS] position)); itc_scores = its diagonal."
        ),
    }


def build(names=None) -> None:
    for name in names or FIXTURES:
        build_one(name)


if __name__ == "__main__":
    build()
