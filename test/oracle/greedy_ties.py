"""Greedy decoding when two tokens tie for the highest score: test/fixtures/generation/ties.json.

transformers' greedy step is torch.argmax over the processed scores, which returns the first
maximal index (in float32, and in float16, which generate() casts to float32 first). The scripted
model of generation_cases.py never ties (it adds v / 65536 to every logit), so this one returns
the same row every step, with ids 1 and 3 tied for the maximum: [0.5, 2.25, 1, 2.25, -1, 0] (exact
float32 values, also exact in float16). A repetition penalty breaks the tie once one of the two has
been generated and restores it once both have; min_new_tokens bans an EOS that is the first of
them. Cases: prompts, kwargs -> sequences (real generate(), use_cache False).

    cd /work/main && ../shared/oracle/py test/oracle/greedy_ties.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent.parent
OUT = ROOT / "test" / "fixtures" / "generation"
ROW = [0.5, 2.25, 1.0, 2.25, -1.0, 0.0]


class TiedConfig(PretrainedConfig):
    model_type = "tied_scores"

    def __init__(self, vocab_size=len(ROW), **kwargs):
        self.vocab_size = vocab_size
        super().__init__(**kwargs)


class TiedLM(PreTrainedModel, GenerationMixin):
    config_class = TiedConfig
    main_input_name = "input_ids"

    def __init__(self, config):
        super().__init__(config)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        b, s = input_ids.shape
        logits = torch.tensor(ROW, dtype=torch.float32).expand(b, s, len(ROW)).clone()
        return CausalLMOutput(logits=logits)


def run_case(name, prompts, eos, kwargs):
    model = TiedLM(TiedConfig()).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = None
    model.generation_config.bos_token_id = None
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor(prompts), attention_mask=torch.ones(len(prompts), len(prompts[0]), dtype=torch.long),
                             use_cache=False, do_sample=False, num_beams=1, eos_token_id=eos, pad_token_id=0, **kwargs)
    return {"name": name, "input_ids": prompts, "eos": eos, "kwargs": kwargs, "sequences": out.tolist()}


def main():
    x = torch.tensor(ROW)
    assert int(torch.argmax(x)) == 1 and int(torch.argmax(x.half())) == 1, "torch.argmax: the first maximal index"
    cases = [
        run_case("tie", [[5]], 4, dict(max_new_tokens=3)),
        run_case("tie_repetition_1.1", [[5]], 4, dict(max_new_tokens=3, repetition_penalty=1.1)),
        run_case("tie_repetition_1.1_b2", [[5, 2], [1, 3]], 4, dict(max_new_tokens=4, repetition_penalty=1.1)),
        run_case("tie_eos_first_min_new_2", [[5]], 1, dict(max_new_tokens=4, min_new_tokens=2)),
    ]
    data = {"transformers": transformers.__version__, "torch": torch.__version__, "row": ROW, "cases": cases}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ties.json").write_text(json.dumps(data, indent=1) + "\n")
    print("wrote", OUT / "ties.json", json.dumps(cases))


if __name__ == "__main__":
    main()
