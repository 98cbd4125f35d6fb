"""PIL / transformers oracle for runtime/preprocess (image decoding, PIL resize, rescale + normalise).

Writes test/fixtures/preprocess/:
  images/*.png|jpg|webp     small inputs of every mode the runtime must read (made here with PIL)
  configs/*/                preprocessor_config.json (transformers 4 layout) and processor_config.json
                            (transformers 5 layout, image processor nested), saved by transformers itself
  expected.bin.gz           concatenated uint8 / float32 arrays (gzip), indexed by cases.json
  cases.json                decode / resize / pipeline cases, each naming a slice of expected.bin

Reference: Pillow's Image.resize (what transformers' PIL backend, BlipImageProcessorPil, uses) and
BlipImageProcessorPil itself for pixel_values. transformers 5's default BlipImageProcessor uses the
torchvision backend instead; the runtime follows the PIL one (transformers 4 / LAVIS behaviour).

    cd /work/main && ../shared/oracle/py test/oracle/preprocess_cases.py
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import transformers
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

ROOT = Path(__file__).resolve().parent.parent.parent
OUT = ROOT / "test" / "fixtures" / "preprocess"

NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING = 0, 1, 2, 3, 4, 5


class Blob:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.offset = 0

    def add(self, arr: np.ndarray, store: bool = True) -> dict:
        arr = np.ascontiguousarray(arr)
        if arr.dtype == np.float32:
            data = arr.astype("<f4").tobytes()
            dtype = "float32"
        else:
            assert arr.dtype == np.uint8, arr.dtype
            data = arr.tobytes()
            dtype = "uint8"
        ref = {"offset": self.offset, "length": len(data), "dtype": dtype, "shape": list(arr.shape),
               "sha256": hashlib.sha256(data).hexdigest()}
        if not store:  # too big to keep: the test compares the digest only
            del ref["offset"], ref["length"]
            return ref
        self.parts.append(data)
        self.offset += len(data)
        return ref


def noise(rng: np.random.Generator, h: int, w: int, c: int | None) -> np.ndarray:
    shape = (h, w) if c is None else (h, w, c)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def photo_like(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth gradients + edges + mild noise (JPEG-friendly, still exercises rounding)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0)
    g = 255 * x / max(w - 1, 1)
    b = np.where((x // 8 + y // 8) % 2 == 0, 40.0, 215.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 6, size=(h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def png16_rgb(arr: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (PIL cannot write one)."""
    import struct
    import zlib

    h, w, _ = arr.shape

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def tiff_rgba_associated(arr: np.ndarray) -> bytes:
    """An uncompressed 8-bit RGBA TIFF whose alpha is associated (premultiplied): PIL cannot write one."""
    import struct

    h, w, _ = arr.shape
    data = arr.tobytes()
    # (tag, type, value); 258 BitsPerSample points past the IFD, 273 StripOffsets after that
    entries = [(256, 3, w), (257, 3, h), (258, 3, None), (259, 3, 1), (262, 3, 2), (273, 4, None), (277, 3, 4),
               (278, 3, h), (279, 4, len(data)), (284, 3, 1), (338, 3, 1)]
    bps_at = 8 + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(entries)))
    for tag, typ, val in entries:
        count = 4 if tag == 258 else 1
        if tag == 258:
            out += struct.pack("<HHII", tag, typ, count, bps_at)
        elif tag == 273:
            out += struct.pack("<HHII", tag, typ, count, bps_at + 8)
        elif typ == 3:
            out += struct.pack("<HHIHH", tag, typ, count, val, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, val)
    out += struct.pack("<I4H", 0, 8, 8, 8, 8) + data
    return bytes(out)


def gif_partial_frame(rng: np.random.Generator, w: int, h: int, transparency: int | None) -> bytes:
    """A GIF89a whose one image covers only the middle of its screen (PIL writes full frames)."""
    import struct

    pal = rng.integers(0, 256, size=(16, 3), dtype=np.uint8)
    fw, fh, left, top = w - 6, h - 4, 3, 2
    idx = rng.integers(0, 16, size=fh * fw, dtype=np.uint8)
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80 | 0x03, 0, 0) + pal.tobytes())
    if transparency is not None:
        out += b"\x21\xf9\x04" + bytes([0x01]) + struct.pack("<H", 0) + bytes([transparency, 0])
    out += b"\x2c" + struct.pack("<HHHHB", left, top, fw, fh, 0)
    # LZW, minimum code size 4, no compression: a clear code before every 14 indices keeps the codes
    # 5 bits wide
    min_size, clear, end = 4, 16, 17
    codes, bits = [], 5
    for i in range(0, len(idx), 14):
        codes.append(clear)
        codes.extend(int(v) for v in idx[i : i + 14])
    codes.append(end)
    acc, n, data = 0, 0, bytearray()
    for c in codes:
        acc |= c << n
        n += bits
        while n >= 8:
            data.append(acc & 0xFF)
            acc >>= 8
            n -= 8
    if n:
        data.append(acc & 0xFF)
    out += bytes([min_size])
    for i in range(0, len(data), 255):
        chunk = data[i : i + 255]
        out += bytes([len(chunk)]) + chunk
    out += b"\x00\x3b"
    return bytes(out)


def formula_image(w: int, h: int) -> np.ndarray:
    """The same integer formula is implemented in the TS test (no file stored)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    chans = []
    for c in range(3):
        v = (x * x * (c + 1) + y * y * (3 - c) + x * y) >> 5
        chans.append(v & 255)
    return np.stack(chans, axis=-1).astype(np.uint8)


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "images").mkdir(parents=True)
    rng = np.random.default_rng(20261127)
    blob = Blob()
    cases: dict = {"transformers": transformers.__version__, "pillow": Image.__version__,
                   "decode": [], "resize": [], "pipeline": [], "configs": []}

    imgs = OUT / "images"
    # ---- inputs ---------------------------------------------------------------------------------
    Image.fromarray(noise(rng, 23, 37, 3), "RGB").save(imgs / "rgb_37x23.png")
    Image.fromarray(noise(rng, 5, 7, 3), "RGB").save(imgs / "rgb_7x5.png")
    Image.fromarray(noise(rng, 1, 1, 3), "RGB").save(imgs / "rgb_1x1.png")
    Image.fromarray(noise(rng, 61, 83, 3), "RGB").save(imgs / "rgb_83x61.png")
    Image.fromarray(photo_like(rng, 75, 100), "RGB").save(imgs / "photo_100x75.png")
    Image.fromarray(noise(rng, 29, 41, None), "L").save(imgs / "gray_41x29.png")
    Image.fromarray(noise(rng, 20, 30, 4), "RGBA").save(imgs / "rgba_30x20.png")
    Image.fromarray(noise(rng, 19, 13, 2), "LA").save(imgs / "la_13x19.png")
    pal = Image.fromarray(noise(rng, 17, 33, 3), "RGB").quantize(colors=50)
    pal.info["transparency"] = 3
    pal.save(imgs / "palette_33x17.png", transparency=3)
    Image.fromarray(noise(rng, 15, 21, None) > 127).save(imgs / "bilevel_21x15.png")
    photo = Image.fromarray(photo_like(rng, 48, 64), "RGB")
    photo.save(imgs / "photo_64x48.jpg", quality=90)
    photo.save(imgs / "photo_64x48_444.jpg", quality=95, subsampling=0)
    photo.save(imgs / "photo_64x48_progressive.jpg", quality=85, progressive=True)
    photo.convert("L").save(imgs / "gray_64x48.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW; PIL ignores it when loading, so must we
    photo.save(imgs / "exif_orientation6.jpg", quality=90, exif=exif)
    photo.save(imgs / "photo_64x48_lossy.webp", quality=80)
    Image.fromarray(noise(rng, 23, 37, 3), "RGB").save(imgs / "rgb_37x23_lossless.webp", lossless=True)
    Image.fromarray(noise(rng, 20, 30, 4), "RGBA").save(imgs / "rgba_30x20_lossless.webp", lossless=True)
    Image.fromarray(rng.integers(0, 65536, size=(17, 23), dtype=np.uint16)).save(imgs / "gray16_23x17.png")
    (imgs / "rgb16_19x11.png").write_bytes(png16_rgb(rng.integers(0, 65536, size=(11, 19, 3), dtype=np.uint16)))
    photo.convert("CMYK").save(imgs / "cmyk_64x48.jpg", quality=90)
    (imgs / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
    full = io.BytesIO()
    photo.save(full, format="JPEG", quality=90)
    (imgs / "truncated.jpg").write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    (imgs / "not_an_image.png").write_text("hello, this is text\n")
    # GIF: PIL's convert("RGB") maps every index through the palette, the transparent one too, and
    # fills what the first frame does not cover with the transparency index (else 0). (Their own
    # generator: the draws above stay as they were.)
    grng = np.random.default_rng(2026)
    gif_pal = Image.fromarray(photo_like(grng, 18, 26), "RGB").quantize(colors=32, dither=Image.Dither.NONE)
    gif_pal.save(imgs / "transparent_26x18.gif", transparency=5)
    frames = [gif_pal, Image.fromarray(noise(grng, 18, 26, 3), "RGB").quantize(colors=32, dither=Image.Dither.NONE)]
    frames[0].save(imgs / "animated_26x18.gif", save_all=True, append_images=frames[1:], transparency=7, duration=100, loop=0)
    Image.fromarray(noise(grng, 17, 23, None), "L").save(imgs / "gray_23x17.gif")
    Image.fromarray(noise(grng, 17, 23, None), "L").save(imgs / "gray_transparent_23x17.gif", transparency=200)
    (imgs / "partial_frame_20x16.gif").write_bytes(gif_partial_frame(grng, 20, 16, transparency=3))
    (imgs / "partial_frame_opaque_20x16.gif").write_bytes(gif_partial_frame(grng, 20, 16, transparency=None))
    # A 16-bit grayscale PNG with a tRNS chunk: PIL opens it as I;16 (transparency in info) and
    # convert("RGB") clips each value at 255 (libvips gives it an alpha channel). Values around 255.
    xrng = np.random.default_rng(2027)
    Image.fromarray(xrng.integers(0, 600, size=(11, 13), dtype=np.uint16)).save(imgs / "gray16_trns_13x11.png", transparency=300)
    # TIFF: PIL applies the orientation as it loads (TiffImageFile.load_end calls
    # ImageOps.exif_transpose): tag 274, else tiff:Orientation in the XMP packet (tag 700); every
    # orientation, the libtiff path (LZW), I;16 and CMYK. Opened by path, an uncompressed one-strip
    # file in a mode PIL maps into memory (L, P, RGBA, CMYK, I;16) with orientation 5-8 is mapped
    # with the swapped size, its stored rows cut up anew, before it is turned (ImageFile.load); in
    # several strips (RowsPerStrip 1) it is decoded and only turned. (A value outside 1-8: libvips
    # refuses the file.)
    from PIL import TiffImagePlugin

    trgb = Image.fromarray(xrng.integers(0, 256, size=(4, 7, 3), dtype=np.uint8), "RGB")
    for o in range(1, 9):
        trgb.save(imgs / f"rgb_7x4_o{o}.tif", tiffinfo={274: o})
    trgb.save(imgs / "rgb_7x4_o6_lzw.tif", tiffinfo={274: 6}, compression="tiff_lzw")
    Image.fromarray(xrng.integers(0, 600, size=(4, 5), dtype=np.uint16)).save(imgs / "gray16_5x4_o5.tif", tiffinfo={274: 5})
    tcmyk = Image.fromarray(xrng.integers(0, 256, size=(3, 5, 4), dtype=np.uint8), "CMYK")
    tcmyk.save(imgs / "cmyk_5x3_o7.tif", tiffinfo={274: 7})
    tcmyk.save(imgs / "cmyk_5x3_o3.tif", tiffinfo={274: 3})
    tcmyk.save(imgs / "cmyk_5x3_o6_strips.tif", tiffinfo={274: 6, 278: 1})
    Image.fromarray(xrng.integers(0, 256, size=(4, 6), dtype=np.uint8), "L").save(imgs / "gray_6x4_o6.tif", tiffinfo={274: 6})
    Image.fromarray(xrng.integers(0, 256, size=(3, 5, 4), dtype=np.uint8), "RGBA").save(imgs / "rgba_5x3_o8.tif", tiffinfo={274: 8})
    tpal = Image.fromarray(xrng.integers(0, 256, size=(4, 6, 3), dtype=np.uint8), "RGB").quantize(colors=8)
    tpal.save(imgs / "palette_6x4_o5.tif", tiffinfo={274: 5})
    xmp = TiffImagePlugin.ImageFileDirectory_v2()
    xmp[700] = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="8"/></rdf:RDF></x:xmpmeta>')
    xmp.tagtype[700] = 1  # BYTE
    trgb.save(imgs / "rgb_7x4_xmp_o8.tif", tiffinfo=xmp)
    # AVIF: Pillow (libavif) writes an EXIF orientation as irot / imir properties and opens the file
    # unturned; libheif turns it (the runtime undoes that). 4:4:4 at quality 100: within 1 level.
    tavif = Image.fromarray(xrng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8), "RGB")
    for o in (1, 2, 3, 5, 6, 7):
        ex = Image.Exif()
        ex[0x0112] = o
        tavif.save(imgs / f"rgb_7x5_o{o}.avif", exif=ex, quality=100, subsampling="4:4:4")
    # TIFF with associated alpha: PIL unpacks "RGBa" as floor(c * 255 / a) (0 where a is 0); libvips'
    # float32 division falls one short where that is a whole number: every such (c, a) of 8 bits
    # (found exhaustively), then random premultiplied pixels and alpha 0 / 255
    short = [(7, 7), (14, 14), (28, 28), (41, 41), (56, 56), (63, 63), (82, 82), (91, 91), (101, 101), (112, 112),
             (113, 113), (119, 119), (123, 123), (126, 126), (163, 163), (164, 164), (182, 182), (191, 191),
             (197, 197), (202, 202), (207, 207), (209, 209), (223, 223), (224, 224), (226, 226), (229, 229),
             (233, 233), (237, 237), (79, 237), (158, 237), (238, 238), (239, 239), (246, 246), (252, 252)]
    assoc = np.zeros((6, 12, 4), np.uint8).reshape(-1, 4)
    alpha = xrng.integers(0, 256, size=len(assoc))
    alpha[-2:] = (0, 255)
    for i in range(len(assoc)):
        a = int(alpha[i])
        assoc[i] = [*xrng.integers(0, a + 1, size=3), a]
    for i, (c, a) in enumerate(short):
        assoc[i] = [c, c, xrng.integers(0, a + 1), a]
    (imgs / "rgba_associated_12x6.tif").write_bytes(tiff_rgba_associated(assoc.reshape(6, 12, 4)))
    # PIL opens no SVG (transformers refuses it), though libvips would rasterise one
    (imgs / "vector.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" fill="red"/></svg>\n')

    # ---- decode: PIL's np.array(Image.open(p).convert("RGB")) -----------------------------------
    decoded: dict[str, np.ndarray] = {}
    for p in sorted(imgs.iterdir()):
        try:
            with Image.open(p) as im:
                mode = im.mode
                arr = np.array(im.convert("RGB"))
        except Exception as e:  # noqa: BLE001 - recorded as an expected failure
            cases["decode"].append({"file": p.name, "error": type(e).__name__})
            continue
        decoded[p.name] = arr
        case = {"file": p.name, "mode": mode, "lossless": p.suffix in (".png", ".gif", ".tif") or "lossless" in p.name,
                "rgb": blob.add(arr)}
        # opened from bytes (no file to map into memory) PIL can differ: see the TIFFs above
        with Image.open(io.BytesIO(p.read_bytes())) as im:
            from_bytes = np.array(im.convert("RGB"))
        if not np.array_equal(from_bytes, arr):
            case["rgb_from_bytes"] = blob.add(from_bytes)
        cases["decode"].append(case)

    # ---- resize: Image.resize on the RGB image ---------------------------------------------------
    def add_resize(src_name: str, arr: np.ndarray, w: int, h: int, resample: int, store: bool = True) -> None:
        out = np.array(Image.fromarray(arr, "RGB").resize((w, h), resample=resample))
        cases["resize"].append({"input": src_name, "width": w, "height": h, "resample": resample,
                                "out": blob.add(out, store)})

    all_filters = [NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING]
    targets = {
        "rgb_37x23.png": [(64, 64), (16, 9), (37, 23), (80, 11), (5, 50), (1, 1), (36, 22), (38, 24)],
        "rgb_83x61.png": [(24, 24), (384 // 8, 384 // 8), (17, 90), (83, 61), (13, 7),
                      # pass order (Pillow 13): vertical first iff the height shrinks by more than
                      # twice as many pixels as the width
                      (70, 20), (73, 41), (72, 38), (90, 60)],
        "rgb_7x5.png": [(30, 40), (3, 2), (7, 5), (8, 5)],
        "rgb_1x1.png": [(4, 3), (1, 1)],
        "photo_100x75.png": [(32, 32), (57, 43), (128, 96)],
        "gray_41x29.png": [(24, 24)],
        "rgba_30x20.png": [(24, 24)],
        "palette_33x17.png": [(24, 24)],
    }
    for name, sizes in targets.items():
        for (w, h) in sizes:
            for f in all_filters:
                add_resize(name, decoded[name], w, h, f)
    big = formula_image(1203, 907)
    for (w, h), f in [((384, 384), BICUBIC), ((224, 224), BILINEAR), ((160, 120), BICUBIC), ((96, 96), LANCZOS),
                      ((200, 150), NEAREST), ((384, 384), NEAREST), ((364, 480), BICUBIC), ((2000, 17), BICUBIC)]:
        add_resize("formula:1203x907", big, w, h, f, store=w * h <= 160 * 120)

    # ---- pipeline: BlipImageProcessorPil (transformers' PIL backend) ------------------------------
    configs = {
        "clip_bicubic": dict(size={"height": 24, "width": 32}, resample=BICUBIC),
        "half_bilinear": dict(size={"height": 20, "width": 20}, resample=BILINEAR, image_mean=[0.5, 0.5, 0.5],
                              image_std=[0.5, 0.5, 0.5]),
        "no_normalize_lanczos": dict(size={"height": 17, "width": 29}, resample=LANCZOS, do_normalize=False),
        "nearest_rescale": dict(size={"height": 16, "width": 16}, resample=NEAREST, rescale_factor=1 / 127.5,
                                image_mean=[0.1, 0.2, 0.3], image_std=[0.9, 0.8, 0.7]),
    }
    pipe_inputs = ["rgb_37x23.png", "gray_41x29.png", "rgba_30x20.png", "palette_33x17.png", "photo_100x75.png",
                   "photo_64x48.jpg", "rgb_37x23_lossless.webp", "photo_64x48_lossy.webp", "la_13x19.png",
                   "bilevel_21x15.png"]
    for cname, kw in configs.items():
        proc = BlipImageProcessorPil(**kw)
        d = OUT / "configs" / cname
        d.mkdir(parents=True)
        proc.save_pretrained(d)  # preprocessor_config.json
        # transformers 5 layout: the image processor nested in processor_config.json
        nested = {"image_processor": json.loads((d / "preprocessor_config.json").read_text()),
                  "processor_class": "BlipProcessor"}
        (d / "processor_config.json").write_text(json.dumps(nested, indent=2, sort_keys=True) + "\n")
        ims = []
        for n in pipe_inputs:
            ims.append(Image.open(imgs / n))
        pv = proc(images=ims, return_tensors="np")["pixel_values"].astype(np.float32)
        # each image alone, too (the batch must equal the rows)
        cases["pipeline"].append({"config": cname, "inputs": pipe_inputs, "pixel_values": blob.add(pv),
                                  "settings": {"size": {"height": proc.size.height, "width": proc.size.width}, "resample": int(proc.resample),
                                               "rescale_factor": proc.rescale_factor,
                                               "do_normalize": proc.do_normalize, "image_mean": proc.image_mean,
                                               "image_std": proc.image_std, "do_convert_rgb": proc.do_convert_rgb}})
        cases["configs"].append(cname)

    # a transformers-5 processor_config.json written by a real processor (BLIP: image processor + BERT tokenizer)
    with tempfile.TemporaryDirectory() as td:
        from transformers import BertTokenizerFast, BlipProcessor

        vocab = Path(td) / "vocab.txt"
        vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of"]) + "\n")
        tok = BertTokenizerFast(vocab_file=str(vocab))
        proc = BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": 24, "width": 32}), tokenizer=tok)
        sd = Path(td) / "saved"
        proc.save_pretrained(sd)
        d = OUT / "configs" / "saved_by_processor"
        d.mkdir(parents=True)
        for f in ("processor_config.json", "preprocessor_config.json"):
            if (sd / f).exists():
                shutil.copy(sd / f, d / f)
        cases["saved_by_processor"] = sorted(p.name for p in d.iterdir())

    with open(OUT / "expected.bin.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        for part in blob.parts:
            f.write(part)
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1, sort_keys=True) + "\n")
    print("wrote", OUT, blob.offset, "bytes of expected data")


if __name__ == "__main__":
    main()
