"""Helpers shared by the BLIP-2 and InstructBLIP generators (vision + Q-Former + OPT / T5 / LLaMA)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image

from common import IMAGES_DIR, record_generation, GENERATIONS


def load_images(names):
    out = []
    for n in names:
        im = Image.open(IMAGES_DIR / n)
        im.load()
        out.append(im)
    return out


@torch.no_grad()
def zero_vision_key_bias(model) -> None:
    """transformers builds the vision attention's qkv.bias as cat(q_bias, zeros, v_bias): real checkpoints
    have a zero key bias. Keep that structure after randomisation."""
    for name, mod in model.named_modules():
        if name.startswith("vision_model") and name.endswith("self_attn.qkv") and mod.bias is not None:
            d = mod.bias.shape[0] // 3
            mod.bias[d : 2 * d] = 0


@torch.no_grad()
def untie_t5_lm_head(lm, seed: int) -> None:
    """Flan-T5 keeps a separate lm_head (tie_word_embeddings false). transformers 5 ties it in memory when
    building from a config, so give it its own random matrix; save_pretrained then stores it."""
    g = torch.Generator().manual_seed(seed)
    w = lm.shared.weight
    std = 1.0 / (w.shape[1] ** 0.5)
    lm.lm_head.weight = torch.nn.Parameter(std * torch.randn(w.shape, generator=g))
    assert lm.lm_head.weight.data_ptr() != lm.shared.weight.data_ptr()


def patch_flan_t5_config(config_path: Path, key: str = "text_config") -> None:
    """Write the LM config the way Flan-T5 checkpoints state it (`tie_word_embeddings: false`, no
    `scale_decoder_outputs`): transformers 5 itself saves `tie_word_embeddings: true` plus
    `scale_decoder_outputs: false` (it forces tying in memory). Loading either form gives the same model."""
    cfg = json.loads(config_path.read_text())
    tc = cfg[key]
    tc["tie_word_embeddings"] = False
    tc.pop("scale_decoder_outputs", None)
    config_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


@torch.no_grad()
def boost_eos(lm_head: torch.nn.Linear, eos_id: int, run_greedy, max_new_tokens: int = 12) -> float:
    """Make EOS occur mid-sequence in greedy decoding, for LMs whose head has no bias: add beta * u to the
    EOS row of the LM head, u chosen so that the mean LM-head input x_bar has x_bar . u = 1 (the EOS logit
    rises by about beta). beta grows in steps of 0.1 until some row of run_greedy() (returns the new tokens,
    (B, T)) stops with EOS after 2..max_new_tokens-1 tokens. Returns beta (recorded in expected.json)."""
    captured = []
    hook = lm_head.register_forward_hook(lambda m, inp, out: captured.append(inp[0].reshape(-1, inp[0].shape[-1])))
    run_greedy()
    hook.remove()
    mu = torch.cat(captured).mean(0)
    u = mu / (mu @ mu)
    base = lm_head.weight[eos_id].clone()
    for step in range(0, 301):
        beta = 0.1 * step
        lm_head.weight[eos_id] = base + beta * u
        for row in run_greedy().tolist():
            if eos_id in row and 2 <= row.index(eos_id) + 1 <= max_new_tokens - 1:
                return round(beta, 4)
    raise RuntimeError("no EOS boost found")


def generations(model, inputs, prompt_length, tok, tensors, prefix, which=None) -> list:
    out = []
    for gname, kwargs in GENERATIONS:
        if which is not None and gname not in which:
            continue
        gin = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in inputs.items()}
        out.append(record_generation(model, gin, kwargs, prompt_length, tok, gname, tensors, prefix))
    return out


def gen_config_dict(gc) -> dict:
    d = gc.to_diff_dict()
    d.pop("transformers_version", None)
    return d
