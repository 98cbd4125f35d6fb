"""Train the blip-graph demo model: a tiny BLIP-2 (ViT + Q-Former + OPT) on procedural scenes.

Everything here is a toy: all parameters (vision encoder, Q-Former, query tokens,
projection, OPT) are trained together from scratch, unlike real BLIP-2, which
freezes a pretrained vision encoder and language model.

    # the committed model (one H100, 3.4 minutes; stopped by the time schedule at step 4435):
    python3 demo/train.py --device cuda --threads 4 --workers 10 --batch 256 --lr 2e-3 \
        --warmup 300 --steps 100000 --minutes 3.4 --out demo/model --work demo/.work/gpu
    # the same schedule by steps, on any machine (CPU: hours, see README.md):
    /work/shared/oracle/py demo/train.py --out demo/model
    # smoke test
    /work/shared/oracle/py demo/train.py --steps 20 --batch 8 --out demo/.work/smoke --work demo/.work/smoke

Training data: scene(seed) for seeds 0, 1, 2, ... (all < scenes.EVAL_SEED_START). Each
image is used twice per step: once as a caption example (no prompt; target
"{caption}\\n") and once as a question example (prompt "Question: {q} Answer:";
target " {answer}\\n"), with the loss on the target tokens only.

Checkpoints go to demo/.work/ (resumable with --resume); the final model and processor
go to --out with save_pretrained (safetensors).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402

from transformers import (  # noqa: E402
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2Processor,
    BlipImageProcessor,
    GenerationConfig,
    GPT2Tokenizer,
)

IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]  # OPENAI_CLIP_MEAN, BlipImageProcessor's default
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]
NUM_QUERY_TOKENS = 16
EOS_TEXT = "\n"

# ---------------------------------------------------------------------------- tokenizer


def corpus(n_scenes: int = 20000):
    for seed in range(n_scenes):
        s = scenes.scene(seed)
        yield s.caption + EOS_TEXT
        for q, a in s.qa:
            yield scenes.prompt(q) + " " + a + EOS_TEXT


def build_tokenizer(vocab_size: int) -> GPT2Tokenizer:
    """Byte-level BPE trained on the caption / question corpus, OPT-style specials:
    <s>=0 <pad>=1 </s>=2 <unk>=3, and </s> prepended as BOS (as OPT's tokenizer does)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return GPT2Tokenizer(
        vocab=model["vocab"],
        merges=merges,
        bos_token="</s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        add_bos_token=True,
        add_prefix_space=False,
        model_max_length=64,
    )


# ---------------------------------------------------------------------------- model


def build_config(vocab_size: int, image_token_index: int, eos_id: int, args) -> Blip2Config:
    vision = dict(
        hidden_size=args.vision_width,
        intermediate_size=args.vision_width * 4,
        num_hidden_layers=args.vision_depth,
        num_attention_heads=4,
        image_size=scenes.CANVAS,
        patch_size=args.patch,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        attention_dropout=0.0,
        qkv_bias=True,
    )
    qformer = dict(
        hidden_size=args.qformer_width,
        intermediate_size=args.qformer_width * 4,
        num_hidden_layers=args.qformer_depth,
        num_attention_heads=4,
        cross_attention_frequency=1,
        encoder_hidden_size=args.vision_width,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        vocab_size=vocab_size,  # unused by Blip2ForConditionalGeneration (no Q-Former text input)
        max_position_embeddings=64,
    )
    text = dict(
        model_type="opt",
        vocab_size=vocab_size,
        hidden_size=args.text_width,
        word_embed_proj_dim=args.text_width,
        ffn_dim=args.text_width * 4,
        num_hidden_layers=args.text_depth,
        num_attention_heads=4,
        max_position_embeddings=64,
        do_layer_norm_before=True,
        activation_function="relu",
        dropout=0.0,
        attention_dropout=0.0,
        layerdrop=0.0,
        bos_token_id=2,
        # Blip2ForConditionalGeneration.generate runs language_model.generate, whose generation
        # config comes from text_config: the "\n" terminator must be here (as in the public
        # BLIP-2 OPT configs, eos 50118), not only in generation_config.json.
        eos_token_id=eos_id,
        pad_token_id=1,
        tie_word_embeddings=True,
    )
    return Blip2Config(
        vision_config=vision,
        qformer_config=qformer,
        text_config=text,
        num_query_tokens=NUM_QUERY_TOKENS,
        image_token_index=image_token_index,
    )


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """(grid*grid, dim) 2-D sine-cosine position table (MAE style): first half encodes the row,
    second half the column, patches in row-major order."""
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")

    def enc(pos):
        out = pos.reshape(-1, 1).double() * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    return torch.cat([enc(rows), enc(cols)], dim=1).float()


def reinit_(model: torch.nn.Module, seed: int) -> None:
    """Give every parameter a sensible random start (transformers leaves some BLIP-2 weights ~0).
    The vision position embeddings start from a 2-D sine-cosine table (still trained): with a
    small random start the model learned everything but whether groups sit side by side or
    stacked (captions right except left of/above, from left to right/from top to bottom)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif "layernorm" in name.lower() or "layer_norm" in name or name.endswith("_ln.weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        pos = model.vision_model.embeddings.position_embedding  # (1, 1 + grid*grid, width)
        grid = model.config.vision_config.image_size // model.config.vision_config.patch_size
        pos[0, 0].zero_()
        pos[0, 1:].copy_(sincos_2d(grid, pos.shape[-1]))


# ---------------------------------------------------------------------------- data


def pixels(images) -> torch.Tensor:
    """Same as BlipImageProcessor at size == canvas (no resize): rescale 1/255, CLIP normalise."""
    arr = np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in images])  # B,H,W,3
    arr = (arr - np.array(IMAGE_MEAN, np.float32)) / np.array(IMAGE_STD, np.float32)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


class Encoder:
    def __init__(self, tok, image_token_index: int):
        self.tok = tok
        self.img = image_token_index
        self.cache: dict[str, list[int]] = {}

    def ids(self, text: str, add_special_tokens: bool) -> list[int]:
        key = ("1" if add_special_tokens else "0") + text
        if key not in self.cache:
            self.cache[key] = self.tok(text, add_special_tokens=add_special_tokens)["input_ids"]
        return self.cache[key]

    def example(self, prompt_text: str | None, target: str):
        """[img]*Q + [BOS] + prompt + target; labels only on the target."""
        head = [self.img] * NUM_QUERY_TOKENS
        if prompt_text is None:
            ctx = self.ids("", True)  # [BOS]
            tgt = self.ids(target + EOS_TEXT, False)
        else:
            ctx = self.ids(prompt_text, True)
            tgt = self.ids(" " + target + EOS_TEXT, False)
        ids = head + ctx + tgt
        labels = [-100] * (len(head) + len(ctx)) + tgt
        return ids, labels


def batch(enc: Encoder, seeds: list[int], rng: random.Random):
    imgs, seqs = [], []
    for seed in seeds:
        s = scenes.scene(seed)
        imgs.append(s.render())
        seqs.append(enc.example(None, s.caption))
        q, a = rng.choice(s.qa)
        seqs.append(enc.example(scenes.prompt(q), a))
    n = max(len(x[0]) for x in seqs)
    ids = torch.full((len(seqs), n), 1, dtype=torch.long)  # pad = 1 (right padding)
    labels = torch.full((len(seqs), n), -100, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, (a, b) in enumerate(seqs):
        ids[i, : len(a)] = torch.tensor(a)
        labels[i, : len(b)] = torch.tensor(b)
        mask[i, : len(a)] = 1
    return pixels(imgs), ids, mask, labels


class Batches(torch.utils.data.Dataset):
    """Training batch number `step` (deterministic: seeds step*B .. step*B+B-1, question choice
    seeded by step), so the result does not depend on how many loader workers make them."""

    def __init__(self, enc: Encoder, batch_size: int, seed: int, start: int, steps: int):
        self.enc, self.b, self.seed, self.start, self.steps = enc, batch_size, seed, start, steps

    def __len__(self):
        return self.steps - self.start

    def __getitem__(self, i):
        step = self.start + i
        seeds = [step * self.b + k for k in range(self.b)]
        assert seeds[-1] < scenes.EVAL_SEED_START
        return batch(self.enc, seeds, random.Random(self.seed * 1_000_003 + step))


def forward(model, pix, ids, mask, per_image: int):
    """Blip2ForConditionalGeneration.forward, with each image's Q-Former output shared by its
    `per_image` text rows (rows 2i, 2i+1 belong to image i)."""
    feats = model.get_image_features(pix, return_dict=True).pooler_output  # B,Q,H
    feats = feats.repeat_interleave(per_image, dim=0)
    emb = model.get_input_embeddings()(ids)
    emb = torch.cat([feats.to(emb.dtype), emb[:, NUM_QUERY_TOKENS:]], dim=1)  # placeholders lead
    return model.language_model(inputs_embeds=emb, attention_mask=mask).logits


def loss_and_acc(logits, labels):
    lg = logits[:, :-1].reshape(-1, logits.shape[-1])
    lb = labels[:, 1:].reshape(-1)
    loss = F.cross_entropy(lg, lb, ignore_index=-100)
    keep = lb != -100
    acc = (lg.argmax(-1)[keep] == lb[keep]).float().mean()
    return loss, acc


# ---------------------------------------------------------------------------- saving


def save(model, processor, out: str, eos_id: int) -> None:
    os.makedirs(out, exist_ok=True)
    model.generation_config = GenerationConfig(
        bos_token_id=2,
        eos_token_id=eos_id,
        pad_token_id=1,
        decoder_start_token_id=None,
        max_new_tokens=24,
        do_sample=False,
        num_beams=1,
    )
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo/model")
    ap.add_argument("--work", default="demo/.work")
    ap.add_argument("--steps", type=int, default=4435)
    ap.add_argument("--batch", type=int, default=256, help="images per step (two text rows each)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=0, help="data loader processes (0: make batches in the training loop)")
    ap.add_argument("--vocab", type=int, default=384)
    ap.add_argument("--patch", type=int, default=12)
    ap.add_argument("--vision-width", type=int, default=128)
    ap.add_argument("--vision-depth", type=int, default=3)
    ap.add_argument("--qformer-width", type=int, default=128)
    ap.add_argument("--qformer-depth", type=int, default=2)
    ap.add_argument("--text-width", type=int, default=128)
    ap.add_argument("--text-depth", type=int, default=3)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--max-minutes", type=float, default=0, help="stop (and save) after this much wall time")
    ap.add_argument("--minutes", type=float, default=0, help="time-based run: cosine schedule over this much wall time (--steps is then an upper bound)")
    ap.add_argument("--export", action="store_true", help="save the checkpoint in --work to --out, no training")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.work, exist_ok=True)

    tok = build_tokenizer(args.vocab)
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(
            size={"height": scenes.CANVAS, "width": scenes.CANVAS},
            image_mean=IMAGE_MEAN,
            image_std=IMAGE_STD,
        ),
        tokenizer=tok,
        num_query_tokens=NUM_QUERY_TOKENS,
    )
    tok = processor.tokenizer
    image_token_index = tok.convert_tokens_to_ids("<image>")
    eos_id = tok.convert_tokens_to_ids(tok.tokenize(EOS_TEXT))
    assert len(eos_id) == 1, eos_id
    eos_id = eos_id[0]
    vocab_size = len(tok)
    print(f"tokenizer: {vocab_size} tokens, <image>={image_token_index}, eos '\\n'={eos_id}", flush=True)

    config = build_config(vocab_size, image_token_index, eos_id, args)
    model = Blip2ForConditionalGeneration(config)
    reinit_(model, args.seed)
    model.to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params:,}", flush=True)

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "query_tokens" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "query_tokens" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
    )

    def progress(step: int) -> float:
        """Fraction of the run done: by steps, or by wall time with --minutes."""
        if args.minutes:
            return elapsed / (args.minutes * 60)
        return (step - args.warmup) / max(1, args.steps - args.warmup)

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        t = progress(step)
        return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))

    ckpt_path = os.path.join(args.work, "ckpt.pt")
    step, elapsed = 0, 0.0
    if (args.resume or args.export) and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=args.device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed = ck["step"], ck["elapsed"]
        print(f"resumed at step {step} ({elapsed / 60:.1f} min)", flush=True)

    if args.export:
        model.eval()
        model.to("cpu")
        save(model, processor, args.out, eos_id)
        print(f"exported step {step} to {args.out}", flush=True)
        return

    enc = Encoder(tok, image_token_index)
    # fixed validation batch (seeds disjoint from training and from evaluate.py's)
    val = batch(enc, list(range(900_000_000, 900_000_064)), random.Random(1))

    def checkpoint():
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed}, ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)

    model.train()
    t_last = time.time()
    run_loss = run_acc = 0.0
    n_run = 0
    loader = torch.utils.data.DataLoader(
        Batches(enc, args.batch, args.seed, step, args.steps),
        batch_size=None,
        shuffle=False,
        num_workers=args.workers,
        prefetch_factor=4 if args.workers else None,
        persistent_workers=False,
    )
    for pix, ids, mask, labels in loader:
        pix, ids, mask, labels = (t.to(args.device, non_blocking=True) for t in (pix, ids, mask, labels))
        for gparam in opt.param_groups:
            gparam["lr"] = lr_at(step)
        logits = forward(model, pix, ids, mask, 2)
        loss, acc = loss_and_acc(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        now = time.time()
        elapsed += now - t_last
        t_last = now
        run_loss += loss.item()
        run_acc += acc.item()
        n_run += 1
        if step % args.log_every == 0:
            model.eval()
            with torch.no_grad():
                vl, va = loss_and_acc(forward(model, *(t.to(args.device) for t in val[:3]), 2), val[3].to(args.device))
            model.train()
            print(
                f"step {step} lr {lr_at(step):.2e} loss {run_loss / n_run:.4f} tok_acc {run_acc / n_run:.4f} "
                f"val_loss {vl.item():.4f} val_tok_acc {va.item():.4f} elapsed {elapsed / 60:.1f} min",
                flush=True,
            )
            run_loss = run_acc = 0.0
            n_run = 0
        if step % args.ckpt_every == 0:
            checkpoint()
        if args.max_minutes and elapsed > args.max_minutes * 60:
            print(f"stopping at step {step}: --max-minutes reached", flush=True)
            break
        if args.minutes and step >= args.warmup and progress(step) >= 1.0:
            print(f"stopping at step {step}: --minutes schedule done", flush=True)
            break
    checkpoint()

    model.eval()
    model.to("cpu")
    save(model, processor, args.out, eos_id)
    with open(os.path.join(args.work, "train_info.json"), "w") as f:
        json.dump({"steps": step, "batch": args.batch, "minutes": elapsed / 60, "params": n_params, "args": vars(args)}, f, indent=1)
    print(f"saved to {args.out} after {step} steps, {elapsed / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
