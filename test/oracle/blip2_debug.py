"""Debug fixtures for the BLIP-2 / InstructBLIP lowering (qformer, opt, t5, llama node kinds).

Tiny random-weight models built with transformers, saved in HuggingFace layout, plus the values the
compiled ONNX must reproduce, including intermediates (image features, Q-Former outputs, projected
queries, T5 encoder states) that the main fixtures do not record. Run from the repository root:

    ../shared/oracle/py test/oracle/blip2_debug.py [case ...]

Writes test/fixtures/debug/<case>/{config.json, model.safetensors, expected.safetensors, expected.json}.
Every parameter is randomised, so no path is trivially zero. Only the COMMITTED cases are in git
(layouts the main fixtures do not cover), without their vision tensors (the tests start from the
recorded image features); the rest are git-ignored: regenerate them with this script.
"""

import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2ForImageTextRetrieval,
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
)

OUT = "test/fixtures/debug"
IMG = 28  # 2x2 patches of 14 pixels + class token = 5 image features


def vision(**kw):
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                image_size=IMG, patch_size=14, layer_norm_eps=1e-6, **kw)


def qformer(**kw):
    base = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                encoder_hidden_size=32, vocab_size=100, max_position_embeddings=40, cross_attention_frequency=2)
    base.update(kw)
    return base


def opt(**kw):
    base = dict(model_type="opt", hidden_size=40, word_embed_proj_dim=40, ffn_dim=64, num_hidden_layers=2,
                num_attention_heads=4, vocab_size=128, max_position_embeddings=64, pad_token_id=1,
                bos_token_id=2, eos_token_id=2)
    base.update(kw)
    return base


def t5(**kw):
    base = dict(model_type="t5", d_model=32, d_kv=8, d_ff=48, num_layers=3, num_decoder_layers=2, num_heads=4,
                vocab_size=96, relative_attention_num_buckets=8, relative_attention_max_distance=16,
                feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=0, eos_token_id=1,
                decoder_start_token_id=0, bos_token_id=1)
    base.update(kw)
    return base


def llama(**kw):
    base = dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=128, max_position_embeddings=64, rms_norm_eps=1e-6,
                pad_token_id=0, bos_token_id=1, eos_token_id=2)
    base.update(kw)
    return base


# name: (model class, config class, config kwargs)
CASES = {
    # OPT-2.7b layout: pre-norm, word_embed_proj_dim == hidden_size, placeholders.
    "blip2-opt": (Blip2ForConditionalGeneration, Blip2Config,
                  dict(vision_config=vision(), qformer_config=qformer(), text_config=opt(),
                       num_query_tokens=4, image_token_index=127)),
    # OPT-350m layout: post-norm, project_in/project_out, no q/v bias in the ViT, cross-attention every layer.
    "blip2-opt-proj": (Blip2ForConditionalGeneration, Blip2Config,
                       dict(vision_config=vision(qkv_bias=False), qformer_config=qformer(cross_attention_frequency=1, num_hidden_layers=2),
                            text_config=opt(hidden_size=48, word_embed_proj_dim=16, do_layer_norm_before=False),
                            num_query_tokens=3, image_token_index=126)),
    # Checkpoint predating placeholders: the query outputs are prepended (recorded through the LM directly).
    "blip2-opt-legacy": (Blip2ForConditionalGeneration, Blip2Config,
                         dict(vision_config=vision(), qformer_config=qformer(num_hidden_layers=1), text_config=opt(),
                              num_query_tokens=5)),
    # Flan-T5 layout: gated-gelu (tanh), untied lm_head without scaling, encoder deeper than decoder
    # (transformers 5.12 cannot generate with a deeper decoder: its cache is sized by num_layers).
    "blip2-t5": (Blip2ForConditionalGeneration, Blip2Config,
                 dict(vision_config=vision(), qformer_config=qformer(), text_config=t5(),
                      num_query_tokens=4, image_token_index=95)),
    # Original T5 layout: relu, tied head with d_model**-0.5 scaling, inner width != d_model.
    "blip2-t5-tied": (Blip2ForConditionalGeneration, Blip2Config,
                      dict(vision_config=vision(), qformer_config=qformer(num_hidden_layers=2),
                           text_config=t5(feed_forward_proj="relu", tie_word_embeddings=True, d_kv=12, num_heads=2,
                                          num_layers=2, num_decoder_layers=1, relative_attention_num_buckets=32,
                                          relative_attention_max_distance=128),
                           num_query_tokens=3, image_token_index=94)),
    "blip2-itm": (Blip2ForImageTextRetrieval, Blip2Config,
                  dict(vision_config=vision(), qformer_config=qformer(use_qformer_text_input=True, num_hidden_layers=3),
                       text_config=opt(), num_query_tokens=4, image_text_hidden_size=16)),
    # Vicuna layout with grouped KV heads, rope theta in rope_parameters.
    "instructblip-vicuna": (InstructBlipForConditionalGeneration, InstructBlipConfig,
                            dict(vision_config=vision(), qformer_config=qformer(),
                                 text_config=llama(rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
                                 num_query_tokens=4, image_token_index=127)),
    # Plain multi-head attention, old-style top-level rope_theta, another epsilon.
    "instructblip-vicuna-theta": (InstructBlipForConditionalGeneration, InstructBlipConfig,
                                  dict(vision_config=vision(), qformer_config=qformer(cross_attention_frequency=1, num_hidden_layers=2),
                                       text_config=llama(num_key_value_heads=4, rope_theta=500000.0, rms_norm_eps=1e-5),
                                       num_query_tokens=3, image_token_index=126)),
    # Scaled rotary variants (transformers 5's rope_parameters): linear divides every frequency,
    # llama3 the low ones below a context of 8 (the recorded positions go past it).
    "instructblip-vicuna-rope-linear": (InstructBlipForConditionalGeneration, InstructBlipConfig,
                                        dict(vision_config=vision(), qformer_config=qformer(num_hidden_layers=1),
                                             text_config=llama(rope_parameters={"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0}),
                                             num_query_tokens=3, image_token_index=126)),
    "instructblip-vicuna-rope-llama3": (InstructBlipForConditionalGeneration, InstructBlipConfig,
                                        dict(vision_config=vision(), qformer_config=qformer(num_hidden_layers=1),
                                             text_config=llama(head_dim=16, num_attention_heads=2, num_key_value_heads=1,
                                                               rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8,
                                                                                "rope_theta": 500000.0}),
                                             num_query_tokens=3, image_token_index=126)),
    # head_dim set apart from hidden_size / heads (8, not 32 / 2): the attention is 16 wide and scaled by 8**-0.5.
    "instructblip-vicuna-headdim": (InstructBlipForConditionalGeneration, InstructBlipConfig,
                                    dict(vision_config=vision(), qformer_config=qformer(num_hidden_layers=1),
                                         text_config=llama(head_dim=8, num_attention_heads=2, num_key_value_heads=1,
                                                           rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
                                         num_query_tokens=3, image_token_index=126)),
    "instructblip-t5": (InstructBlipForConditionalGeneration, InstructBlipConfig,
                        dict(vision_config=vision(), qformer_config=qformer(), text_config=t5(),
                             num_query_tokens=4, image_token_index=95)),
}


# Original T5 (relu, tied head scaled by d_model**-0.5), LLaMA with a top-level rope_theta, scaled rotary
# embeddings and a head_dim other than hidden_size / heads.
COMMITTED = {"blip2-t5-tied", "instructblip-vicuna-theta", "instructblip-vicuna-rope-linear", "instructblip-vicuna-rope-llama3",
             "instructblip-vicuna-headdim"}


def strip_vision(d):
    path = os.path.join(d, "model.safetensors")
    sd = {k: v for k, v in load_file(path).items() if not k.startswith("vision_model.")}
    save_file(sd, path, metadata={"format": "pt"})


# Flan-T5 checkpoints store their own lm_head; transformers 5 saves a tied one (its config forces
# tie_word_embeddings) but loads a stored lm_head untied. Write one so that the two differ.
UNTIED_LM_HEAD = {"blip2-t5", "instructblip-t5"}


def untie_lm_head(d, gen):
    path = os.path.join(d, "model.safetensors")
    sd = load_file(path)
    shared = sd["language_model.shared.weight"]
    sd["language_model.lm_head.weight"] = 0.15 * torch.randn(shared.shape, generator=gen)
    save_file(sd, path, metadata={"format": "pt"})


# transformers 5 saves rope_theta under rope_parameters; transformers 4 configs (the published
# Vicuna ones) have it at the top level of text_config. Rewrite the saved config in the old layout.
TOP_LEVEL_ROPE_THETA = {"instructblip-vicuna-theta"}


def top_level_rope_theta(d):
    path = os.path.join(d, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    text = cfg["text_config"]
    text["rope_theta"] = text.pop("rope_parameters")["rope_theta"]
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)


def randomise(model, gen):
    """Every parameter random: norms around 1, the rest N(0, 0.15) (query tokens wider)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1 + 0.1 * noise)
            elif "query_tokens" in name:
                p.copy_(0.5 * noise)
            else:
                p.copy_(0.15 * noise)


def merged_inputs(model, pixel_values, input_ids, qformer_ids=None, qformer_mask=None):
    """What Blip2/InstructBlip's generate feeds the LM: inputs_embeds with the placeholders overwritten."""
    if qformer_ids is None:
        feats = model.get_image_features(pixel_values, return_dict=True)
    else:
        feats = model.get_image_features(pixel_values, qformer_input_ids=qformer_ids,
                                         qformer_attention_mask=qformer_mask, return_dict=True)
    prefix = feats.pooler_output
    embeds = model.get_input_embeddings()(input_ids)
    if model.config.image_token_index is None:
        return feats, torch.cat([prefix, embeds], dim=1)  # transformers 4 / LAVIS: prepend
    mask = (input_ids == model.config.image_token_index).unsqueeze(-1)
    return feats, embeds.masked_scatter(mask, prefix)


def run_case(name):
    cls, cfg_cls, kw = CASES[name]
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    torch.manual_seed(0)
    model = cls(cfg_cls(**kw)).eval()
    randomise(model, gen)
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d)
    if name in UNTIED_LM_HEAD:
        untie_lm_head(d, gen)
    if name in TOP_LEVEL_ROPE_THETA:
        top_level_rope_theta(d)
    model = cls.from_pretrained(d).eval()  # expected values come from the checkpoint as loaded
    cfg = model.config
    B, Q = 2, cfg.num_query_tokens
    pixel_values = torch.randn(B, 3, IMG, IMG, generator=gen)
    t, meta = {"pixel_values": pixel_values}, {}

    with torch.no_grad():
        if cls is Blip2ForImageTextRetrieval:
            ids = torch.tensor([[3, 7, 8, 9, 4, 0], [3, 11, 12, 13, 14, 4]])
            mask = (torch.arange(6)[None] < torch.tensor([[5], [6]])).long()
            t.update(input_ids=ids, attention_mask=mask)
            t["image_embeds"] = model.vision_model(pixel_values).last_hidden_state
            itm = model(pixel_values=pixel_values, input_ids=ids, attention_mask=mask, use_image_text_matching_head=True)
            itc = model(pixel_values=pixel_values, input_ids=ids, attention_mask=mask, use_image_text_matching_head=False)
            t["itm_logits"] = itm.logits_per_image  # (B, 2)
            t["itc_logits"] = itc.logits_per_image  # (B images, B texts): max over queries of cosine
            t["itc_image_embeds"] = itc.image_embeds  # (B, Q, E)
            t["itc_text_embeds"] = itc.text_embeds  # (B, E)
            save(d, t, meta)
            return

        instruct = cls is InstructBlipForConditionalGeneration
        qids = qmask = None
        if instruct:
            qids = torch.tensor([[3, 21, 22, 23, 4], [3, 31, 32, 4, 0]])
            qmask = (qids != 0).long()
            t.update(qformer_input_ids=qids, qformer_attention_mask=qmask)
        img = [cfg.image_token_index] * Q if cfg.image_token_index is not None else []
        encdec = cfg.text_config.is_encoder_decoder
        if encdec:
            # T5 prompt: [img x Q, text..., </s>], right-padded like the T5 tokenizer.
            text = [[5, 6, 7, 1], [8, 9, 1, 0]]
        else:
            # decoder-only prompt: [img x Q, pad..., bos, text...], left-padded for generation.
            bos, pad = cfg.text_config.bos_token_id, cfg.text_config.pad_token_id
            text = [[bos, 5, 6, 7], [pad, bos, 8, 9]]
        text_ids = torch.tensor(text)
        text_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]] if encdec else [[1, 1, 1, 1], [0, 1, 1, 1]])
        ids = torch.cat([torch.tensor([img] * B, dtype=torch.long), text_ids], 1)
        mask = torch.cat([torch.ones(B, len(img), dtype=torch.long), text_mask], 1)
        t.update(text_input_ids=text_ids, text_attention_mask=text_mask, input_ids=ids, attention_mask=mask)

        feats, embeds = merged_inputs(model, pixel_values, ids, qids, qmask)
        t["image_embeds"] = feats.vision_outputs.last_hidden_state if hasattr(feats, "vision_outputs") and feats.vision_outputs is not None else feats.last_hidden_state
        t["qformer_output"] = feats.qformer_outputs.last_hidden_state
        t["projected"] = feats.pooler_output
        full_mask = mask if img else torch.cat([torch.ones(B, Q, dtype=torch.long), mask], 1)
        gen_kw = dict(max_new_tokens=6, do_sample=False)
        lm = model.language_model

        if cfg.image_token_index is not None:
            extra = dict(qformer_input_ids=qids, qformer_attention_mask=qmask) if instruct else {}
            greedy = model.generate(pixel_values=pixel_values, input_ids=ids, attention_mask=mask, **extra, **gen_kw)
            beam = model.generate(pixel_values=pixel_values, input_ids=ids, attention_mask=mask, num_beams=3, **extra, **gen_kw)
        else:
            # transformers 5 cannot run checkpoints without placeholders: drive the LM with the prepended
            # inputs_embeds, as transformers 4 did.
            g_kw = dict(inputs_embeds=embeds, attention_mask=full_mask, **gen_kw)
            if not encdec:
                g_kw["input_ids"] = torch.cat([torch.zeros(B, Q, dtype=torch.long), ids], 1)
            greedy = lm.generate(**g_kw)
            beam = lm.generate(num_beams=3, **g_kw)
            if not encdec:
                greedy, beam = greedy[:, Q:], beam[:, Q:]
        meta["greedy"] = greedy.tolist()
        meta["beam3"] = beam.tolist()

        if encdec:
            enc = lm.get_encoder()(inputs_embeds=embeds, attention_mask=full_mask).last_hidden_state
            t["encoder_hidden"] = enc
            dec_ids = greedy  # starts with decoder_start_token_id
            out = lm(encoder_outputs=(enc,), attention_mask=full_mask, decoder_input_ids=dec_ids)
            t["decoder_input_ids"] = dec_ids
            t["logits"] = out.logits  # (B, T, V) for every decoder position
        else:
            # Teacher-forced logits over prompt + greedy continuation: every cached step must match a row.
            seq = greedy[:, ids.shape[1]:]
            cont_mask = torch.ones_like(seq)
            all_ids = torch.cat([ids, seq], 1)
            all_mask = torch.cat([mask, cont_mask], 1)
            _, all_embeds = merged_inputs(model, pixel_values, all_ids, qids, qmask)
            all_mask_full = all_mask if img else torch.cat([torch.ones(B, Q, dtype=torch.long), all_mask], 1)
            pos = (all_mask_full.cumsum(-1) - 1).masked_fill(all_mask_full == 0, 0)
            out = lm(inputs_embeds=all_embeds, attention_mask=all_mask_full, position_ids=pos)
            t["continuation_ids"] = seq
            t["logits"] = out.logits  # (B, Q + S + new, V)
            t["position_ids"] = pos
    save(d, t, meta)


def save(d, tensors, meta):
    if os.path.basename(d) in COMMITTED:
        strip_vision(d)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(d, "expected.safetensors"))
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(meta, f)
    print(d, sorted(tensors))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    for name in sys.argv[1:] or CASES:
        run_case(name)
