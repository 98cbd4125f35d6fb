"""The peer in every benchmark: HuggingFace transformers' PyTorch `generate` on the same checkpoint,
image, prompt and settings as blip-graph, timed the same way.

    python3 bench/torch_generate.py --ckpt DIR --image IMG [--prompt P] [--device cpu|cuda]
        [--dtype float32|float16] [--threads N] [--batch B] [--max-new-tokens N] [--repetition-penalty P]
        [--repeat R] [--warmup W]

Prints one JSON object: end-to-end latency (image file bytes to tokens: decoding the image and the
processor, timed on their own, plus `generate`; means of R runs after W warm-ups, default 1), image-encode time
(vision encoder + Q-Former + projection where the family has them), prefill (generate with one new
token, minus image encode), decode tokens/s ((t(N) - t(1)) / (N - 1) per token), peak RSS, and the
generated ids (so the caller can check both sides produced the same tokens).

Greedy, and every setting that changes greedy scores is passed to generate explicitly (the same ones
bench/decoding.ts gives blip-graph), so a generation_config.json in the checkpoint cannot make the
two sides decode differently.
"""
import argparse
import io
import json
import os
import re
import resource
import sys
import time

import torch
from PIL import Image
import transformers


def load(ckpt, dtype, device):
    cfg = transformers.AutoConfig.from_pretrained(ckpt)
    kind = cfg.model_type
    cls = {
        "blip": transformers.BlipForConditionalGeneration,
        "blip-2": transformers.Blip2ForConditionalGeneration,
        "instructblip": transformers.InstructBlipForConditionalGeneration,
    }[kind]
    model = cls.from_pretrained(ckpt, dtype=dtype).to(device).eval()
    processor = transformers.AutoProcessor.from_pretrained(ckpt)
    return kind, model, processor


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def proc_memory():
    """bench/procMemory.ts's fields: AnonHugePages (smaps_rollup), RssAnon / RssFile (status), MB."""
    def kb(path, name):
        try:
            with open(path) as f:
                m = re.search(rf"^{name}:\s+(\d+) kB", f.read(), re.M)
        except OSError:
            m = None
        return int(m.group(1)) / 1024 if m else None
    return {"anon_huge_pages_mb": kb("/proc/self/smaps_rollup", "AnonHugePages"),
            "rss_anon_mb": kb("/proc/self/status", "RssAnon"), "rss_file_mb": kb("/proc/self/status", "RssFile")}


def kernel_cost(before, after):
    """Minor page faults and system CPU seconds between two getrusage readings (every thread of the process)."""
    return after.ru_minflt - before.ru_minflt, after.ru_stime - before.ru_stime


def timed(fn, device, repeat, warmup=1):
    """Mean seconds of `repeat` calls after `warmup`, the last output, and each call's kernel cost."""
    for _ in range(warmup):
        fn()
    sync(device)
    times, costs = [], []
    out = None
    for _ in range(repeat):
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        costs.append(kernel_cost(r0, resource.getrusage(resource.RUSAGE_SELF)))
    return sum(times) / len(times), out, costs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--prompt", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("--repetition-penalty", type=float, default=1.0)
    ap.add_argument("--num-beams", type=int, default=1, help="beam search (early_stopping False, length_penalty 1)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls before each measurement (0 for the slowest layouts)")
    ap.add_argument("--rounds-stdin", action="store_true",
                    help="after a warm-up, one timed preprocess + generate per 'go' line on stdin, a JSON line each "
                         "(bench/run.ts's paired rounds against a resident blip-graph)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    dtype = getattr(torch, a.dtype)
    kind, model, processor = load(a.ckpt, dtype, a.device)
    with open(a.image, "rb") as f:
        image_bytes = f.read()

    def preprocess():
        # What blip-graph's generate does before its image encode: decode the file's bytes, then
        # the checkpoint's processor (resize, normalise, tokenize), on the model's device and dtype.
        # Each row decodes its own copy, as a batch of distinct files would (blip-graph's rows are
        # distinct inputs with the same bytes).
        images = [Image.open(io.BytesIO(image_bytes)).convert("RGB") for _ in range(a.batch)]
        kwargs = {"images": images}
        if a.prompt is not None:
            kwargs["text"] = [a.prompt] * a.batch
        inputs = processor(**kwargs, return_tensors="pt").to(a.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        return inputs

    inputs = preprocess()

    def encode():
        with torch.inference_mode():
            v = model.vision_model(pixel_values=inputs["pixel_values"])[0]
            if kind == "blip-2":
                q = model.query_tokens.expand(v.shape[0], -1, -1)
                h = model.qformer(query_embeds=q, encoder_hidden_states=v)[0]
                return model.language_projection(h.to(model.language_projection.weight.dtype))
            if kind == "instructblip":
                q = model.query_tokens.expand(v.shape[0], -1, -1)
                mask = torch.cat([torch.ones(q.shape[:-1], dtype=torch.long, device=q.device), inputs["qformer_attention_mask"]], dim=1)
                h = model.qformer(input_ids=inputs["qformer_input_ids"], attention_mask=mask, query_embeds=q,
                                  encoder_hidden_states=v)[0]
                return model.language_projection(h[:, : q.shape[1]].to(model.language_projection.weight.dtype))
            return v

    def gen(n):
        def run():
            with torch.inference_mode():
                # beam search: transformers' defaults stated (given with one beam they only warn)
                beam = dict(early_stopping=False, length_penalty=1.0) if a.num_beams > 1 else {}
                return model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=a.num_beams,
                                      repetition_penalty=a.repetition_penalty, no_repeat_ngram_size=0, **beam)
        return run

    if a.rounds_stdin:
        generate = gen(a.max_new_tokens)

        def one_call():
            inputs.update(preprocess())  # the generate closure reads `inputs`
            return generate()

        return rounds(one_call, a.device, a.warmup)

    t_pre, _, pre_costs = timed(preprocess, a.device, a.repeat, a.warmup)
    t_encode, _, _ = timed(encode, a.device, a.repeat, a.warmup)
    t_one, _, _ = timed(gen(1), a.device, a.repeat, a.warmup)
    t_full, out, gen_costs = timed(gen(a.max_new_tokens), a.device, a.repeat, a.warmup)
    # an end-to-end call's kernel cost: its preprocess and its generate (timed apart here)
    memory = {**proc_memory(),
              "minor_faults_per_call": sum(c[0] for c in pre_costs + gen_costs) / a.repeat,
              "system_s_per_call": sum(c[1] for c in pre_costs + gen_costs) / a.repeat}
    decode_per_token = (t_full - t_one) / max(1, a.max_new_tokens - 1)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "peer": f"transformers {transformers.__version__} / torch {torch.__version__}",
        "device": a.device if a.device == "cpu" else torch.cuda.get_device_name(0),
        "dtype": a.dtype,
        "threads": a.threads,
        "batch": a.batch,
        "max_new_tokens": a.max_new_tokens,
        "repetition_penalty": a.repetition_penalty,
        "num_beams": a.num_beams,
        # image bytes to tokens, as blip-graph's side is timed: preprocessing + generate
        "end_to_end_ms": (t_pre + t_full) * 1000,
        "preprocess_ms": t_pre * 1000,
        "generate_ms": t_full * 1000,
        "image_encode_ms": t_encode * 1000,
        "prefill_ms": max(0.0, (t_one - t_encode)) * 1000,
        "decode_tokens_per_s": a.batch / decode_per_token if decode_per_token > 0 else None,
        "peak_rss_mb": peak_rss_mb,
        # at the end of the timed calls, the model still loaded; with the malloc settings it ran under
        "memory": memory,
        "malloc_env": {k: os.environ.get(k, "") for k in ("GLIBC_TUNABLES", "THP_MEM_ALLOC_ENABLE")},
        "sequences": out.tolist(),
    }
    if a.device == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


def rounds(call, device, warmup):
    """Paired rounds: 'ready', then per 'go' line one call from image bytes to tokens, timed."""
    for _ in range(max(1, warmup)):
        call()
    sync(device)
    print(json.dumps({"ready": True}), flush=True)
    while sys.stdin.readline().strip() == "go":
        t0 = time.perf_counter()
        out = call()
        sync(device)
        print(json.dumps({"wall_ms": (time.perf_counter() - t0) * 1000, "sequences": out.tolist()}), flush=True)


if __name__ == "__main__":
    main()
