"""transformers' default image processor (the torchvision backend) for runtime/preprocess/resizeTorchvision.ts.

transformers 5's `AutoProcessor.from_pretrained(ckpt)` gives `BlipImageProcessor` (TorchvisionBackend) where
torchvision is installed, `BlipImageProcessorPil` only with `backend="pil"` or without torchvision. The runtime
reproduces the PIL one by default and this one with the torchvision image backend. What it does (transformers
5.12.1 image_processing_backends.py TorchvisionBackend, torchvision 0.27 v2 resize_image, torch 2.14 ATen
UpSampleKernel.cpp), checked below on every case:

    t   = pil_to_tensor(image.convert("RGB"))                       # uint8, (3, H, W)
    u8  = tvF.resize(t, (h, w), interpolation, antialias=True)      # stays uint8 on the CPU for bilinear (AVX2 /
                                                                    # AVX-512 / arm64), bicubic, lanczos: ATen's
                                                                    # int16-weight separable kernels; nearest-exact
    m   = float32(float32(mean) * float32(1 / rescale_factor))      # _fuse_mean_std_and_rescale_factor
    s   = float32(float32(std) * float32(1 / rescale_factor))
    out = (float32(u8) - m) / s                                     # tvF.normalize, float32

Writes test/fixtures/torchvision-backend/ (about 300 KB):
  cases.json            resize cases on generated images (the TS test makes the same bytes, see noise_image /
                        formula_image) with the sha256 of torchvision's uint8 output; per committed test image
                        (test/fixtures/images) and setting (BLIP 384, BLIP-2 224: bicubic, CLIP mean / std)
                        the sha256 of the resized bytes and of BlipImageProcessor's pixel_values, with how many
                        bytes the PIL backend's resize gives differently; the normalisation tables; blip-itm-b's
                        ITM / ITC of one pair under both processors
  expected.safetensors  resized/<image>/224 uint8 (224, 224, 3) of two images (a failing digest's neighbours
                        show where), table/<setting> float32 (3, 256): pixel_values of each byte value

    cd /work/main && ../shared/oracle/py test/oracle/torchvision_backend.py
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import numpy as np
import torch
import torchvision
import transformers
from PIL import Image
from torchvision.transforms.v2 import functional as tvF
from torchvision.transforms import InterpolationMode
from transformers import AutoProcessor, BlipForImageTextRetrieval, BlipImageProcessor, BlipImageProcessorPil
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from common import FIXTURES, IMAGES_DIR, reset_dir, write_tensors

OUT = FIXTURES / "torchvision-backend"
MODES = {"nearest": InterpolationMode.NEAREST_EXACT, "bilinear": InterpolationMode.BILINEAR,
         "bicubic": InterpolationMode.BICUBIC, "lanczos": InterpolationMode.LANCZOS}
PIL_RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3}
SETTINGS = {"384": 384, "224": 224}
STORED = ["rgb_37x23.png", "photo_64x48.jpg"]


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def noise_image(w: int, h: int, seed: int) -> np.ndarray:
    """Bytes of a 32-bit integer hash of (index, seed); the TS test computes the same with Math.imul."""
    i = np.arange(w * h * 3, dtype=np.uint64)
    x = (i * np.uint64(0x9E3779B1) + np.uint64(seed) * np.uint64(0x85EBCA77)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x2C1B3C6D)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(12)
    return (x >> np.uint64(24)).astype(np.uint8).reshape(h, w, 3)


def formula_image(w: int, h: int) -> np.ndarray:
    """The integer formula of test/oracle/preprocess_cases.py (smooth with edges)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    return np.stack([((x * x * (c + 1) + y * y * (3 - c) + x * y) >> 5) & 255 for c in range(3)], -1).astype(np.uint8)


def tv_resize(hwc: np.ndarray, w: int, h: int, mode: str) -> np.ndarray:
    # as TorchvisionBackend.process_image hands it on: pil_to_tensor's (3, H, W) view of the HWC bytes
    t = torch.from_numpy(np.array(hwc, copy=True)).permute(2, 0, 1)
    r = tvF.resize(t[None], [h, w], interpolation=MODES[mode], antialias=True)[0]
    assert r.dtype == torch.uint8
    return r.permute(1, 2, 0).contiguous().numpy()


def resize_cases() -> list[dict]:
    rng = np.random.default_rng(20240611)
    sizes: list[tuple[int, int, int, int]] = []
    for _ in range(120):  # small, any ratio
        sizes.append(tuple(int(v) for v in rng.integers(1, 80, size=4)))
    for _ in range(60):  # photos down to the models' sizes, and small images up
        s = int(rng.choice([224, 384, 364, 490]))
        sizes.append((int(rng.integers(200, 900)), int(rng.integers(200, 900)), s, s))
        sizes.append((int(rng.integers(5, 200)), int(rng.integers(5, 200)), s, s))
    for _ in range(30):  # one side unchanged
        w, h = (int(v) for v in rng.integers(2, 200, size=2))
        sizes.append((w, h, w, int(rng.integers(1, 300))))
        sizes.append((w, h, int(rng.integers(1, 300)), h))
    sizes += [(640, 480, 384, 384), (640, 480, 224, 224), (1, 1, 7, 5), (3000, 2, 2, 2), (2, 2000, 3, 1)]
    # nearest at a tie that only a fused multiply-add rounds up (4 -> 850, i 212; AVX2 / AVX-512 builds), and
    # outputs of width + height <= 128, which ATen's other nearest kernel takes
    ties = [(4, 3, 850, 200), (37, 23, 60, 60), (500, 300, 64, 64)]
    cases = []
    for k, (w, h, ow, oh) in enumerate(sizes + ties):
        mode = "nearest" if k >= len(sizes) else list(MODES)[k % 4]
        kind = "noise" if k % 3 else "formula"
        src = noise_image(w, h, k) if kind == "noise" else formula_image(w, h)
        cases.append({"image": kind, "seed": k, "width": w, "height": h, "out_width": ow, "out_height": oh,
                      "resample": mode, "sha256": sha(tv_resize(src, ow, oh, mode))})
    return cases


def processor(size: int, backend: str):
    kw = dict(size={"height": size, "width": size}, resample=3, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD,
              rescale_factor=1 / 255, do_rescale=True, do_normalize=True, do_convert_rgb=True)
    return BlipImageProcessor(**kw) if backend == "torchvision" else BlipImageProcessorPil(**kw)


def fused(u8: np.ndarray, p) -> np.ndarray:
    m = torch.tensor(p.image_mean) * (1.0 / p.rescale_factor)
    s = torch.tensor(p.image_std) * (1.0 / p.rescale_factor)
    return ((torch.from_numpy(u8).permute(2, 0, 1).float() - m.view(3, 1, 1)) / s.view(3, 1, 1)).numpy()


def main() -> None:
    # (ATen's nearest rounds differently without FMA: the DEFAULT build would record another tie case)
    assert torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"), torch.backends.cpu.get_cpu_capability()
    reset_dir(OUT)
    arrays: dict[str, np.ndarray] = {}
    images = sorted(p.name for p in IMAGES_DIR.iterdir() if p.suffix in (".png", ".jpg", ".webp"))
    per_image = []
    for name, size in SETTINGS.items():
        tv, pil = processor(size, "torchvision"), processor(size, "pil")
        for f in images:
            im = Image.open(IMAGES_DIR / f)
            rgb = np.asarray(im.convert("RGB"))
            u8 = tv_resize(rgb, size, size, "bicubic")
            pv = tv(images=im, return_tensors="pt")["pixel_values"][0].numpy()
            # the processor is the resize above and the fused normalisation, bit for bit
            assert np.array_equal(pv, fused(u8, tv)), f
            pil_u8 = np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
            pil_pv = pil(images=im, return_tensors="np")["pixel_values"][0]
            per_image.append({"image": f, "setting": name, "resized_sha256": sha(u8), "pixel_values_sha256": sha(pv),
                              "bytes_unlike_pil": int((u8 != pil_u8).sum()),
                              "max_pixel_value_diff_vs_pil": float(np.abs(pv - pil_pv).max())})
            if name == "224" and f in STORED:
                arrays[f"resized/{f}/{name}"] = u8
        # every byte value through the processor without resizing: the normalisation alone
        ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
        tv_nr = BlipImageProcessor(**{**tv.to_dict(), "do_resize": False})
        arrays[f"table/{name}"] = tv_nr(images=Image.fromarray(ramp), return_tensors="pt")["pixel_values"][0, :, 0, :].numpy()
    # the other branches of the normalisation: rescale only, normalise only (settings as in the TS test)
    ramp = Image.fromarray(np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2))
    odd = dict(do_resize=False, image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.3, 0.4], rescale_factor=1 / 255)
    for key, kw in {"rescale_only": dict(do_rescale=True, do_normalize=False), "normalize_only": dict(do_rescale=False, do_normalize=True)}.items():
        arrays[f"table/{key}"] = BlipImageProcessor(**odd, **kw)(images=ramp, return_tensors="pt")["pixel_values"][0, :, 0, :].numpy()

    # blip-itm-b (bilinear, 32 x 32): one pair under AutoProcessor's default and with backend="pil"
    ck = FIXTURES / "blip-itm-b" / "checkpoint"
    model = BlipForImageTextRetrieval.from_pretrained(ck).eval()
    itm = {"image": "rgb_37x23.png", "text": "an image of a cat"}
    for backend, kw in {"torchvision": {}, "pil": {"backend": "pil"}}.items():
        p = AutoProcessor.from_pretrained(ck, **kw)
        assert type(p.image_processor).__name__ == ("BlipImageProcessor" if backend == "torchvision" else "BlipImageProcessorPil")
        inputs = p(images=Image.open(IMAGES_DIR / itm["image"]), text=itm["text"], return_tensors="pt")
        with torch.no_grad():
            itm[backend] = {"itm": float(torch.softmax(model(**inputs)[0], 1)[0, 1]),
                            "itc": float(model(**inputs, use_itm_head=False)[0][0, 0])}

    write_tensors(OUT / "expected.safetensors", arrays)
    doc = {
        "_about": "transformers' default (torchvision backend) image processing; see test/oracle/torchvision_backend.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "cpu": torch.backends.cpu.get_cpu_capability(),
                     "machine": platform.machine()},
        "resize": resize_cases(),
        "images": per_image,
        "settings": {k: {"size": v, "resample": 3, "image_mean": list(OPENAI_CLIP_MEAN), "image_std": list(OPENAI_CLIP_STD),
                         "rescale_factor": 1 / 255} for k, v in SETTINGS.items()},
        "odd_settings": {"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.3, 0.4], "rescale_factor": 1 / 255},
        "itm": itm,
    }
    (OUT / "cases.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
