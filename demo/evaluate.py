"""Evaluate the demo model on held-out scenes with transformers' greedy `generate`.

    /work/shared/oracle/py demo/evaluate.py                      # demo/model -> demo/eval.json
    /work/shared/oracle/py demo/evaluate.py --heldout demo/heldout --examples demo/images

What is evaluated (recorded in eval.json, so the compiled ONNX model can be checked against it):

* scenes: scenes.scene(seed) for seed in [EVAL_SEED_START, EVAL_SEED_START + n) (training
  uses seeds below EVAL_SEED_START); each image goes through a PNG round trip (the files in
  --heldout when given) and the saved processor (96x96, no effective resize, CLIP mean/std);
* captions: no text prompt, i.e. input ids [<image>]*16 + [</s>]; greedy, max_new_tokens=24,
  stop at "\\n"; the prediction is the decoded new tokens, special tokens skipped, stripped;
* questions: three per scene (scenes.eval_questions: one colour, one size, one count question),
  prompt "Question: {q} Answer:", same generation settings; answer = decoded new tokens, stripped.

Metrics:
* caption exact match: prediction == ground-truth caption;
* caption token accuracy (greedy): over all reference tokens (caption + "\\n", no BOS), the share
  whose generated token at the same position equals it;
* caption token accuracy (teacher-forced): share of reference tokens that are the argmax of the
  logits given the image and the reference prefix;
* QA accuracy: answer == ground truth, overall and per question type.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import sys
import time
from collections import defaultdict

import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402

import transformers  # noqa: E402
from transformers import Blip2ForConditionalGeneration, Blip2Processor  # noqa: E402

MAX_NEW_TOKENS = 24


def png_roundtrip(img: Image.Image, path: str | None) -> Image.Image:
    if path:
        img.save(path)
        return Image.open(path).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def example_seeds(n: int = 6) -> list[int]:
    """The bundled examples: the first held-out scene of each layout kind, then a 2-group one."""
    want = [(1, "single"), (2, "horizontal"), (2, "vertical"), (3, "horizontal"), (3, "vertical"), (2, "any")]
    out: list[int] = []
    seed = scenes.EVAL_SEED_START
    for k, layout in want[:n]:
        while True:
            s = scenes.scene(seed)
            seed += 1
            if len(s.groups) == k and (layout == "any" or s.layout == layout):
                out.append(s.seed)
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="demo/model")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--start", type=int, default=scenes.EVAL_SEED_START)
    ap.add_argument("--out", default="demo/eval.json")
    ap.add_argument("--heldout", help="also write the held-out PNGs here (and evaluate from them)")
    ap.add_argument("--examples", help="write the bundled example PNGs and captions.json here")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    assert args.start >= scenes.EVAL_SEED_START, "held-out seeds must not overlap training seeds"

    torch.set_num_threads(args.threads)
    processor = Blip2Processor.from_pretrained(args.model)
    model = Blip2ForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32).eval()
    tok = processor.tokenizer
    nq = model.config.num_query_tokens
    eos = model.config.text_config.eos_token_id
    gen_kwargs = dict(max_new_tokens=MAX_NEW_TOKENS, do_sample=False, num_beams=1, eos_token_id=eos)

    def generate(img, text=None):
        inputs = processor(images=img, text=text, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, **gen_kwargs)
        prompt_len = inputs["input_ids"].shape[1] if text is not None else nq + 1
        new = out[0, prompt_len:].tolist()
        if eos in new:  # keep the terminator, drop anything after it (padding in batched runs)
            new = new[: new.index(eos) + 1]
        return new, tok.decode(new, skip_special_tokens=True).strip()

    if args.heldout:
        os.makedirs(args.heldout, exist_ok=True)

    t0 = time.time()
    items = []
    tot = defaultdict(int)
    for seed in range(args.start, args.start + args.n):
        s = scenes.scene(seed)
        fname = f"{seed}.png"
        img = png_roundtrip(s.render(), os.path.join(args.heldout, fname) if args.heldout else None)

        ids, pred = generate(img)
        ref = tok(s.caption + "\n", add_special_tokens=False)["input_ids"]
        same = sum(1 for i, r in enumerate(ref) if i < len(ids) and ids[i] == r)

        inputs = processor(images=img, text=s.caption + "\n", return_tensors="pt")
        with torch.no_grad():
            logits = model(**inputs).logits[0]
        # positions nq .. end-2 predict tokens nq+1 .. end-1 (the caption + "\n" after BOS)
        tf = logits[nq:-1].argmax(-1).tolist()
        tf_same = sum(int(a == b) for a, b in zip(tf, ref))
        assert len(tf) == len(ref)

        exact = pred == s.caption
        key = f"{len(s.groups)}_groups"
        tot["n"] += 1
        tot["exact"] += exact
        tot["ref_tokens"] += len(ref)
        tot["greedy_same"] += same
        tot["tf_same"] += tf_same
        tot[key + "_n"] += 1
        tot[key + "_exact"] += exact

        qas = []
        for q, a in scenes.eval_questions(s):
            qtype = q.split()[1] if q.startswith("what") else "count"
            qids, qpred = generate(img, scenes.prompt(q))
            ok = qpred == a
            tot["qa_n"] += 1
            tot["qa_ok"] += ok
            tot[f"qa_{qtype}_n"] += 1
            tot[f"qa_{qtype}_ok"] += ok
            qas.append({"question": q, "prompt": scenes.prompt(q), "answer": a, "predicted": qpred, "generated_ids": qids, "correct": ok})

        items.append({
            "seed": seed,
            "file": fname,
            "caption": s.caption,
            "predicted": pred,
            "generated_ids": ids,
            "reference_ids": ref,
            "exact": exact,
            "questions": qas,
        })
        if not exact:
            print(f"{seed}: want {s.caption!r}\n{' ' * len(str(seed))}  got  {pred!r}", flush=True)

    secs = time.time() - t0
    summary = {
        "scenes": tot["n"],
        "caption_exact_match": tot["exact"] / tot["n"],
        "caption_token_accuracy_greedy": tot["greedy_same"] / tot["ref_tokens"],
        "caption_token_accuracy_teacher_forced": tot["tf_same"] / tot["ref_tokens"],
        "caption_exact_match_by_groups": {
            k: tot[f"{k}_groups_exact"] / tot[f"{k}_groups_n"] for k in (1, 2, 3) if tot[f"{k}_groups_n"]
        },
        "scenes_by_groups": {k: tot[f"{k}_groups_n"] for k in (1, 2, 3)},
        "questions": tot["qa_n"],
        "qa_accuracy": tot["qa_ok"] / tot["qa_n"],
        "qa_accuracy_by_type": {t: tot[f"qa_{t}_ok"] / tot[f"qa_{t}_n"] for t in ("colour", "size", "count") if tot[f"qa_{t}_n"]},
    }
    with open(os.path.join(args.model, "model.safetensors"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    result = {
        "summary": summary,
        "setup": {
            "model": args.model,
            "model_safetensors_sha256": digest,
            "seeds": {"start": args.start, "count": args.n, "generator": "demo/scenes.py scene(seed)"},
            "images": "scene(seed).render(), 96x96 RGB, through a PNG round trip" + (f" (files in {args.heldout})" if args.heldout else ""),
            "preprocessing": "Blip2Processor from the model folder: no effective resize (96 -> 96), rescale 1/255, normalise with CLIP mean/std",
            "caption_prompt": None,
            "caption_input_ids": f"[<image>]*{nq} + [</s>] (generate builds them: image_token_index={model.config.image_token_index}, bos=2)",
            "question_prompt": "Question: {question} Answer:",
            "questions_per_scene": "scenes.eval_questions(scene): one colour, one size, one count question",
            "generation": {**gen_kwargs, "eos_text": "\\n"},
            "postprocess": "decode the new tokens with skip_special_tokens=True, then strip()",
            "generated_ids": "new tokens only (after the prompt), up to and including the terminator",
            "reference_ids": "tokenizer(caption + '\\n', add_special_tokens=False)",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "seconds": round(secs, 1),
        },
        "items": items,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps(summary, indent=1))

    if args.examples:
        os.makedirs(args.examples, exist_ok=True)
        rows = []
        for seed in example_seeds():
            s = scenes.scene(seed)
            fname = f"scene-{seed}.png"
            s.render().save(os.path.join(args.examples, fname))
            rows.append({
                "file": fname,
                "seed": seed,
                "caption": s.caption,
                "questions": [{"question": q, "prompt": scenes.prompt(q), "answer": a} for q, a in s.qa],
            })
        with open(os.path.join(args.examples, "captions.json"), "w") as f:
            json.dump(rows, f, indent=1)
            f.write("\n")
        print(f"wrote {len(rows)} examples to {args.examples}")


if __name__ == "__main__":
    main()
