"""Deterministic test images and their PIL-based BLIP preprocessing, as transformers computes it.

Reference processor: `BlipImageProcessorPil` (transformers 5's PIL backend: PIL `Image.resize` on the
`convert("RGB")` image, then numpy rescale + normalise). transformers 5's default `BlipImageProcessor` is the
torchvision backend (its resize differs from PIL by up to ~0.04 after normalisation on small images);
`AutoImageProcessor.from_pretrained(dir, backend="pil")` selects the PIL one. We follow the PIL backend because
that is what transformers 4 and LAVIS did (the original BLIP numbers) and what the runtime implements.

Exact arithmetic of the PIL backend (so a reimplementation can be bit-exact):
    u8   = PIL resize of image.convert("RGB") to (width, height) with the given resample filter
    x    = float32(float64(u8) * 0.00392156862745098)            # rescale: float64 multiply, cast
    out  = (x - float32(mean[c])) / float32(std[c])               # normalise in float32, channel-first

Writes test/fixtures/images/:
  *.png / *.jpg / *.webp   the inputs (made here with PIL)
  expected.safetensors     per image: `decoded/<img>` uint8 (H, W, C) as PIL decodes the file (mode kept:
                           C = 1 for L, 4 for RGBA; palette expanded to RGB); for the 1000x700 image only rows
                           `decoded_rows/<img>` uint8 (len(rows), W, 3) (rows in expected.json decoded_rows_big).
                           Per image and setting (expected.json settings[s].images lists which images):
                           `resized/<img>/<setting>` uint8 (h, w, 3) and `pixel_values/<img>/<setting>` float32
                           (3, h, w); for the 384 setting only the rows `rows_384`:
                           `resized_rows/<img>/<setting>` uint8 (len(rows), 384, 3) and
                           `pixel_values_rows/<img>/<setting>` float32 (3, len(rows), 384).
  expected.json            images (file, mode, size), settings, arrays index (shape / dtype).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from transformers import BlipImageProcessorPil
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from common import IMAGES_DIR, reset_dir, tensor_index, write_json, write_tensors

BICUBIC = Image.Resampling.BICUBIC
BILINEAR = Image.Resampling.BILINEAR

ROWS_384 = [0, 1, 57, 191, 192, 300, 383]


def _photo(w: int, h: int, seed: int) -> np.ndarray:
    """A smooth-ish synthetic 'photo': gradients, sinusoids, a disc and a bar, plus mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = x / max(w - 1, 1), y / max(h - 1, 1)
    r = 255 * (0.5 + 0.5 * np.sin(6.0 * u + 2.0 * v + seed))
    g = 255 * v
    b = 255 * (0.5 + 0.5 * np.cos(9.0 * u * v + 1.0))
    img = np.stack([r, g, b], -1)
    disc = (x - 0.35 * w) ** 2 + (y - 0.55 * h) ** 2 < (0.22 * min(w, h)) ** 2
    img[disc] = [250, 200, 30]
    bar = (x > 0.7 * w) & (x < 0.8 * w)
    img[bar] = [20, 40, 220]
    img += rng.normal(0, 6, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_images() -> dict:
    """name -> PIL image as written to disk (then re-opened from disk for everything else)."""
    imgs = {}
    imgs["rgb_37x23.png"] = Image.fromarray(_photo(37, 23, 1), "RGB")
    imgs["gray_45x31.png"] = Image.fromarray(_photo(45, 31, 2)[..., 1], "L")
    rgba = np.concatenate(
        [_photo(29, 41, 3), (np.arange(29 * 41).reshape(41, 29) * 7 % 256).astype(np.uint8)[..., None]], -1
    )
    imgs["rgba_29x41.png"] = Image.fromarray(rgba, "RGBA")
    imgs["palette_33x17.png"] = Image.fromarray(_photo(33, 17, 4), "RGB").quantize(colors=16, dither=Image.Dither.NONE)
    # 1000x700 made of flat blocks and stripes so the PNG compresses to a few KB
    y, x = np.mgrid[0:700, 0:1000]
    big = np.zeros((700, 1000, 3), np.uint8)
    big[..., 0] = ((x // 50) * 23 % 256).astype(np.uint8)
    big[..., 1] = ((y // 35) * 41 % 256).astype(np.uint8)
    big[..., 2] = np.where(((x // 125) + (y // 100)) % 2 == 0, 230, 20).astype(np.uint8)
    big[(x - 500) ** 2 + (y - 350) ** 2 < 150**2] = [255, 255, 255]
    big[:, 600:604] = [0, 0, 0]
    imgs["blocks_1000x700.png"] = Image.fromarray(big, "RGB")
    imgs["photo_64x48.jpg"] = Image.fromarray(_photo(64, 48, 5), "RGB")
    imgs["photo_50x40.webp"] = Image.fromarray(_photo(50, 40, 6), "RGB")
    return imgs


def save_images(imgs: dict) -> None:
    for name, im in imgs.items():
        path = IMAGES_DIR / name
        if name.endswith(".jpg"):
            im.save(path, format="JPEG", quality=90, subsampling=2, optimize=False)  # 4:2:0
        elif name.endswith(".webp"):
            im.save(path, format="WEBP", lossless=True, exact=True)
        else:
            im.save(path, format="PNG", optimize=False, compress_level=9)


SETTINGS = {
    # name: (size, resample)
    "s32_bicubic": (32, BICUBIC),
    "s48_bicubic": (48, BICUBIC),
    "s64_bicubic": (64, BICUBIC),
    "s32_bilinear": (32, BILINEAR),
    "s64_bilinear": (64, BILINEAR),
    "s384_bicubic": (384, BICUBIC),
}
# which images each setting covers (keeps expected.safetensors under 1 MB); None = all images.
# 384 (full BLIP resolution) is stored as selected rows only.
IMAGES_384 = ["blocks_1000x700.png", "rgb_37x23.png"]
SETTING_IMAGES = {
    "s48_bicubic": ["blocks_1000x700.png", "palette_33x17.png", "photo_50x40.webp", "rgb_37x23.png"],
    "s64_bicubic": ["blocks_1000x700.png", "photo_64x48.jpg", "rgba_29x41.png"],
    "s32_bilinear": ["blocks_1000x700.png", "gray_45x31.png", "photo_64x48.jpg", "rgb_37x23.png"],
    "s64_bilinear": ["gray_45x31.png", "rgb_37x23.png"],
    "s384_bicubic": IMAGES_384,
}
BIG = "blocks_1000x700.png"  # its decoded pixels are stored as the rows DECODED_ROWS_BIG only
DECODED_ROWS_BIG = [0, 1, 200, 349, 350, 699]


def processor_for(size: int, resample) -> BlipImageProcessorPil:
    return BlipImageProcessorPil(
        size={"height": size, "width": size},
        resample=resample,
        do_resize=True,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
        do_convert_rgb=True,
    )


def load_image(name: str) -> Image.Image:
    im = Image.open(IMAGES_DIR / name)
    im.load()
    return im


def build_all() -> None:
    reset_dir(IMAGES_DIR)
    save_images(make_images())
    names = sorted(p.name for p in IMAGES_DIR.iterdir())
    tensors, images, settings = {}, {}, {}
    for sname, (size, resample) in SETTINGS.items():
        settings[sname] = {
            "size": {"height": size, "width": size},
            "resample": int(resample),
            "resample_name": resample.name.lower(),
            "rescale_factor": 1 / 255,
            "image_mean": list(OPENAI_CLIP_MEAN),
            "image_std": list(OPENAI_CLIP_STD),
            "images": SETTING_IMAGES.get(sname, names),
        }
    for name in names:
        im = load_image(name)
        images[name] = {"mode": im.mode, "width": im.width, "height": im.height, "format": im.format}
        dec = np.array(im.convert("RGB") if im.mode == "P" else im)
        if dec.ndim == 2:
            dec = dec[..., None]
        if name == BIG:
            tensors[f"decoded_rows/{name}"] = np.ascontiguousarray(dec[DECODED_ROWS_BIG])
        else:
            tensors[f"decoded/{name}"] = dec
        images[name]["decoded_note"] = "palette expanded to RGB" if im.mode == "P" else "as stored"
        for sname, (size, resample) in SETTINGS.items():
            if name not in SETTING_IMAGES.get(sname, names):
                continue
            resized = np.array(im.convert("RGB").resize((size, size), resample=resample))
            proc = processor_for(size, resample)
            pv = proc(images=load_image(name), return_tensors="np")["pixel_values"][0]
            assert pv.dtype == np.float32 and pv.shape == (3, size, size)
            # the processor's resize must be exactly the PIL resize above
            x = (resized.astype(np.float64) * (1 / 255)).astype(np.float32)
            mean = np.array(OPENAI_CLIP_MEAN, np.float32)
            std = np.array(OPENAI_CLIP_STD, np.float32)
            mine = ((x - mean) / std).transpose(2, 0, 1)
            assert np.array_equal(mine, pv), (name, sname, np.abs(mine - pv).max())
            if size == 384:
                tensors[f"resized_rows/{name}/{sname}"] = np.ascontiguousarray(resized[ROWS_384])
                tensors[f"pixel_values_rows/{name}/{sname}"] = np.ascontiguousarray(pv[:, ROWS_384, :])
            else:
                tensors[f"resized/{name}/{sname}"] = resized
                tensors[f"pixel_values/{name}/{sname}"] = pv
    write_tensors(IMAGES_DIR / "expected.safetensors", tensors)
    write_json(
        IMAGES_DIR / "expected.json",
        {
            "_about": "PIL-backend BLIP preprocessing (BlipImageProcessorPil, transformers "
            + __import__("transformers").__version__
            + "); see test/oracle/images.py for the exact arithmetic. Arrays are in expected.safetensors.",
            "processor_class": "BlipImageProcessorPil",
            "images": images,
            "settings": settings,
            "rows_384": ROWS_384,
            "decoded_rows_big": {"image": BIG, "rows": DECODED_ROWS_BIG},
            "arrays": tensor_index(tensors),
        },
    )


if __name__ == "__main__":
    build_all()
