"""Regenerate the oracle fixtures under test/fixtures/ (deterministic: re-running gives identical files).

    cd /work/main && ../shared/oracle/py test/oracle/make_fixtures.py            # everything
    cd /work/main && ../shared/oracle/py test/oracle/make_fixtures.py --only tokenizers images
    cd /work/main && ../shared/oracle/py test/oracle/make_fixtures.py --only blip-caption-a

Names: "tokenizers", "images", "config-defaults", "blip" (all BLIP fixtures), "blip2", "instructblip", "untied", "position-cap", or a single fixture
directory name (e.g. blip-caption-a, blip2-opt-a). Fixtures depend on the tokenizers and images, so
build those first on a fresh checkout.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import FIXTURES, dir_size  # noqa: E402

GROUPS = {
    "tokenizers": ("build_tokenizers", "build_all", None),
    "images": ("images", "build_all", None),
    "config-defaults": ("config_defaults", "build_all", None),
    "blip": ("blip", "build", "FIXTURES"),
    "blip2": ("blip2", "build", "FIXTURES"),
    "instructblip": ("instructblip", "build", "FIXTURES"),
    "untied": ("untied", "build", None),  # edits blip-caption-a, blip-vqa-a, blip2-t5-a, blip2-opt-a, blip2-llama-a: after those
    "position-cap": ("position_cap", "build", None),  # edits BLIP, BLIP-2 and InstructBLIP fixtures: after those
}


def fixture_index() -> dict:
    """fixture name -> group, for groups that exist."""
    out = {}
    for group, (mod, _, listname) in GROUPS.items():
        if listname is None:
            continue
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod:
                continue
            raise
        for name in getattr(m, listname):
            out[name] = group
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="groups or fixture names")
    args = ap.parse_args()
    index = fixture_index()
    wanted = args.only or list(GROUPS)
    for name in wanted:
        t0 = time.time()
        if name in GROUPS:
            mod, fn, _ = GROUPS[name]
            try:
                m = importlib.import_module(mod)
            except ModuleNotFoundError as e:
                if e.name == mod and not args.only:
                    print(f"[skip] {name}: {mod}.py not written yet")
                    continue
                raise
            getattr(m, fn)()
        elif name in index:
            m = importlib.import_module(GROUPS[index[name]][0])
            m.build([name])
        else:
            sys.exit(f"unknown fixture or group {name!r}; known: {sorted(GROUPS) + sorted(index)}")
        print(f"[done] {name} in {time.time() - t0:.1f}s")
    print(f"test/fixtures total: {dir_size(FIXTURES) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
