"""Oracle for runtime/generation: transformers' real `generate` driving a scripted language model.

The model's next-token logits are a deterministic function of the token history (FNV-1a hash of the
ids, then a per-token integer mix), implemented identically in test/unit/runtime/scripted.ts. The
values are exact float32 numbers (multiples of 2^-16) and distinct within a row, so argmax / top-k
never meet ties. EOS tokens get a bonus on a third of the histories so rows finish at different
steps. Writes test/fixtures/generation/cases.json:

  cases:      prompts (left-padded), generate() kwargs, model settings -> sequences (+ beam scores)
  processors: HF logits processors / warpers applied to fixed score rows -> outputs (float32 bits)

    cd /work/main && ../shared/oracle/py test/oracle/generation_cases.py
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch
import transformers
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.generation.logits_process import (
    MinLengthLogitsProcessor,
    MinNewTokensLengthLogitsProcessor,
    MinPLogitsWarper,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)
from transformers.modeling_outputs import CausalLMOutput

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent.parent
OUT = ROOT / "test" / "fixtures" / "generation"
M32 = 0xFFFFFFFF


def scripted_logits(history: list[int], vocab: int, salt: int, eos: list[int], eos_bonus: float) -> list[float]:
    h = (2166136261 ^ salt) & M32
    for t in history:
        h = ((h ^ (t & M32)) * 16777619) & M32
    out = []
    for v in range(vocab):
        x = (h ^ ((v * 2654435761) & M32)) & M32
        x ^= x >> 16
        x = (x * 0x7FEB352D) & M32
        x ^= x >> 15
        x = (x * 0x846CA68B) & M32
        x ^= x >> 16
        out.append((x >> 22) / 64.0 - 8.0 + v / 65536.0)
    if eos_bonus and h % 3 == 0:
        for e in eos:
            out[e] += eos_bonus
    return out


class ScriptedConfig(PretrainedConfig):
    model_type = "scripted"

    def __init__(self, vocab_size=32, salt=0, eos_list=None, eos_bonus=0.0, **kwargs):
        self.vocab_size = vocab_size
        self.salt = salt
        self.eos_list = eos_list or []
        self.eos_bonus = eos_bonus
        super().__init__(**kwargs)


class ScriptedLM(PreTrainedModel, GenerationMixin):
    config_class = ScriptedConfig
    main_input_name = "input_ids"

    def __init__(self, config):
        super().__init__(config)
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        self.calls += 1
        b, s = input_ids.shape
        cfg = self.config
        logits = torch.zeros((b, s, cfg.vocab_size), dtype=torch.float32)
        for i in range(b):
            row = scripted_logits(input_ids[i].tolist(), cfg.vocab_size, cfg.salt, cfg.eos_list, cfg.eos_bonus)
            logits[i, -1] = torch.tensor(row, dtype=torch.float32)
        return CausalLMOutput(logits=logits)


def left_pad(prompts: list[list[int]], pad: int) -> tuple[list[list[int]], list[list[int]]]:
    n = max(len(p) for p in prompts)
    ids = [[pad] * (n - len(p)) + p for p in prompts]
    mask = [[0] * (n - len(p)) + [1] * len(p) for p in prompts]
    return ids, mask


def f32bits(x: float) -> str:
    if math.isinf(x):
        return "-inf" if x < 0 else "inf"
    return struct.pack("<f", x).hex()


def run_case(name, vocab, salt, eos, eos_bonus, pad, prompts, kwargs):
    cfg = ScriptedConfig(vocab_size=vocab, salt=salt, eos_list=eos, eos_bonus=eos_bonus)
    model = ScriptedLM(cfg).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = None
    model.generation_config.bos_token_id = None
    ids, mask = left_pad(prompts, pad if pad is not None else 0)
    gen_kwargs = dict(kwargs)
    gen_kwargs.setdefault("eos_token_id", eos if len(eos) != 1 else eos[0])
    if not eos:
        gen_kwargs["eos_token_id"] = None
    gen_kwargs["pad_token_id"] = pad
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            use_cache=False,
            return_dict_in_generate=True,
            output_scores=True,
            **gen_kwargs,
        )
    case = {
        "name": name,
        "vocab": vocab,
        "salt": salt,
        "eos": eos,
        "eos_bonus": eos_bonus,
        "pad": pad,
        "input_ids": ids,
        "attention_mask": mask,
        "kwargs": kwargs,
        "sequences": out.sequences.tolist(),
        "model_calls": model.calls,
    }
    if getattr(out, "sequences_scores", None) is not None:
        case["sequences_scores"] = [float(x) for x in out.sequences_scores]
    return case


def generation_cases() -> list[dict]:
    # ids < 8 (the smallest vocabulary below)
    P1 = [[5, 6, 2, 7]]
    P2 = [[5, 6, 2, 7], [1, 3]]
    P3 = [[1, 2, 3], [4, 5, 6, 7, 1], [7]]
    specs = []
    # greedy
    specs += [
        ("greedy_b1", 40, 1, [3], 2.0, 0, P1, dict(max_new_tokens=12)),
        ("greedy_b2_padded", 40, 2, [3], 6.0, 0, P2, dict(max_new_tokens=12)),
        ("greedy_b3", 40, 3, [3], 6.0, 1, P3, dict(max_new_tokens=15)),
        ("greedy_no_eos", 40, 4, [], 0.0, 0, P2, dict(max_new_tokens=9)),
        ("greedy_two_eos", 40, 5, [3, 17], 6.0, 0, P3, dict(max_new_tokens=14)),
        ("greedy_pad_none", 40, 6, [3], 6.0, None, P2, dict(max_new_tokens=12)),
        ("greedy_max_length", 40, 7, [3], 6.0, 0, P2, dict(max_length=11)),
        ("greedy_default_length", 40, 8, [3], 3.0, 0, P1, dict()),
        ("greedy_min_new", 40, 9, [3], 12.0, 0, P3, dict(max_new_tokens=12, min_new_tokens=5)),
        ("greedy_min_length", 40, 10, [3], 12.0, 0, P3, dict(max_new_tokens=12, min_length=8)),
        ("greedy_rep_up", 12, 11, [3], 6.0, 0, P3, dict(max_new_tokens=14, repetition_penalty=1.3)),
        ("greedy_rep_down", 12, 12, [3], 6.0, 0, P2, dict(max_new_tokens=14, repetition_penalty=0.7)),
        ("greedy_ngram2", 10, 13, [3], 0.0, 0, P3, dict(max_new_tokens=16, no_repeat_ngram_size=2)),
        ("greedy_ngram3", 8, 14, [3], 0.0, 0, P2, dict(max_new_tokens=18, no_repeat_ngram_size=3)),
        ("greedy_all_penalties", 12, 15, [3, 4], 6.0, 0, P3,
         dict(max_new_tokens=14, repetition_penalty=1.5, no_repeat_ngram_size=2, min_new_tokens=3)),
        ("greedy_eos_is_pad", 40, 16, [0], 6.0, 0, P2, dict(max_new_tokens=12)),
        ("greedy_ngram1", 30, 17, [3], 0.0, 0, P1, dict(max_new_tokens=12, no_repeat_ngram_size=1)),
    ]
    # beam search
    for nb in (2, 3, 4):
        for es in (False, True, "never"):
            for lp in (1.0, 0.0, -0.5, 2.0):
                specs.append((f"beam{nb}_es{es}_lp{lp}", 40, 100 + nb * 10 + len(specs), [3], 4.0, 0,
                              P2 if nb != 3 else P3, dict(max_new_tokens=10, num_beams=nb, early_stopping=es,
                                                          length_penalty=lp)))
    specs += [
        ("beam4_ret4", 40, 201, [3], 4.0, 0, P2, dict(max_new_tokens=10, num_beams=4, num_return_sequences=4)),
        ("beam3_ret2_es", 40, 202, [3], 4.0, 0, P3,
         dict(max_new_tokens=10, num_beams=3, num_return_sequences=2, early_stopping=True)),
        ("beam3_two_eos", 40, 203, [3, 5], 4.0, 0, P2, dict(max_new_tokens=10, num_beams=3)),
        ("beam3_no_eos", 40, 204, [], 0.0, 0, P2, dict(max_new_tokens=8, num_beams=3)),
        ("beam3_penalties", 14, 205, [3], 4.0, 0, P3,
         dict(max_new_tokens=12, num_beams=3, repetition_penalty=1.4, no_repeat_ngram_size=2, min_new_tokens=4)),
        ("beam2_pad_none", 40, 206, [3], 4.0, None, P2, dict(max_new_tokens=10, num_beams=2)),
        ("beam3_max_length", 40, 207, [3], 4.0, 0, P2, dict(max_length=12, num_beams=3)),
        ("beam4_strong_eos", 40, 208, [3], 9.0, 0, P3, dict(max_new_tokens=12, num_beams=4, length_penalty=1.0)),
        ("beam4_strong_eos_never", 40, 209, [3], 9.0, 0, P3,
         dict(max_new_tokens=12, num_beams=4, early_stopping="never", length_penalty=1.5)),
        ("beam4_strong_eos_true", 40, 210, [3], 9.0, 0, P3,
         dict(max_new_tokens=12, num_beams=4, early_stopping=True)),
        ("beam2_pad1", 40, 211, [3], 4.0, 1, P2, dict(max_new_tokens=10, num_beams=2)),
        ("beam3_ngram_small_vocab", 9, 212, [3], 2.0, 0, P2,
         dict(max_new_tokens=12, num_beams=3, no_repeat_ngram_size=3)),
        ("beam5_b3", 60, 213, [3, 7], 5.0, 0, P3, dict(max_new_tokens=9, num_beams=5, num_return_sequences=3)),
        ("beam3_default_length", 40, 214, [3], 1.0, 0, P1, dict(num_beams=3)),
    ]
    return [run_case(*s) for s in specs]


def processor_cases() -> list[dict]:
    g = torch.Generator().manual_seed(1234)
    rows = (torch.randn((4, 37), generator=g) * 3).to(torch.float32)
    # a row whose typical mass lands on the float32 limit: torch compares float32(0.9) < 0.9 as false
    rows[3, :2] = torch.tensor([0.0, math.log(1 / 9)])
    rows[3, 2:] = -math.inf
    rows[1, 5] = -math.inf
    rows[2, :] = rows[2, :].round()  # ties
    ids = torch.tensor([[1, 5, 5, 9, 36], [2, 2, 2, 2, 2], [0, 7, 8, 7, 8], [3, 4, 3, 4, 3]])
    procs = [
        ("temperature_0.7", TemperatureLogitsWarper(0.7)),
        ("temperature_1.3", TemperatureLogitsWarper(1.3)),
        ("top_k_5", TopKLogitsWarper(5)),
        ("top_k_5_keep8", TopKLogitsWarper(5, min_tokens_to_keep=8)),
        ("top_k_1", TopKLogitsWarper(1)),
        ("top_p_0.9", TopPLogitsWarper(0.9)),
        ("top_p_0.5", TopPLogitsWarper(0.5)),
        ("top_p_0.05_keep2", TopPLogitsWarper(0.05, min_tokens_to_keep=2)),
        ("min_p_0.1", MinPLogitsWarper(0.1)),
        ("min_p_0.5_keep3", MinPLogitsWarper(0.5, min_tokens_to_keep=3)),
        ("typical_0.8", TypicalLogitsWarper(0.8)),
        ("typical_0.9", TypicalLogitsWarper(0.9)),
        ("repetition_1.3", RepetitionPenaltyLogitsProcessor(1.3)),
        ("repetition_0.6", RepetitionPenaltyLogitsProcessor(0.6)),
        ("ngram_2", NoRepeatNGramLogitsProcessor(2)),
        ("ngram_3", NoRepeatNGramLogitsProcessor(3)),
        ("min_length_6", MinLengthLogitsProcessor(6, [4, 9])),
        ("min_length_5", MinLengthLogitsProcessor(5, [4])),
        ("min_new_3_of_3", MinNewTokensLengthLogitsProcessor(3, 3, [4])),
        ("min_new_2_of_3", MinNewTokensLengthLogitsProcessor(3, 2, [4])),
    ]
    out = []
    for name, p in procs:
        res = p(ids.clone(), rows.clone())
        out.append({"name": name, "out": [[f32bits(float(v)) for v in r] for r in res]})
    log_softmax = torch.nn.functional.log_softmax(rows, dim=-1)
    return {
        "scores": [[f32bits(float(v)) for v in r] for r in rows],
        "input_ids": ids.tolist(),
        "processors": out,
        "log_softmax": [[f32bits(float(v)) for v in r] for r in log_softmax],
    }


def streamer_cases() -> list[dict]:
    """transformers' TextStreamer fed one token at a time (the tokenizers of test/fixtures/tokenizers)."""
    from transformers import AutoTokenizer, TextStreamer

    out = []
    texts = ["a photo of a cat sitting on a red couch", "two dogs\nplaying in the park", "日本語のテキスト 東京 猫",
             "emoji 🙂 🐱 and café", "dog\n cat"]
    # id runs that change text already released: a 4-byte character's bytes made invalid by a later
    # byte (Python counts the printed length in code points, not UTF-16 units)
    id_runs = {"llama": [[510, 243, 163, 131, 131, 2, 165, 557]]}
    for name in ("opt", "bert", "llama", "t5"):
        tok = AutoTokenizer.from_pretrained(str(ROOT / "test" / "fixtures" / "tokenizers" / name))
        runs = [tok(text, add_special_tokens=False)["input_ids"] for text in texts] + id_runs.get(name, [])
        for ids in runs:
            for skip in (False, True):
                pieces = []

                class Capture(TextStreamer):
                    def on_finalized_text(self, text, stream_end=False):
                        pieces.append([text, stream_end])

                st = Capture(tok, skip_special_tokens=skip)
                for t in ids:
                    st.put(torch.tensor([t]))
                st.end()
                out.append({"tokenizer": name, "ids": ids, "skip_special_tokens": skip, "pieces": pieces})
    return out


def charsmap_cases() -> list[dict]:
    """T5 (SentencePiece precompiled charsmap) on characters the shared tokenizer cases do not reach:
    blocks of Latin-1, general punctuation (zero-width, joiners, directional marks), letterlike
    symbols, enclosed numbers, CJK symbols, fullwidth forms, combining marks, ligatures."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(ROOT / "test" / "fixtures" / "tokenizers" / "t5"))
    ranges = [(0x20, 0x7F), (0xA0, 0x250), (0x2000, 0x2070), (0x2100, 0x2200), (0x2460, 0x24FF), (0x3000, 0x3040),
              (0xFF00, 0xFFEF), (0x1F300, 0x1F320), (0x300, 0x370), (0xFB00, 0xFB10), (0x3300, 0x3320),
              (0x1D400, 0x1D420)]
    strs = []
    for a, b in ranges:
        chars = [chr(c) for c in range(a, b)]
        for i in range(0, len(chars), 16):
            strs.append("x" + "".join(chars[i:i + 16]) + " y")
    strs += ["a\u3000b", "ＡＢＣ　ｄｅｆ", "ﬁne ﬂow", "①②③", "㍿", "ｶﾀｶﾅ", "e\u0301", "Å", "\u00adsoft", "a\u200bb",
             "x\ufeffy", "～", "a～b"]
    return [{"text": t, "ids": tok(t)["input_ids"]} for t in strs]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    data = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "cases": generation_cases(),
        "processors": processor_cases(),
        "streamer": streamer_cases(),
        "t5_charsmap": charsmap_cases(),
    }
    (OUT / "cases.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print("wrote", OUT / "cases.json", len(data["cases"]), "cases")


if __name__ == "__main__":
    main()
