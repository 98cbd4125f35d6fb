"""Full-size random-weight BLIP-2 / InstructBLIP checkpoints in the published layouts, for compile
benchmarks of the pinned graphs (graphs/pinned/*.blip). Never committed: they go to .bench/.

    ../shared/oracle/py test/oracle/make_fullsize_blip2.py blip2-opt-2.7b [--dtype float32|float16]
        [--out DIR] [--sparse] [--layers N] [--device numpy|cpu|cuda]

The config is what transformers 5.12.1 writes for the published sizes (Salesforce/<name> on the
hub); the tensors are the model's own state_dict names and shapes, taken from a model built on the
meta device (no memory), minus the tied copies transformers does not save. Each tensor is drawn
(N(0, 0.02), norms 1) and streamed into safetensors shards of at most 5 GB with a
model.safetensors.index.json, like the hub's, so that this script never holds more than one tensor.
With --sparse the tensors are zeros in sparse files (instant, no disk): a layout check for the
largest models, not a benchmark of reading real data.

--device cuda (or cpu) draws the tensors with torch on that device (seconds for OPT-2.7b on a GPU,
where numpy's generator, the default, takes minutes on one core; other values, same distribution): what
bench/gpu/run.sh uses on the GPU machine. --layers N keeps every width of the layout but gives each
stack (vision, Q-Former, LLM) N layers: a small checkpoint of the same shapes for dry runs (compile
it with the unpinned graph; the pinned one refuses the depth).
"""

import argparse
import json
import os
import struct
import time

import numpy as np
import torch
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
)

VISION = dict(hidden_size=1408, intermediate_size=6144, num_hidden_layers=39, num_attention_heads=16,
              image_size=224, patch_size=14, layer_norm_eps=1e-6, qkv_bias=True)
QFORMER = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
               cross_attention_frequency=2, encoder_hidden_size=1408, vocab_size=30522, max_position_embeddings=512)


def opt(hidden, ffn):
    return dict(model_type="opt", hidden_size=hidden, ffn_dim=ffn, num_hidden_layers=32, num_attention_heads=32,
                vocab_size=50272, max_position_embeddings=2048, word_embed_proj_dim=hidden, do_layer_norm_before=True,
                activation_function="relu", bos_token_id=2, eos_token_id=50118, pad_token_id=1)


def flan_t5(d_model, d_ff, heads):
    return dict(model_type="t5", d_model=d_model, d_kv=64, d_ff=d_ff, num_layers=24, num_decoder_layers=24,
                num_heads=heads, vocab_size=32128, relative_attention_num_buckets=32, relative_attention_max_distance=128,
                feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, tie_word_embeddings=False,
                bos_token_id=1, eos_token_id=1, pad_token_id=0, decoder_start_token_id=0)


def vicuna(hidden, inter, layers, heads):
    return dict(model_type="llama", hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=heads, vocab_size=32001, max_position_embeddings=2048,
                rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)


# name: (model class, config class, config kwargs)
PUBLISHED = {
    "blip2-opt-2.7b": (Blip2ForConditionalGeneration, Blip2Config, dict(text_config=opt(2560, 10240), image_token_index=50265)),
    "blip2-opt-6.7b": (Blip2ForConditionalGeneration, Blip2Config, dict(text_config=opt(4096, 16384), image_token_index=50265)),
    "blip2-flan-t5-xl": (Blip2ForConditionalGeneration, Blip2Config, dict(text_config=flan_t5(2048, 5120, 32), image_token_index=32100)),
    "blip2-flan-t5-xxl": (Blip2ForConditionalGeneration, Blip2Config, dict(text_config=flan_t5(4096, 10240, 64), image_token_index=32100)),
    "instructblip-vicuna-7b": (InstructBlipForConditionalGeneration, InstructBlipConfig,
                               dict(text_config=vicuna(4096, 11008, 32, 32), image_token_index=32000)),
    "instructblip-vicuna-13b": (InstructBlipForConditionalGeneration, InstructBlipConfig,
                                dict(text_config=vicuna(5120, 13824, 40, 40), image_token_index=32000)),
    "instructblip-flan-t5-xl": (InstructBlipForConditionalGeneration, InstructBlipConfig,
                                dict(text_config=flan_t5(2048, 5120, 32), image_token_index=32100)),
    "instructblip-flan-t5-xxl": (InstructBlipForConditionalGeneration, InstructBlipConfig,
                                 dict(text_config=flan_t5(4096, 10240, 64), image_token_index=32100)),
    # Benchmark layouts (npm run bench): the published vision encoder and Q-Former with a small LLM.
    # OPT-350m: post-norm, 512-wide token embeddings with project_in/out.
    "blip2-opt-350m-layout": (Blip2ForConditionalGeneration, Blip2Config,
                              dict(text_config=dict(opt(1024, 4096), num_hidden_layers=24, num_attention_heads=16,
                                                    word_embed_proj_dim=512, do_layer_norm_before=False, eos_token_id=2),
                                   image_token_index=50265)),
    # A small LLaMA: 16 layers of 1024, 16 heads of 64.
    "instructblip-llama-small-layout": (InstructBlipForConditionalGeneration, InstructBlipConfig,
                                        dict(text_config=vicuna(1024, 2816, 16, 16), image_token_index=32000)),
}

# Tied copies transformers does not write (OPT's head is its token embeddings; T5's stacks share `shared`).
TIED = ("language_model.lm_head.weight",)
T5_TIED = ("language_model.encoder.embed_tokens.weight", "language_model.decoder.embed_tokens.weight")
SHARD = 5 * 1024**3
DTYPES = {"float32": (np.float32, "F32"), "float16": (np.float16, "F16")}


def tensors(name, layers=None):
    cls, cfg_cls, kw = PUBLISHED[name]
    qformer = dict(QFORMER, vocab_size=30523) if cls is InstructBlipForConditionalGeneration else QFORMER
    vision = VISION
    if layers:
        vision, qformer = dict(vision, num_hidden_layers=layers), dict(qformer, num_hidden_layers=layers)
        text = dict(kw["text_config"])
        for k in ("num_hidden_layers", "num_layers", "num_decoder_layers"):
            if k in text:
                text[k] = layers
        kw = dict(kw, text_config=text)
    cfg = cfg_cls(vision_config=vision, qformer_config=qformer, num_query_tokens=32, **kw)
    with torch.device("meta"):
        model = cls(cfg)
    t5 = kw["text_config"]["model_type"] == "t5"
    skip = T5_TIED if t5 else TIED if kw["text_config"]["model_type"] == "opt" else ()
    return cfg, [(k, tuple(v.shape)) for k, v in model.state_dict().items() if k not in skip]


def write(name, out, dtype, sparse=False, layers=None, device="numpy"):
    cfg, specs = tensors(name, layers)
    os.makedirs(out, exist_ok=True)
    cfg.save_pretrained(out)
    np_dtype, st_dtype = DTYPES[dtype]
    size = np.dtype(np_dtype).itemsize
    shards, cur, used = [], [], 0
    for key, shape in specs:
        n = int(np.prod(shape)) * size
        if cur and used + n > SHARD:
            shards.append(cur)
            cur, used = [], 0
        cur.append((key, shape, n))
        used += n
    shards.append(cur)
    rng = np.random.default_rng(0)
    gen = torch.Generator(device=device).manual_seed(0) if device != "numpy" else None
    t_dtype = {"float32": torch.float32, "float16": torch.float16}[dtype]

    def draw(shape):
        if gen is None:
            return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np_dtype, copy=False)
        return torch.randn(shape, generator=gen, device=device, dtype=torch.float32).mul_(0.02).to(t_dtype).cpu().numpy()

    weight_map, total, t0 = {}, 0, time.time()
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for key, shape, n in shard:
            header[key] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [off, off + n]}
            off += n
            weight_map[key] = fname
        hjson = json.dumps(header, separators=(",", ":")).encode()
        hjson += b" " * (-len(hjson) % 8)
        with open(os.path.join(out, fname), "wb") as f:
            f.write(struct.pack("<Q", len(hjson)))
            f.write(hjson)
            if sparse:
                # Structure only: the data is a hole in the file (reads as zeros, takes no disk).
                f.truncate(8 + len(hjson) + off)
                total += off
                shard = []
            for key, shape, n in shard:
                norm = key.endswith(("norm.weight", "layernorm.weight", "LayerNorm.weight", "layer_norm.weight",
                                     "layer_norm1.weight", "layer_norm2.weight", "post_layernorm.weight"))
                a = np.ones(shape, np_dtype) if norm else draw(shape)
                a.tofile(f)
                total += n
        print(f"{fname}: {len(shard)} tensors, {off / 1e9:.2f} GB ({time.time() - t0:.0f} s)", flush=True)
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    params = sum(int(np.prod(s)) for _, s in specs)
    depth = f" ({layers} layers per stack)" if layers else ""
    print(f"{name}{depth}: {len(specs)} tensors, {params / 1e9:.3f} B parameters, {total / 1e9:.2f} GB {dtype} in {out} "
          f"({time.time() - t0:.0f} s, drawn on {device})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("name", choices=sorted(PUBLISHED))
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    ap.add_argument("--out", help="default .bench/<name>")
    ap.add_argument("--sparse", action="store_true", help="zeros in sparse files: checks the layout without random data")
    ap.add_argument("--layers", type=int, help="N layers in every stack, the layout's widths kept (dry runs)")
    ap.add_argument("--device", default="numpy", help="numpy (default), or a torch device to draw on (cuda: fast)")
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    write(a.name, a.out or os.path.join(".bench", a.name), a.dtype, a.sparse, a.layers, a.device)
