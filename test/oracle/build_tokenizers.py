"""Tiny tokenizers for the four text families, trained on common.CORPUS, saved as transformers 5 saves them.

(Named build_tokenizers.py, not tokenizers.py: a tokenizers.py next to the entry point would shadow the
`tokenizers` library on sys.path and break transformers.)

test/fixtures/tokenizers/
  bert/       BertTokenizer (WordPiece, lower case) + BLIP's "[DEC]" bos and "[ENC]" extra special token,
              exactly as BLIP's conversion script does it (add_special_tokens bos / additional_special_tokens).
  opt/        GPT2Tokenizer (byte-level BPE), OPT conventions: <s>=0 <pad>=1 </s>=2 <unk>=3,
              bos = eos = unk = "</s>", add_bos_token (BOS id 2 is prepended).
  t5/         T5Tokenizer (Unigram) converted by transformers from a sentencepiece unigram model trained with
              the nmt_nfkc normaliser (so tokenizer.json carries a Precompiled charsmap like the real T5 ones);
              <pad>=0 </s>=1 <unk>=2, 8 <extra_id_N> sentinels at the end; eos appended, no bos.
  llama/      LlamaTokenizer (BPE with byte fallback, Metaspace) converted by transformers from a sentencepiece
              BPE model (identity normalisation, byte_fallback, split_digits, like Llama's); tokenizer.model kept.
  llama-spm/  only tokenizer.model + tokenizer_config.json: the sentencepiece-only layout (transformers converts
              the .model itself when loading).
  t5-spm/     t5/'s spiece.model + a tokenizer_config.json as slow T5 saves wrote it (extra_ids, no token lists):
              transformers builds the Unigram tokenizer from the .model and appends the <extra_id_N> sentinels.
  bert-vocab/ bert/ without tokenizer.json: vocab.txt (ids in line order) + tokenizer_config.json, the layout
              of slow-tokenizer saves; transformers builds the WordPiece tokenizer from vocab.txt.
  opt-vocab/  opt/ without tokenizer.json: vocab.json + merges.txt + tokenizer_config.json; transformers builds
              the byte-level BPE from them (and, with no tokenizer.json post-processor, adds BOS only where
              tokenizer_config.json says add_bos_token).
  cases.json  transformers' ids / tokens / decoded strings for CASE_STRINGS with every tokenizer above.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import sentencepiece as spm
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers.models import BPE, Unigram
from transformers.convert_slow_tokenizer import SentencePieceExtractor
from transformers import AutoTokenizer, BertTokenizer, GPT2Tokenizer, LlamaTokenizer, T5Tokenizer

from common import TOKENIZERS_DIR, corpus_lines, reset_dir, seed_all, write_json

T5_EXTRA_IDS = 8

LONG = (
    "a very long caption that keeps going: "
    + " ".join(f"word{i} the cat and the dog {i * 7}" for i in range(20))
)

CASE_STRINGS = [
    "a photo of a cat",
    "Hello world!",
    "Question: What is in the image? Answer:",
    "question: how many dogs are there? answer:",
    "a picture of",
    "",
    " ",
    "   ",
    "  leading and trailing spaces  ",
    "multiple   spaces\tand\ttabs\nnew line\r\nwindows line",
    "UPPER CASE WORDS ARE HERE",
    "MiXeD cAsE wOrDs",
    "Café naïve résumé façade",
    "e\u0301 combining accent and \u00e9 precomposed",
    "日本語のテキスト 東京",
    "emoji 🙂🐱 👍🏽 🚲!",
    "unseen characters: ☃ ∑ Ω ж ﬁ ＡＢＣ ①",
    "numbers 12345 3.14159 1,000,000 2023",
    "punctuation!!! ??? ... --- (parens) [brackets] {braces} \"quotes\" 'single'",
    "don't can't it's they're",
    "hello\u200bzero\u00a0width and nbsp",
    "bell\x07 and other control \x01 chars",
    "[CLS] a [SEP] b [PAD] [MASK] [UNK]",
    "[DEC] decoder start and [ENC] encoder token",
    "<s> bos </s> eos <pad> pad <unk> unk",
    "<extra_id_0> sentinel <extra_id_7>",
    "<image> placeholder <image><image>",
    "literal ▁ metaspace and <0x41> byte token",
    "the the the the the the the the the the",
    LONG,
    # CJK beyond U+FFFF (BERT spaces them per character; U+2B820 is outside its ranges)
    "cjk ext a\U00020000b \U0002a700 \U0002b820 \U0002b920c \U0002f800",
    # white space where Rust and JavaScript disagree (U+0085, U+FEFF) and Python's strip (U+001F)
    "a  \ufeffb !  \x85\n4 side \x85 \x1f end",
    "\x85",
]

# decode cases given as token strings (used where every token exists): byte-fallback runs with a BOM
DECODE_TOKENS = [["<0xEF>", "<0xBB>", "<0xBF>", "\u2581a"], ["<0xEF>", "<0xBB>", "<0xBF>"]]

BATCH_STRINGS = ["a cat", "Question: what color is the bus? Answer:", ""]


# ------------------------------------------------------------------------------------------------
# builders
# ------------------------------------------------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what ByteLevel uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def train_bpe(word_counts: Counter, alphabet: list[str], num_merges: int, prefix: str = "") -> tuple[list, list]:
    """A small deterministic BPE trainer (the `tokenizers` trainers break ties by hash-map order, so their
    output changes from run to run). Ties: highest count, then the lexicographically smallest pair.
    `prefix` marks non-initial symbols (WordPiece's "##"). Returns (new tokens in merge order, merges)."""
    splits = {w: [w[0]] + [prefix + c for c in w[1:]] for w in word_counts}
    known = set(alphabet)
    new_tokens, merges = [], []
    for _ in range(num_merges):
        pairs: Counter = Counter()
        for w, cnt in word_counts.items():
            sym = splits[w]
            for a, b in zip(sym, sym[1:]):
                pairs[(a, b)] += cnt
        if not pairs:
            break
        (a, b), cnt = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if cnt < 2:
            break
        merged = a + (b[len(prefix):] if prefix and b.startswith(prefix) else b)
        merges.append((a, b))
        if merged not in known:
            known.add(merged)
            new_tokens.append(merged)
        for w in word_counts:
            sym = splits[w]
            i, out = 0, []
            while i < len(sym):
                if i + 1 < len(sym) and sym[i] == a and sym[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(sym[i])
                    i += 1
            splits[w] = out
    return new_tokens, merges


def build_bert(out: Path) -> None:
    # WordPiece vocabulary = specials + characters + "##"characters + BPE-style merged pieces (as the
    # WordPiece trainer does, but deterministic). Words as BERT's normaliser / pre-tokeniser see them.
    norm = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for line in corpus_lines(1):
        for w, _ in pre.pre_tokenize_str(norm.normalize_str(line)):
            counts[w] += 1
    chars = sorted({c for w in counts for c in w})
    alphabet = chars + ["##" + c for c in chars]
    pieces, _ = train_bpe(counts, alphabet, 400, prefix="##")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + alphabet + pieces
    vocab = {t: i for i, t in enumerate(tokens)}
    t = BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=512)
    # As BLIP's conversion script (convert_blip_original_pytorch_to_hf.py / BlipProcessor usage) does:
    t.add_special_tokens({"bos_token": "[DEC]"})
    t.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    reset_dir(out)
    t.save_pretrained(str(out))


def build_opt(out: Path) -> None:
    pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
    counts: Counter = Counter()
    for line in corpus_lines(1):
        for w, _ in pre.pre_tokenize_str(line):
            counts[w] += 1
    byte_chars = [c for _, c in sorted(bytes_to_unicode().items())]
    new_tokens, merges = train_bpe(counts, byte_chars, 350)
    tokens = ["<s>", "<pad>", "</s>", "<unk>"] + byte_chars + new_tokens
    vocab = {t: i for i, t in enumerate(tokens)}
    t = GPT2Tokenizer(
        vocab=vocab,
        merges=merges,
        errors="replace",
        bos_token="</s>",
        eos_token="</s>",
        unk_token="</s>",
        pad_token="<pad>",
        add_prefix_space=False,
        add_bos_token=True,
        model_max_length=1000000000000000019884624838656,
    )
    reset_dir(out)
    t.save_pretrained(str(out))


SPM_DIR = "/tmp/blip-oracle-spm"  # fixed: the trainer records its input path and model prefix in the .model


def _train_spm(name: str, **kw) -> str:
    shutil.rmtree(SPM_DIR, ignore_errors=True)
    os.makedirs(SPM_DIR)
    path = os.path.join(SPM_DIR, "corpus.txt")
    with open(path, "w", encoding="utf-8") as f:
        for line in corpus_lines(5):
            f.write(line.replace("\n", " ") + "\n")
    prefix = os.path.join(SPM_DIR, name)
    spm.SentencePieceTrainer.train(
        input=path,
        model_prefix=prefix,
        num_threads=1,
        minloglevel=2,
        shuffle_input_sentence=False,
        **kw,
    )
    return prefix + ".model"


def build_t5(out: Path) -> None:
    model_file = _train_spm(
        "spiece",
        model_type="unigram",
        vocab_size=300,
        character_coverage=0.9995,
        normalization_rule_name="nmt_nfkc",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
    )
    # transformers' own extraction (what T5Tokenizer.from_pretrained does with a spiece.model), minus the
    # control symbols it would list as extra special tokens; sentinels appended in T5's reversed order.
    kw = SentencePieceExtractor(model_file).extract(Unigram)
    vocab = [(p, float(s)) for p, s in kw["vocab"]]
    vocab += [(f"<extra_id_{i}>", 0.0) for i in range(T5_EXTRA_IDS - 1, -1, -1)]
    t = T5Tokenizer(
        vocab=vocab,
        extra_ids=T5_EXTRA_IDS,
        _spm_precompiled_charsmap=kw["_spm_precompiled_charsmap"],
        model_max_length=512,
    )
    reset_dir(out)
    t.save_pretrained(str(out))
    spm_out = out.parent / "t5-spm"
    reset_dir(spm_out)
    shutil.copy(model_file, spm_out / "spiece.model")
    write_json(spm_out / "tokenizer_config.json", {"tokenizer_class": "T5Tokenizer", "extra_ids": T5_EXTRA_IDS, "eos_token": "</s>",
                                                   "unk_token": "<unk>", "pad_token": "<pad>", "model_max_length": 512})


def _train_llama_spm() -> str:
    return _train_spm(
        "tokenizer",
        model_type="bpe",
        vocab_size=600,
        character_coverage=0.9995,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
    )


def build_llama(out: Path, out_spm: Path) -> None:
    model_file = _train_llama_spm()
    kw = SentencePieceExtractor(model_file).extract(BPE)
    t = LlamaTokenizer(
        vocab=kw["vocab"], merges=kw["merges"], legacy=False, add_bos_token=True, add_eos_token=False
    )
    reset_dir(out)
    t.save_pretrained(str(out))
    shutil.copy(model_file, out / "tokenizer.model")
    # sentencepiece-only layout: the .model and the config that names the class, no tokenizer.json
    reset_dir(out_spm)
    shutil.copy(model_file, out_spm / "tokenizer.model")
    # a transformers-4 style (hub) config: add_bos_token is stated here, because without tokenizer.json
    # there is no post-processor to carry it (transformers 5 drops it from the config it saves).
    cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": False,
        "model_max_length": 2048,
        "pad_token": None,
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
    }
    (out_spm / "tokenizer_config.json").write_text(
        json.dumps(cfg, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )


# ------------------------------------------------------------------------------------------------
# cases
# ------------------------------------------------------------------------------------------------


def tokenizer_cases(tok, strings=CASE_STRINGS) -> dict:
    cases = []
    for s in strings:
        with_sp = tok(s, add_special_tokens=True)["input_ids"]
        without_sp = tok(s, add_special_tokens=False)["input_ids"]
        cases.append(
            {
                "text": s,
                "ids": with_sp,
                "ids_no_special": without_sp,
                "tokens": tok.convert_ids_to_tokens(with_sp),
                "decoded": tok.decode(with_sp, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(with_sp, skip_special_tokens=True),
            }
        )
    batch = tok(BATCH_STRINGS, padding=True) if tok.pad_token is not None else None
    # decode of id sequences that do not come from encoding: a run of every id in order (chunks of 40)
    n = len(tok)
    decode_cases = []
    for start in range(0, n, 40):
        ids = list(range(start, min(n, start + 40)))
        decode_cases.append(
            {
                "ids": ids,
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            }
        )
    vocab = tok.get_vocab()
    for tokens in DECODE_TOKENS:
        if all(t in vocab for t in tokens):
            ids = [vocab[t] for t in tokens]
            decode_cases.append(
                {
                    "ids": ids,
                    "decoded": tok.decode(ids, skip_special_tokens=False),
                    "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
                }
            )
    return {
        "class": type(tok).__name__,
        "len": len(tok),
        "vocab_size": tok.vocab_size,
        "special": {
            k: {"token": getattr(tok, k), "id": getattr(tok, k + "_id")}
            for k in ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]
            if getattr(tok, k) is not None
        },
        "extra_special_tokens": list(tok.extra_special_tokens),
        "all_special_ids": list(tok.all_special_ids),
        "padding_side": tok.padding_side,
        "cases": cases,
        "batch": None
        if batch is None
        else {"texts": BATCH_STRINGS, "input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]},
        "decode_cases": decode_cases,
    }


def sentencepiece_reference(model_path: Path) -> list:
    """Raw sentencepiece encodings (no BOS) for comparison; informative only — transformers is the reference."""
    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    return [{"text": s, "ids": sp.encode(s)} for s in CASE_STRINGS]


NAMES = ["bert", "opt", "t5", "llama", "llama-spm", "bert-vocab", "opt-vocab", "t5-spm"]


def build_vocab_only(src: Path, out: Path) -> None:
    """src's tokenizer without tokenizer.json: vocab.txt (WordPiece) or vocab.json + merges.txt (BPE)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy(src / "tokenizer_config.json", out / "tokenizer_config.json")
    model = json.loads((src / "tokenizer.json").read_text())["model"]
    vocab = model["vocab"]
    if model["type"] == "WordPiece":
        ordered = sorted(vocab.items(), key=lambda kv: kv[1])
        assert [i for _, i in ordered] == list(range(len(ordered)))
        (out / "vocab.txt").write_text("".join(t + "\n" for t, _ in ordered), encoding="utf-8")
    else:
        (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
        (out / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")


def build_all() -> dict:
    seed_all(0)
    d = TOKENIZERS_DIR
    d.mkdir(parents=True, exist_ok=True)
    build_bert(d / "bert")
    build_opt(d / "opt")
    build_t5(d / "t5")
    build_llama(d / "llama", d / "llama-spm")
    build_vocab_only(d / "bert", d / "bert-vocab")
    build_vocab_only(d / "opt", d / "opt-vocab")
    out = {
        "_about": "Produced by test/oracle/build_tokenizers.py with transformers "
        + __import__("transformers").__version__
        + ": each tokenizer loaded back with AutoTokenizer.from_pretrained(<dir>) and run on the strings. "
        "ids include special tokens as tokenizer(text) adds them; ids_no_special uses add_special_tokens=False; "
        "decoded / decoded_skip_special are tokenizer.decode(ids, skip_special_tokens=False/True).",
    }
    for name in NAMES:
        tok = AutoTokenizer.from_pretrained(str(d / name))
        out[name] = tokenizer_cases(tok)
    out["llama"]["sentencepiece_reference"] = sentencepiece_reference(d / "llama" / "tokenizer.model")
    write_json(d / "cases.json", out)
    return out


def copy_tokenizer(name: str, dest: Path) -> None:
    """Copy a built tokenizer's files into a checkpoint directory."""
    src = TOKENIZERS_DIR / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        shutil.copy(f, dest / f.name)


if __name__ == "__main__":
    build_all()
