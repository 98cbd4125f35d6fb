"""The peer in every benchmark: HuggingFace transformers' PyTorch `generate` on the same checkpoint,
image, prompt and settings as blip-graph, timed the same way.

    python3 bench/torch_generate.py --ckpt DIR --image IMG [--prompt P] [--device cpu|cuda]
        [--dtype float32|float16] [--threads N] [--batch B] [--max-new-tokens N] [--repetition-penalty P]
        [--repeat R] [--warmup W]

Prints one JSON object: end-to-end latency (image file bytes to tokens: decoding the image and the
processor, then `generate`; means of R calls after W warm-ups, default 1), and its phases timed inside
each call (PhaseClock), split where blip-graph's timingsMs split its own: image encode = from the start
of `generate` to the end of the vision model (BLIP) or of the language projection after the Q-Former
(BLIP-2, InstructBLIP), plus, for BLIP, the text decoder's cross-attention K/V projections of the
image embeddings (transformers runs them inside its first decoder forward; blip-graph's encode.onnx
computes them); prefill = from there to the first new token; decode = the first new token to the
last, decode tokens/s = batch x (N - 1) / decode. Also peak RSS, the memory at the end and the
kernel's share of a call (bench/procMemory.ts's fields), and the generated ids (so the caller can
check both sides produced the same tokens).

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


def attn_implementations(model, kind):
    """transformers' attention implementation of each sub-model as loaded: none is asked for, so each
    gets its class's default (5.12.1: BLIP eager throughout; BLIP-2 / InstructBLIP sdpa for the vision
    model and the language model, eager for the Q-Former)."""
    parts = ("vision_model", "text_decoder") if kind == "blip" else ("vision_model", "qformer", "language_model")
    return {p: getattr(getattr(model, p).config, "_attn_implementation", None) for p in parts}


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


def peak_rss():
    """VmHWM (bench/procMemory.ts peakRssMb): getrusage's ru_maxrss carries the RSS of the process
    this one was forked from (bench/run.ts, with the bandwidth probe's 512 MB buffer)."""
    try:
        with open("/proc/self/status") as f:
            m = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M)
        if m:
            return int(m.group(1)) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def kernel_cost(before, after):
    """Minor page faults and system CPU seconds between two getrusage readings (every thread of the process)."""
    return after.ru_minflt - before.ru_minflt, after.ru_stime - before.ru_stime


class PhaseClock:
    """Marks inside one `generate` call, so that its phases come from the call itself (as blip-graph's
    timingsMs do) rather than from separately timed calls: a forward hook marks the end of the image
    encode, hooks around BLIP's cross-attention K/V projections time them, and a stopping criterion,
    which `generate` calls once per step (greedy and beam search alike), marks each new token."""

    def __init__(self, model, kind, device):
        self.device = device
        self.reset()
        (model.vision_model if kind == "blip" else model.language_projection).register_forward_hook(self._encoded)
        if kind == "blip":
            for name, mod in model.text_decoder.named_modules():
                if name.endswith(("crossattention.self.key", "crossattention.self.value")):
                    mod.register_forward_pre_hook(self._kv_start)
                    mod.register_forward_hook(self._kv_end)
        clock = self

        class Tick(transformers.StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                clock.ticks.append(clock.now())
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        self.criteria = transformers.StoppingCriteriaList([Tick()])

    def now(self):
        sync(self.device)
        return time.perf_counter()

    def reset(self):
        self.encoded, self.ticks, self.kv_s, self.kv_calls, self.kv_calls_late, self._kv_t = None, [], 0.0, 0, 0, None

    def _encoded(self, *_):
        self.encoded = self.now()

    def _kv_start(self, *_):
        self._kv_t = self.now()

    def _kv_end(self, *_):
        if self.ticks:  # after the first token: transformers reuses the cached cross K/V, so none expected
            self.kv_calls_late += 1
            return
        self.kv_s += self.now() - self._kv_t
        self.kv_calls += 1

    def phases(self, t0, t1, t2, tokens):
        """One call's phases in ms: t0 start, t1 preprocessing done (generate starts), t2 generate returned."""
        if self.encoded is None or len(self.ticks) != tokens:
            sys.exit(f"torch_generate.py: the phase marks of a call are incomplete ({len(self.ticks)} token marks for "
                     f"{tokens} new tokens, image encode {'marked' if self.encoded else 'not marked'})")
        ms = lambda s: s * 1000
        return {"end_to_end_ms": ms(t2 - t0), "preprocess_ms": ms(t1 - t0), "generate_ms": ms(t2 - t1),
                "image_encode_ms": ms(self.encoded - t1 + self.kv_s), "cross_kv_ms": ms(self.kv_s),
                "cross_kv_calls": self.kv_calls, "cross_kv_calls_after_prefill": self.kv_calls_late,
                "prefill_ms": ms(self.ticks[0] - self.encoded - self.kv_s), "decode_ms": ms(self.ticks[-1] - self.ticks[0])}


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
    ap.add_argument("--repeat", type=int, default=3, help="timed calls")
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls before the timed ones (0 for the slowest layouts)")
    ap.add_argument("--rounds-stdin", action="store_true",
                    help="after a warm-up, one timed preprocess + generate per 'go' line on stdin, a JSON line each "
                         "(bench/run.ts's paired rounds against a resident blip-graph)")
    a = ap.parse_args()
    if a.max_new_tokens < 2 or a.repeat < 1:
        ap.error("--max-new-tokens must be at least 2 (the decode is the tokens after the first) and --repeat at least 1")

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

    clock = PhaseClock(model, kind, a.device)
    n = a.max_new_tokens

    def call():
        """One end-to-end call, image file bytes to tokens: the new sequences, and its phases and kernel cost."""
        clock.reset()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = clock.now()
        inputs = preprocess()
        t1 = clock.now()
        with torch.inference_mode():
            # beam search: transformers' defaults stated (given with one beam they only warn)
            beam = dict(early_stopping=False, length_penalty=1.0) if a.num_beams > 1 else {}
            out = model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=a.num_beams,
                                 repetition_penalty=a.repetition_penalty, no_repeat_ngram_size=0,
                                 stopping_criteria=clock.criteria, **beam)
        t2 = clock.now()
        faults, system_s = kernel_cost(r0, resource.getrusage(resource.RUSAGE_SELF))
        return out, {**clock.phases(t0, t1, t2, n), "minor_faults": faults, "system_s": system_s}

    if a.rounds_stdin:
        return rounds(call, a.warmup)

    for _ in range(a.warmup):
        call()
    runs = []
    for _ in range(a.repeat):
        out, run = call()
        runs.append(run)
    mean = lambda k: sum(r[k] for r in runs) / len(runs)
    # at the end of the timed calls, the model still loaded
    memory = {**proc_memory(), "minor_faults_per_call": mean("minor_faults"), "system_s_per_call": mean("system_s")}
    peak_rss_mb = peak_rss()
    result = {
        "peer": f"transformers {transformers.__version__} / torch {torch.__version__}",
        "device": a.device if a.device == "cpu" else torch.cuda.get_device_name(0),
        "dtype": a.dtype,
        "threads": a.threads,
        "batch": a.batch,
        "max_new_tokens": a.max_new_tokens,
        "repetition_penalty": a.repetition_penalty,
        "num_beams": a.num_beams,
        "attn_implementation": attn_implementations(model, kind),
        # image bytes to tokens, as blip-graph's side is timed: preprocessing + generate; phases from
        # inside each call (PhaseClock), means over the timed calls
        "end_to_end_ms": mean("end_to_end_ms"),
        "end_to_end_min_ms": min(r["end_to_end_ms"] for r in runs),
        "preprocess_ms": mean("preprocess_ms"),
        "generate_ms": mean("generate_ms"),
        "image_encode_ms": mean("image_encode_ms"),
        "cross_kv_ms": mean("cross_kv_ms"),
        "prefill_ms": mean("prefill_ms"),
        "decode_ms": mean("decode_ms"),
        "decode_tokens_per_s": a.batch * (n - 1) * 1000 / mean("decode_ms"),
        "runs": runs,
        "peak_rss_mb": peak_rss_mb,
        # its weights as loaded, at the dtype it holds each (BLIP-2 keeps the Q-Former in float32 at
        # --dtype float16): the RSS / weights denominator of its row
        "weights_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "memory": memory,
        # the malloc settings it ran under
        "malloc_env": {k: os.environ.get(k, "") for k in ("GLIBC_TUNABLES", "THP_MEM_ALLOC_ENABLE")},
        "sequences": out.tolist(),
    }
    if a.device == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


def rounds(call, warmup):
    """Paired rounds: 'ready', then per 'go' line one call from image bytes to tokens, timed."""
    for _ in range(max(1, warmup)):
        call()
    print(json.dumps({"ready": True}), flush=True)
    while sys.stdin.readline().strip() == "go":
        out, run = call()
        print(json.dumps({"wall_ms": run["end_to_end_ms"], "phases": run, "sequences": out.tolist()}), flush=True)


if __name__ == "__main__":
    main()
