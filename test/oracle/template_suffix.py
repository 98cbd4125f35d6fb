"""transformers 5.12.1 for tokenizers whose tokenizer.json post-processor template puts special tokens after
the sequence (runtime/tokenizers/hf.ts, test/unit/runtime/templateSuffix.test.ts): each variant is a fixture
tokenizer (test/fixtures/tokenizers/NAME) with its post_processor's "single" template replaced, loaded back
with AutoTokenizer.from_pretrained; the ids of tokenizer(text) are recorded. The test rebuilds the same
variants from the recorded templates.

    cd /work/main && ../shared/oracle/py test/oracle/template_suffix.py
writes test/fixtures/tokenizers/template-suffix.json.
"""

import json
import shutil
import tempfile
from pathlib import Path

import transformers
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent.parent
TOK = ROOT / "test" / "fixtures" / "tokenizers"
TEXTS = ["a red tile", "Hello world", ""]


def special(name):
    return {"SpecialToken": {"id": name, "type_id": 0}}


SEQ = {"Sequence": {"id": "A", "type_id": 0}}
# (variant, fixture, single template): a special token at the end, with and without one in front
VARIANTS = [
    ("llama-bos-eos", "llama", [special("<s>"), SEQ, special("</s>")]),
    ("llama-eos", "llama", [SEQ, special("</s>")]),
    ("opt-eos-eos", "opt", [special("</s>"), SEQ, special("</s>")]),
]


def build(base: str, single: list, out: Path) -> None:
    shutil.copytree(TOK / base, out)
    tj = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    pp = tj["post_processor"]
    assert pp["type"] == "TemplateProcessing", pp["type"]
    pp["single"] = single
    names = {item["SpecialToken"]["id"] for item in single if "SpecialToken" in item}
    by_content = {t["content"]: t["id"] for t in tj["added_tokens"]}
    pp["special_tokens"] = {n: {"id": n, "ids": [by_content[n]], "tokens": [n]} for n in sorted(names)}
    (out / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")


def main() -> None:
    out = {
        "_about": f"Produced by test/oracle/template_suffix.py with transformers {transformers.__version__}: "
        "each variant is test/fixtures/tokenizers/<base> with its tokenizer.json post_processor's single template "
        "replaced by <single> (special_tokens: those it names, with their added_tokens ids), loaded with "
        "AutoTokenizer.from_pretrained; ids[i] is tokenizer(texts[i]).input_ids.",
        "texts": TEXTS,
        "variants": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, base, single in VARIANTS:
            d = Path(tmp) / name
            build(base, single, d)
            tok = AutoTokenizer.from_pretrained(str(d))
            out["variants"].append({"name": name, "base": base, "class": type(tok).__name__, "single": single, "ids": [tok(t)["input_ids"] for t in TEXTS]})
    path = TOK / "template-suffix.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps([(v["name"], v["class"], v["ids"]) for v in out["variants"]]))


if __name__ == "__main__":
    main()
