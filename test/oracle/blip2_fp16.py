"""What transformers computes for a BLIP-2 fixture loaded in float16 (from_pretrained(dtype=float16)).

transformers keeps BLIP-2's Q-Former and query tokens in float32 in a float16 model
(`_keep_in_fp32_modules = ["query_tokens", "qformer"]`): the vision encoder runs in float16, its
features are cast up to float32 for the Q-Former, and the query outputs are cast back to float16
for the language projection. This records, on the fixture's own pixel values, the image features,
the Q-Former outputs and the projected prefix, all as float32 arrays, into
test/fixtures/<fixture>/fp16.safetensors; and the same from the model with *every* module in
float16 (`.half()`), the alternative that `--dtype fp16` must not follow, for comparison.

    cd /work/main && ../shared/oracle/py test/oracle/blip2_fp16.py blip2-opt-a

With a Flan-T5 language model (blip2-t5-a) transformers also keeps T5's `wo` (the feed-forward's
output projection, T5's `_keep_in_fp32_modules = ["wo"]`, gathered into the composite model's list)
in float32: its input is cast up, its output is float32, and the residual stream it is added to
becomes float32 from the first feed-forward on (float16 + float32 promotes); each RMS norm casts back
to float16 for the next attention / feed-forward. For the fixture's "question" case this records,
besides the Q-Former outputs above, the encoder's last hidden state and the decoder's logits
teacher-forced along the float32 model's greedy tokens (`t5/...`), from both models.

    cd /work/main && ../shared/oracle/py test/oracle/blip2_fp16.py blip2-t5-a

InstructBLIP keeps only its query tokens (`_keep_in_fp32_modules = ["query_tokens"]`): its Q-Former
is float16. With Flan-T5, T5's "wo" joins the list, and transformers finds the names anywhere in a
tensor's name (an unanchored regex search), so it also keeps `qformer.embeddings.word_embeddings` in
float32: the Q-Former's text embeddings (float32 words + float16 positions) are summed in float32 and
rounded to float16 once before the embedding LayerNorm. For instructblip-t5-a's "instruction" case
this records the Q-Former's query outputs and the projected soft prompt (`instructblip/...`), from
transformers' float16 model and from an all-float16 one; and the same from a checkpoint whose word
embeddings are shifted by +2^k and position embeddings by -2^k (`instructblip_shift/...`; their sums,
the model, unchanged in float32), where rounding the word embeddings to float16 loses more.

    cd /work/main && ../shared/oracle/py test/oracle/blip2_fp16.py instructblip-t5-a

BLIP-2 retrieval (Blip2ForImageTextRetrieval) keeps its Q-Former float32 but not the text embeddings
beside it (`embeddings.{word,position}_embeddings`): in its float16 model they are float16 tables
summed in float16, the query tokens are cast to float16 to join them (Blip2TextEmbeddings), and the
Q-Former casts the whole up to float32. For blip2-itm-a's retrieval pairs this records the ITM logits
and the ITC text embeddings (`itm/...`), from that model and from the same with float32 text embeddings
(`text_f32/...`, the alternative), and the same with the tables shifted as above.

    cd /work/main && ../shared/oracle/py test/oracle/blip2_fp16.py blip2-itm-a
"""

from __future__ import annotations

import json
import math
import sys

import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import Blip2ForConditionalGeneration, Blip2ForImageTextRetrieval, InstructBlipForConditionalGeneration

from common import FIXTURES, write_tensors



def features(model, pixel_values: torch.Tensor) -> dict:
    with torch.inference_mode():
        image = model.vision_model(pixel_values=pixel_values.to(model.vision_model.dtype))[0]
        queries = model.query_tokens.expand(image.shape[0], -1, -1)
        q = model.qformer(query_embeds=queries, encoder_hidden_states=image)[0]
        prefix = model.language_projection(q.to(image.dtype))
    return {"image_embeds": image.float(), "qformer_last_hidden_state": q.float(), "prefix_embeds": prefix.float()}


def t5_case(model, pixel_values: torch.Tensor, case: dict, steps: int) -> dict:
    """Encoder states and teacher-forced decoder logits (B, steps, V) of one fixture case."""
    greedy = next(g for g in case["generation"] if g["name"] == "greedy")
    dec = torch.tensor([[d[0]] + r[: steps - 1] for d, r in zip(case["decoder_input_ids"], greedy["new_tokens"])])
    with torch.inference_mode():
        out = model(
            pixel_values=pixel_values.to(model.vision_model.dtype),
            input_ids=torch.tensor(case["input_ids"]),
            attention_mask=torch.tensor(case["attention_mask"]),
            decoder_input_ids=dec,
        )
    lm = out.language_model_outputs
    # decoder_input_ids stored as float32 (exact for token ids) so that one reader serves the file
    return {"encoder_last_hidden_state": lm.encoder_last_hidden_state.float(), "decoder_logits": lm.logits.float(), "decoder_input_ids": dec.float()}


def instructblip_features(model, pixel_values: torch.Tensor, case: dict) -> dict:
    """The query outputs of the Q-Former (with the instruction) and the soft prompt, as the model computes them."""
    with torch.inference_mode():
        out = model.get_image_features(
            pixel_values=pixel_values.to(model.vision_model.dtype),
            qformer_input_ids=torch.tensor(case["qformer_input_ids"]),
            qformer_attention_mask=torch.tensor(case["qformer_attention_mask"]),
            return_dict=True,
        )
    q = out.qformer_outputs[0][:, : model.config.num_query_tokens]
    return {"qformer_last_hidden_state": q.float(), "prefix_embeds": out.pooler_output.float()}


# word + 2^k, position - 2^k: rounding the word embeddings to float16 then loses up to 2^(k-11).
SHIFT_LOG2 = 4


def shifted_checkpoint(fixture: Path, tmp: str, prefix: str) -> Path:
    """The fixture's checkpoint with `<prefix>.word_embeddings` + 2^SHIFT_LOG2 and `<prefix>.position_embeddings` - 2^SHIFT_LOG2 (float32 arithmetic, as the test's)."""
    shifted = Path(tmp)
    for f in (fixture / "checkpoint").iterdir():
        if f.is_file() and f.name != "model.safetensors":
            shutil.copy(f, shifted / f.name)
    sd = load_file(str(fixture / "checkpoint" / "model.safetensors"))
    c = 2.0**SHIFT_LOG2
    sd[f"{prefix}.word_embeddings.weight"] = sd[f"{prefix}.word_embeddings.weight"] + c
    sd[f"{prefix}.position_embeddings.weight"] = sd[f"{prefix}.position_embeddings.weight"] - c
    save_file(sd, str(shifted / "model.safetensors"), metadata={"format": "pt"})
    return shifted


def itm_features(model, pixel_values: torch.Tensor, rt: dict) -> dict:
    """ITM logits of pair p = (image p, text p) and the ITC text embeddings, as the model computes them."""
    ids, mask = torch.tensor(rt["input_ids"]), torch.tensor(rt["attention_mask"])
    with torch.inference_mode():
        itm = model(pixel_values=pixel_values.to(model.vision_model.dtype), input_ids=ids, attention_mask=mask, use_image_text_matching_head=True)
        itc = model(pixel_values=pixel_values.to(model.vision_model.dtype), input_ids=ids, attention_mask=mask, use_image_text_matching_head=False)
    return {"itm_logits": itm.logits_per_image.float(), "text_embeds": itc.text_embeds.float()}


def itm_main(fixture: Path) -> None:
    pixels = load_file(str(fixture / "expected.safetensors"))["pixel_values"]
    rt = json.loads((fixture / "expected.json").read_text())["retrieval"]
    out = {"pixel_values": pixels}

    def run(checkpoint: Path, tag: str) -> None:
        kept = Blip2ForImageTextRetrieval.from_pretrained(checkpoint, dtype=torch.float16)
        fp32 = sorted(k for k, p in kept.named_parameters() if p.dtype != torch.float16 and not k.startswith("qformer."))
        print("float32 in transformers' float16 model besides qformer.*:", fp32)
        assert kept.qformer.layernorm.weight.dtype == torch.float32, "transformers no longer keeps the Q-Former in float32"
        assert kept.embeddings.word_embeddings.weight.dtype == torch.float16, "transformers keeps BLIP-2 retrieval's text embeddings in float32"
        out.update({f"fp16/{tag}/{k}": v for k, v in itm_features(kept, pixels, rt).items()})
        # the alternative: the same model with float32 text embeddings (the query tokens then join them unrounded)
        text32 = Blip2ForImageTextRetrieval.from_pretrained(checkpoint, dtype=torch.float16)
        text32.embeddings.float().load_state_dict(Blip2ForImageTextRetrieval.from_pretrained(checkpoint, dtype=torch.float32).embeddings.state_dict())
        assert text32.embeddings.word_embeddings.weight.dtype == torch.float32
        out.update({f"text_f32/{tag}/{k}": v for k, v in itm_features(text32, pixels, rt).items()})

    run(fixture / "checkpoint", "itm")
    with tempfile.TemporaryDirectory() as tmp:
        run(shifted_checkpoint(fixture, tmp, "embeddings"), "itm_shift")
    out["itm_shift/log2"] = torch.tensor([float(SHIFT_LOG2)])
    write_tensors(fixture / "fp16.safetensors", out, {"transformers": __import__("transformers").__version__})
    for k, v in out.items():
        print(k, tuple(v.shape))
    for tag in ("itm", "itm_shift"):
        for k in ("itm_logits", "text_embeds"):
            a, b = out[f"fp16/{tag}/{k}"], out[f"text_f32/{tag}/{k}"]
            print(f"{tag}/{k}: the references differ by max {(a - b).abs().max().item():.3e}, scale {a.abs().max().item():.3g}")


def instructblip_main(fixture: Path) -> None:
    pixels = load_file(str(fixture / "expected.safetensors"))["pixel_values"]
    case = next(c for c in json.loads((fixture / "expected.json").read_text())["cases"] if c["name"] == "instruction")
    out = {"pixel_values": pixels}

    def run(checkpoint: Path, tag: str) -> None:
        kept = InstructBlipForConditionalGeneration.from_pretrained(checkpoint, dtype=torch.float16)
        fp32 = sorted(k for k, p in kept.named_parameters() if p.dtype != torch.float16)
        print("float32 in transformers' float16 model:", fp32)
        assert kept.qformer.embeddings.layernorm.weight.dtype == torch.float16, "transformers keeps InstructBLIP's Q-Former in float32"
        if kept.config.text_config.model_type == "t5":
            assert kept.qformer.embeddings.word_embeddings.weight.dtype == torch.float32, "transformers no longer keeps the Q-Former's word embeddings in float32 (T5's 'wo')"
            assert kept.qformer.embeddings.position_embeddings.weight.dtype == torch.float16
        allhalf = InstructBlipForConditionalGeneration.from_pretrained(checkpoint, dtype=torch.float32).half()
        out.update({f"fp16/{tag}/{k}": v for k, v in instructblip_features(kept, pixels, case).items()})
        out.update({f"all_half/{tag}/{k}": v for k, v in instructblip_features(allhalf, pixels, case).items()})

    run(fixture / "checkpoint", "instructblip")
    with tempfile.TemporaryDirectory() as tmp:
        run(shifted_checkpoint(fixture, tmp, "qformer.embeddings"), "instructblip_shift")
    out["instructblip_shift/log2"] = torch.tensor([float(SHIFT_LOG2)])
    write_tensors(fixture / "fp16.safetensors", out, {"transformers": __import__("transformers").__version__})
    for k, v in out.items():
        print(k, tuple(v.shape))
    for tag in ("instructblip", "instructblip_shift"):
        for k in ("qformer_last_hidden_state", "prefix_embeds"):
            a, b = out[f"fp16/{tag}/{k}"], out[f"all_half/{tag}/{k}"]
            print(f"{tag}/{k}: the references differ by max {(a - b).abs().max().item():.3e}, scale {a.abs().max().item():.3g}")


def main(name: str) -> None:
    fixture = FIXTURES / name
    config = json.loads((fixture / "checkpoint" / "config.json").read_text())
    if config["model_type"] == "instructblip":
        return instructblip_main(fixture)
    if config["architectures"] == ["Blip2ForImageTextRetrieval"]:
        return itm_main(fixture)
    pixels = load_file(str(fixture / "expected.safetensors"))["pixel_values"]
    kept = Blip2ForConditionalGeneration.from_pretrained(fixture / "checkpoint", dtype=torch.float16)
    assert kept.qformer.layernorm.weight.dtype == torch.float32, "transformers no longer keeps the Q-Former in float32"
    assert kept.vision_model.embeddings.patch_embedding.weight.dtype == torch.float16
    allhalf = Blip2ForConditionalGeneration.from_pretrained(fixture / "checkpoint", dtype=torch.float32).half()
    out = {f"fp16/{k}": v for k, v in features(kept, pixels).items()}
    out.update({f"all_half/{k}": v for k, v in features(allhalf, pixels).items()})
    out["pixel_values"] = pixels
    if kept.config.text_config.model_type == "t5":
        wo = kept.language_model.encoder.block[0].layer[1].DenseReluDense.wo.weight
        assert wo.dtype == torch.float32, "transformers no longer keeps T5's wo in float32"
        assert kept.language_model.encoder.block[0].layer[1].DenseReluDense.wi_0.weight.dtype == torch.float16
        case = next(c for c in json.loads((fixture / "expected.json").read_text())["cases"] if c["name"] == "question")
        steps = 8
        for tag, model in (("fp16", kept), ("all_half", allhalf)):
            r = t5_case(model, pixels, case, steps)
            out["t5/decoder_input_ids"] = r.pop("decoder_input_ids")
            out.update({f"{tag}/t5/{k}": v for k, v in r.items()})
        # What keeping `wo` in float32 is for (Flan-T5-xl / xxl): feed-forward outputs past float16's
        # 65504. The first encoder and decoder blocks' `wo` scaled by 2^k (exact in float32 and float16),
        # k the smallest with an encoder `wo` output over 65504: transformers' float16 model stays finite
        # (the float32 residual stream absorbs it); an all-float16 one overflows (T5 clamps the inf).
        ffn = kept.language_model.encoder.block[0].layer[1]
        seen = []
        hook = ffn.DenseReluDense.wo.register_forward_hook(lambda m, i, o: seen.append(o.abs().max().item()))
        t5_case(kept, pixels, case, 1)
        hook.remove()
        k = math.ceil(math.log2(70000 / seen[0]))
        for model in (kept, allhalf):
            with torch.no_grad():
                for stack in (model.language_model.encoder, model.language_model.decoder):
                    wo = stack.block[0].layer[-1].DenseReluDense.wo.weight
                    wo.mul_(2.0**k)
            r = t5_case(model, pixels, case, steps)
            tag = "fp16" if model is kept else "all_half"
            out[f"{tag}/t5_large_wo/decoder_logits"] = r["decoder_logits"]
        out["t5_large_wo/log2_scale"] = torch.tensor([float(k)])
        assert torch.isfinite(out["fp16/t5_large_wo/decoder_logits"]).all()
    write_tensors(fixture / "fp16.safetensors", out, {"transformers": __import__("transformers").__version__})
    for k, v in out.items():
        print(k, tuple(v.shape))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "blip2-opt-a")
