"""Shared helpers for the oracle fixture generators.

Everything here must be deterministic: fixed seeds, one torch thread, sorted JSON keys.
Run through the reference environment (transformers 5.12.1, torch CPU):

    cd /work/main && ../shared/oracle/py test/oracle/make_fixtures.py
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

ORACLE_DIR = Path(__file__).resolve().parent
REPO_ROOT = ORACLE_DIR.parent.parent
FIXTURES = REPO_ROOT / "test" / "fixtures"
TOKENIZERS_DIR = FIXTURES / "tokenizers"
IMAGES_DIR = FIXTURES / "images"

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


# --------------------------------------------------------------------------------------------
# Fixed training corpus for the tiny tokenizers (committed here so tokenizers are reproducible).
# --------------------------------------------------------------------------------------------

CORPUS = [
    "a photo of a cat sitting on a red couch",
    "two dogs playing with a ball in the park",
    "a man riding a bicycle down a city street",
    "a woman holding an umbrella in the rain",
    "a plate of food with broccoli and rice",
    "a group of people standing around a table",
    "a bird perched on top of a tree branch",
    "a train traveling down the tracks near a station",
    "a bowl of fruit on a wooden kitchen table",
    "an airplane flying over a snowy mountain range",
    "a small boat floating on a calm blue lake",
    "a child eating a slice of pizza at a restaurant",
    "a black and white photo of an old building",
    "a close up of a clock on the side of a tower",
    "a giraffe standing next to a tall green tree",
    "a herd of zebras grazing in an open field",
    "a laptop computer sitting on top of a desk",
    "a bathroom with a white sink and a mirror",
    "a person skiing down a steep snowy slope",
    "a surfer riding a large wave in the ocean",
    "question: what is the man holding? answer: a kite",
    "question: how many cats are in the picture? answer: 2",
    "question: what color is the bus? answer: yellow",
    "question: where is the dog sitting? answer: on the grass",
    "question: is it raining? answer: no",
    "Question: What is in the image? Answer: A STOP sign.",
    "Describe the image in detail. The picture shows three people.",
    "What is unusual about this image? Nothing, it's a normal street.",
    "Write a short caption: sunny beach, blue sky, white sand!",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 42 100 2023 3.14 1,000",
    "Punctuation: (a) [b] {c} <d> \"e\" 'f' - _ + = / \\ | ~ ` @ # $ % ^ & * ; : ? !",
    "It's John's dog; they're here, we'll go, I'd say you've won.",
    "HELLO WORLD, THIS IS UPPER CASE TEXT",
    "Café naïve résumé façade jalapeño über straße",
    "日本語のテキスト 東京 猫 犬",
    "emoji 🙂 🐱 👍🏽 🚲",
    "tabs\tand\nnewlines  and   multiple    spaces",
    "the quick brown fox jumps over the lazy dog",
    "picture image photo caption describe answer question",
    "there is a vase of flowers on the window sill",
    "a red stop sign on the corner of a street",
    "a street sign hanging from the side of a pole",
    "a kitchen with stainless steel appliances and wooden cabinets",
    "a horse pulling a cart down a dirt road",
    "an elephant walking through the tall grass",
    "a teddy bear sitting on a bed with pillows",
    "the sun is setting over the water",
    "a yellow school bus parked in a lot",
    "several boats docked at a marina",
    "a man and a woman cutting a wedding cake",
]


def corpus_lines(repeat: int = 3) -> list[str]:
    return list(CORPUS) * repeat


# --------------------------------------------------------------------------------------------
# Seeding and parameter randomisation
# --------------------------------------------------------------------------------------------


def seed_all(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


_NORM_WORDS = ("norm", "layernorm", "rmsnorm")


def _is_norm(module: torch.nn.Module) -> bool:
    return "norm" in type(module).__name__.lower()


@torch.no_grad()
def randomize_parameters(model: torch.nn.Module, seed: int) -> dict:
    """Give *every* parameter a non-trivial random value (transformers' own init leaves some BLIP-2
    vision weights ~1e-10 and LayerNorms at exactly 1/0, which would hide bugs).

    - norm weights: 1 + N(0, 0.1); norm biases N(0, 0.05)
    - Linear / Conv weights: N(0, clamp(1/sqrt(fan_in), 0.02, 0.2)); their biases N(0, 0.05)
    - Embedding tables: N(0, 0.1)
    - other tensors (query tokens, class / position embeddings): N(0, 0.1)
    - scalars (e.g. BLIP-2 ITC temperature): value * (1 + N(0, 0.1))

    Tied parameters are visited once (named_parameters() de-duplicates).
    Returns a small summary for logging.
    """
    g = torch.Generator()
    g.manual_seed(seed)
    owner = {}
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            owner.setdefault(id(p), (mname, module, pname))
    summary = {"count": 0, "numel": 0}
    for name, p in model.named_parameters():
        mname, module, pname = owner[id(p)]
        shape = p.shape
        if p.numel() == 1:
            base = float(p.reshape(-1)[0])
            noise = torch.randn(shape, generator=g, dtype=torch.float32)
            val = base * (1 + 0.1 * noise) if base != 0 else 0.05 * noise
        elif _is_norm(module):
            noise = torch.randn(shape, generator=g, dtype=torch.float32)
            val = 1.0 + 0.1 * noise if pname == "weight" else 0.05 * noise
        elif isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
            if pname == "weight":
                fan_in = int(np.prod(shape[1:]))
                std = min(0.2, max(0.02, 1.0 / math.sqrt(fan_in)))
                val = std * torch.randn(shape, generator=g, dtype=torch.float32)
            else:
                val = 0.05 * torch.randn(shape, generator=g, dtype=torch.float32)
        elif isinstance(module, torch.nn.Embedding):
            val = 0.1 * torch.randn(shape, generator=g, dtype=torch.float32)
        elif p.dim() == 1:
            # stray vectors (e.g. biases held by custom modules)
            val = 0.05 * torch.randn(shape, generator=g, dtype=torch.float32)
        else:
            val = 0.1 * torch.randn(shape, generator=g, dtype=torch.float32)
        p.copy_(val.to(p.dtype))
        summary["count"] += 1
        summary["numel"] += p.numel()
    return summary


# --------------------------------------------------------------------------------------------
# Writing outputs
# --------------------------------------------------------------------------------------------


def reset_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def to_jsonable(x):
    if isinstance(x, torch.Tensor):
        return to_jsonable(x.detach().cpu().tolist())
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    return x


def _dumps(x, indent: int = 0) -> str:
    """JSON with one key per line but lists of scalars (token ids, shapes) kept on one line."""
    pad = " " * indent
    if isinstance(x, dict):
        if not x:
            return "{}"
        items = [f'{pad} {json.dumps(k, ensure_ascii=False)}: {_dumps(v, indent + 1)}' for k, v in sorted(x.items())]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(x, list):
        if all(not isinstance(v, (dict, list)) for v in x):
            return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in x) + "]"
        if all(isinstance(v, list) and all(not isinstance(w, (dict, list)) for w in v) for v in x):
            return "[\n" + ",\n".join(pad + " " + _dumps(v) for v in x) + "\n" + pad + "]"
        return "[\n" + ",\n".join(pad + " " + _dumps(v, indent + 1) for v in x) + "\n" + pad + "]"
    return json.dumps(x, ensure_ascii=False, allow_nan=False)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _dumps(to_jsonable(obj))
    json.loads(text)  # sanity
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def write_tensors(path: Path, tensors: dict, metadata: dict | None = None) -> None:
    """Write float32 / int64 arrays to a safetensors file (keys sorted, contiguous)."""
    from safetensors.torch import save_file

    out = {}
    for k in sorted(tensors):
        t = tensors[k]
        if isinstance(t, np.ndarray):
            t = torch.from_numpy(t)
        t = t.detach().cpu().contiguous()
        if t.is_floating_point():
            t = t.to(torch.float32)
        out[k] = t.clone()
    save_file(out, str(path), metadata=metadata)


def tensor_index(tensors: dict) -> dict:
    """Shape / dtype summary of the arrays written to expected.safetensors (stored in expected.json)."""
    idx = {}
    for k in sorted(tensors):
        t = tensors[k]
        if isinstance(t, np.ndarray):
            t = torch.from_numpy(t)
        dtype = "float32" if t.is_floating_point() else str(t.dtype).replace("torch.", "")
        idx[k] = {"shape": list(t.shape), "dtype": dtype}
    return idx


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def rel(path: Path) -> str:
    return os.path.relpath(path, REPO_ROOT)


# --------------------------------------------------------------------------------------------
# Checkpoints and generation records
# --------------------------------------------------------------------------------------------


def strip_half_dtypes(config) -> None:
    """Make sure no (sub-)config asks for float16 / bfloat16: everything is float32."""
    for c in [config] + [getattr(config, k, None) for k in ("vision_config", "qformer_config", "text_config")]:
        if c is None:
            continue
        for attr in ("dtype", "torch_dtype"):
            if getattr(c, attr, None) not in (None, "float32", torch.float32):
                setattr(c, attr, "float32")


def save_model(model, ckpt: Path) -> None:
    model.save_pretrained(str(ckpt))


def topk_margins(scores: torch.Tensor) -> torch.Tensor:
    """(..., V) -> top1 - top2 of each row."""
    top = torch.topk(scores.float(), 2, dim=-1).values
    return top[..., 0] - top[..., 1]


def record_generation(model, inputs: dict, kwargs: dict, prompt_length: int, tokenizer, name: str,
                      tensors: dict, prefix: str) -> dict:
    """Run model.generate(**inputs, **kwargs) and describe the result.

    sequences: the full generate() output; new_tokens: sequences[:, prompt_length:].
    For num_beams == 1 also: margins[b][t] = top1 - top2 of the processed scores greedy chose from at step t
    (a token comparison is unreliable where it is < 1e-4), and for the run named "greedy" of the cases in
    STEP_LOGITS_CASES `<prefix>/greedy/step_logits` (B, T, V): the raw model logits of every step. For beam search: sequences_scores.
    """
    out = model.generate(
        **inputs, **kwargs, return_dict_in_generate=True, output_scores=True, output_logits=True
    )
    seqs = out.sequences
    rec = {
        "name": name,
        "kwargs": dict(kwargs),
        "prompt_length": prompt_length,
        "sequences": seqs.tolist(),
        "new_tokens": seqs[:, prompt_length:].tolist(),
        "text": tokenizer.batch_decode(seqs[:, prompt_length:], skip_special_tokens=True),
    }
    if kwargs.get("num_beams", 1) == 1:
        scores = torch.stack(out.scores, 1)  # (B, T, V) processed
        rec["margins"] = [[float(f"{m:.6g}") for m in row] for row in topk_margins(scores).tolist()]
        rec["min_margin"] = float(min(min(r) for r in rec["margins"]))
        if name == "greedy" and prefix in STEP_LOGITS_CASES:  # (bounded, for fixture size)
            tensors[f"{prefix}/{name}/step_logits"] = torch.stack(out.logits, 1)
    else:
        rec["sequences_scores"] = out.sequences_scores.tolist()
    return rec


# cases whose greedy run also stores the raw logits of every step
STEP_LOGITS_CASES = ("prompt", "vqa", "question", "instruction")

def store_lm_logits(tensors: dict, case: dict, cname: str, logits: torch.Tensor, n_prefix: int) -> None:
    """Decoder-only LMs: `<case>/lm_logits` (B, 1, V) at the last prompt position for every row, and for the
    main prompted case also `<case>/lm_logits_all_row0` (S - n_prefix, V): row 0 at every position after the
    n_prefix image positions."""
    tensors[f"{cname}/lm_logits"] = logits[:, -1:, :]
    note = "lm_logits (B, 1, V): language-model logits at the last prompt position"
    if cname in STEP_LOGITS_CASES:
        tensors[f"{cname}/lm_logits_all_row0"] = logits[0, n_prefix:, :]
        note += f"; lm_logits_all_row0 (S - {n_prefix}, V): row 0 at every position after the {n_prefix} image positions"
    case["lm_logits_note"] = note


GEN_GREEDY = {"max_new_tokens": 12, "num_beams": 1, "do_sample": False}
GEN_BEAM3 = {"max_new_tokens": 12, "num_beams": 3, "do_sample": False}
GEN_GREEDY_PENALTIES = {
    "max_new_tokens": 12,
    "num_beams": 1,
    "do_sample": False,
    "repetition_penalty": 1.5,
    "no_repeat_ngram_size": 2,
    "min_new_tokens": 4,
}
GEN_BEAM3_PENALTIES = {
    "max_new_tokens": 12,
    "num_beams": 3,
    "do_sample": False,
    "repetition_penalty": 1.3,
    "no_repeat_ngram_size": 2,
    "length_penalty": 0.6,
    "min_new_tokens": 5,
}
GENERATIONS = [
    ("greedy", GEN_GREEDY),
    ("beam3", GEN_BEAM3),
    ("greedy_penalties", GEN_GREEDY_PENALTIES),
    ("beam3_penalties", GEN_BEAM3_PENALTIES),
]
