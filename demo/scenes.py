"""Procedural scenes for the blip-graph demo model.

A scene is 1-3 groups of identical shapes on a white canvas. Each group has one
shape (circle, square, triangle; the shapes of a scene are distinct), one colour,
one count (1-3) and one size (small / large). Groups sit in separate regions:
two groups side by side or one above the other, three groups in three columns or
three rows; groups side by side always overlap vertically (stacked ones
horizontally) and their centroids lie at least twice as far apart along the layout as
across it, so no picture fits both layouts and the caption is determined by
the picture. Everything is a pure function of the seed (Python's `random.Random`),
so `scene(seed)` gives the same picture, caption and questions on every machine.

Caption grammar (canonical, one caption per picture):

    group   := COUNT SIZE COLOUR SHAPE[s]          COUNT: a | two | three
    1 group : group
    2 groups: group_A REL group_B                  REL: left of | right of | above | below
              (A is the group whose shape comes first in circle, square, triangle;
               REL says where A is relative to B)
    3 groups: group_1, group_2 and group_3 from left to right | from top to bottom
              (groups listed in their spatial order)

e.g. "two small red circles above a large blue square".

Questions (answers are single words):
    what colour is the SHAPE? / what colour are the SHAPEs?   -> colour (shape present)
    what size is the SHAPE?   / what size are the SHAPEs?     -> small | large (shape present)
    how many SHAPEs are there?                                -> zero | one | two | three

Prompt formats (BLIP-2 OPT style): captions are generated with no prompt; a
question is asked as "Question: {q} Answer:" and answered as " {answer}". The model
ends every output with "\\n".

Command line: python demo/scenes.py --seed 7 --out /tmp/scene.png
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

CANVAS = 96
BACKGROUND = (255, 255, 255)
SHAPES = ("circle", "square", "triangle")  # also the order that picks the subject of a 2-group caption
COLOURS = {
    "red": (215, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 215),
    "yellow": (230, 195, 20),
    "purple": (135, 55, 175),
}
SIZES = {"small": (4, 5), "large": (8, 10)}  # half-extent in pixels (min, max)
COUNT_WORDS = {0: "zero", 1: "one", 2: "two", 3: "three"}
CAPTION_COUNT = {1: "a", 2: "two", 3: "three"}
MIN_OVERLAP = 4  # pixels, see _unambiguous
MAX_CROSS_RATIO = 0.5  # see _unambiguous
GAP = 2  # minimum free pixels between shapes and to a region's border

# Held-out seeds (evaluation, bundled examples) are >= EVAL_SEED_START; training uses seeds below it.
EVAL_SEED_START = 1_000_000_000


@dataclass
class Item:
    x: int
    y: int
    r: int


@dataclass
class Group:
    shape: str
    colour: str
    size: str
    count: int
    region: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    rgb: tuple[int, int, int]
    items: list[Item] = field(default_factory=list)

    def phrase(self) -> str:
        noun = self.shape + ("s" if self.count > 1 else "")
        return f"{CAPTION_COUNT[self.count]} {self.size} {self.colour} {noun}"


@dataclass
class Scene:
    seed: int
    groups: list[Group]
    layout: str  # "single" | "horizontal" | "vertical"
    caption: str
    qa: list[tuple[str, str]]

    def render(self) -> Image.Image:
        img = Image.new("RGB", (CANVAS, CANVAS), BACKGROUND)
        draw = ImageDraw.Draw(img)
        for g in self.groups:
            for it in g.items:
                draw_shape(draw, g.shape, it.x, it.y, it.r, g.rgb)
        return img

    def to_json(self) -> dict:
        return {
            "seed": self.seed,
            "layout": self.layout,
            "caption": self.caption,
            "qa": [{"question": q, "answer": a} for q, a in self.qa],
            "groups": [
                {
                    "shape": g.shape,
                    "colour": g.colour,
                    "size": g.size,
                    "count": g.count,
                    "items": [[it.x, it.y, it.r] for it in g.items],
                }
                for g in self.groups
            ],
        }


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, x: int, y: int, r: int, rgb) -> None:
    if shape == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=rgb)
    elif shape == "square":
        draw.rectangle([x - r, y - r, x + r, y + r], fill=rgb)
    elif shape == "triangle":
        draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=rgb)
    else:
        raise ValueError(shape)


def _regions(layout: str, n: int) -> list[tuple[int, int, int, int]]:
    if layout == "single":
        return [(0, 0, CANVAS, CANVAS)]
    step = CANVAS // n
    cuts = [i * step for i in range(n)] + [CANVAS]
    if layout == "horizontal":  # side by side: columns
        return [(cuts[i], 0, cuts[i + 1], CANVAS) for i in range(n)]
    return [(0, cuts[i], CANVAS, cuts[i + 1]) for i in range(n)]  # vertical: rows


def _place(rng: random.Random, g: Group) -> bool:
    x0, y0, x1, y1 = g.region
    lo, hi = SIZES[g.size]
    for _ in range(200):
        items: list[Item] = []
        ok = True
        for _k in range(g.count):
            r = rng.randint(lo, hi)
            xa, xb = x0 + r + GAP, x1 - 1 - r - GAP
            ya, yb = y0 + r + GAP, y1 - 1 - r - GAP
            if xa > xb or ya > yb:
                return False
            placed = False
            for _t in range(50):
                x, y = rng.randint(xa, xb), rng.randint(ya, yb)
                if all(abs(x - o.x) > r + o.r + GAP or abs(y - o.y) > r + o.r + GAP for o in items):
                    items.append(Item(x, y, r))
                    placed = True
                    break
            if not placed:
                ok = False
                break
        if ok:
            g.items = items
            return True
    return False


def _extent(g: Group, axis: int) -> tuple[int, int]:
    lo = min((it.x, it.y)[axis] - it.r for it in g.items)
    hi = max((it.x, it.y)[axis] + it.r for it in g.items)
    return lo, hi


def _centroid(g: Group) -> tuple[float, float]:
    return sum(it.x for it in g.items) / len(g.items), sum(it.y for it in g.items) / len(g.items)


def _unambiguous(layout: str, groups: list[Group]) -> bool:
    """Groups side by side must overlap vertically (stacked groups horizontally) by MIN_OVERLAP
    pixels, pairwise, and their centroids must be at most MAX_CROSS_RATIO as far apart across
    the layout as along it, so a picture never fits both layouts and reads clearly as one."""
    if layout == "single":
        return True
    cross = 1 if layout == "horizontal" else 0
    ext = [_extent(g, cross) for g in groups]
    cen = [_centroid(g) for g in groups]
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            if min(ext[i][1], ext[j][1]) - max(ext[i][0], ext[j][0]) < MIN_OVERLAP:
                return False
            d_cross = abs(cen[i][cross] - cen[j][cross])
            d_main = abs(cen[i][1 - cross] - cen[j][1 - cross])
            if d_cross > MAX_CROSS_RATIO * d_main:
                return False
    return True


def _plural(shape: str, count: int) -> str:
    return shape + ("s" if count > 1 else "")


def scene(seed: int) -> Scene:
    """The scene for one seed (deterministic)."""
    rng = random.Random(seed)
    while True:  # retries (consuming the same rng) only if placement fails
        n = rng.choices([1, 2, 3], weights=[2, 4, 3])[0]
        layout = "single" if n == 1 else rng.choice(["horizontal", "vertical"])
        shapes = rng.sample(SHAPES, n)  # order = spatial order (left->right or top->bottom)
        regions = _regions(layout, n)
        groups = []
        for shape, region in zip(shapes, regions):
            colour = rng.choice(list(COLOURS))
            base = COLOURS[colour]
            rgb = tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in base)
            groups.append(
                Group(shape, colour, rng.choice(list(SIZES)), rng.choice([1, 2, 3]), region, rgb)
            )
        placed = False
        for _try in range(100):
            if all(_place(rng, g) for g in groups) and _unambiguous(layout, groups):
                placed = True
                break
        if placed:
            break

    if n == 1:
        caption = groups[0].phrase()
    elif n == 2:
        a, b = sorted(groups, key=lambda g: SHAPES.index(g.shape))
        first = groups.index(a) == 0  # a is left / top
        if layout == "horizontal":
            rel = "left of" if first else "right of"
        else:
            rel = "above" if first else "below"
        caption = f"{a.phrase()} {rel} {b.phrase()}"
    else:
        p = [g.phrase() for g in groups]
        order = "from left to right" if layout == "horizontal" else "from top to bottom"
        caption = f"{p[0]}, {p[1]} and {p[2]} {order}"

    by_shape = {g.shape: g for g in groups}
    qa: list[tuple[str, str]] = []
    for shape in SHAPES:
        g = by_shape.get(shape)
        if g is not None:
            verb = "are the " if g.count > 1 else "is the "
            qa.append((f"what colour {verb}{_plural(shape, g.count)}?", g.colour))
            qa.append((f"what size {verb}{_plural(shape, g.count)}?", g.size))
        qa.append((f"how many {shape}s are there?", COUNT_WORDS[g.count if g else 0]))
    return Scene(seed, groups, layout, caption, qa)


def prompt(question: str) -> str:
    """The text prompt for a question (the model answers with ' {answer}\\n')."""
    return f"Question: {question} Answer:"


def eval_questions(s: Scene) -> list[tuple[str, str]]:
    """Three questions per held-out scene: one colour, one size, one count question (seeded by the scene)."""
    rng = random.Random(s.seed * 7 + 3)
    colour = [qa for qa in s.qa if qa[0].startswith("what colour")]
    size = [qa for qa in s.qa if qa[0].startswith("what size")]
    count = [qa for qa in s.qa if qa[0].startswith("how many")]
    return [rng.choice(colour), rng.choice(size), rng.choice(count)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the PNG here")
    a = ap.parse_args()
    s = scene(a.seed)
    if a.out:
        s.render().save(a.out)
    print(json.dumps(s.to_json(), indent=1))


if __name__ == "__main__":
    main()
