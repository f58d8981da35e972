"""Generated photos of many object kinds, one caption each, in Kaggle's Flickr30k layout: a captioning benchmark
that only a model that looks at the image can do well on (`benchmarks/caption_grounding.py`, `plait demo --recipe
grounding`).

An object kind is a shape (7), a surface (solid, striped, outlined, checked) and a mark (none, a hole, a slit):
84 kinds, each drawn in one to three (or two to four) photos, as in a real set of many distinct objects with a photo
or two each. A photo shows one, two or three objects of its kind in one of 8 colours, grouped on the left, on the
right, at the top or at the bottom, and its caption says all of it: "two red striped stars with holes on the
left." The language prior knows the sentence but none of its content; the nearest training photo by pixels shares
the colour and the place (most of what a thumbnail holds) but seldom the kind or the count; every word is seen in
dozens of photos, so a captioner can learn each one and must put them together. A third of the photos are RGBA
PNGs whose background is transparent over random colours, as product photos often are.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from plait.demo.synthetic_captions import write_flickr30k

COLOURS = {"red": (210, 30, 30), "green": (30, 150, 50), "blue": (35, 65, 215), "yellow": (230, 190, 0),
           "purple": (130, 40, 170), "orange": (245, 120, 10), "black": (20, 20, 20), "pink": (240, 110, 180)}
SURFACES = ("solid", "striped", "outlined", "checked")
MARKS = ("plain", "holed", "slit")  # nothing cut out, a round hole in the middle, a vertical slit through it
SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "hexagon")
PLURALS = {"cross": "crosses"}
COUNTS = {1: "a", 2: "two", 3: "three"}
PLACES = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}


class Kind(NamedTuple):
    shape: str
    surface: str
    mark: str


def outline(shape: str, side: float) -> list[tuple[float, float]] | None:
    """The polygon of `shape` in a `side`-pixel box from (0, 0); None for the circle (an ellipse)."""
    h = side / 2
    if shape == "circle":
        return None
    if shape == "square":
        return [(0, 0), (side, 0), (side, side), (0, side)]
    if shape == "triangle":
        return [(h, 0), (side, side), (0, side)]
    if shape == "diamond":
        return [(h, 0), (side, h), (h, side), (0, h)]
    if shape == "cross":
        t = side / 3
        return [(t, 0), (2 * t, 0), (2 * t, t), (side, t), (side, 2 * t), (2 * t, 2 * t), (2 * t, side), (t, side),
                (t, 2 * t), (0, 2 * t), (0, t), (t, t)]
    corners = 6 if shape == "hexagon" else 10
    radii = [h] * 6 if shape == "hexagon" else [h, h * 0.45] * 5  # a star alternates outer and inner points
    return [(h + r * math.sin(2 * math.pi * i / corners), h - r * math.cos(2 * math.pi * i / corners))
            for i, r in enumerate(radii)]


def shape_mask(shape: str, surface: str, mark: str, side: int) -> Image.Image:
    """An L mask of one object: the filled shape, its stripes, checks or rim, less its mark."""
    def filled(box_side: float, offset: float) -> Image.Image:
        mask = Image.new("L", (side, side), 0)
        draw = ImageDraw.Draw(mask)
        points = outline(shape, box_side)
        if points is None:
            draw.ellipse([offset, offset, offset + box_side - 1, offset + box_side - 1], fill=255)
        else:
            draw.polygon([(x + offset, y + offset) for x, y in points], fill=255)
        return mask

    mask = filled(side, 0)
    if mark != "plain":
        cut = Image.new("L", (side, side), 0)
        if mark == "holed":
            ImageDraw.Draw(cut).ellipse([side / 3, side / 3, 2 * side / 3, 2 * side / 3], fill=255)
        else:
            ImageDraw.Draw(cut).rectangle([side * 0.42, 0, side * 0.58, side], fill=255)
        mask = ImageChops.subtract(mask, cut)
    if surface == "outlined":
        rim = max(2, side // 6)
        return ImageChops.subtract(mask, filled(side - 2 * rim, rim))
    if surface == "solid":
        return mask
    cells = np.arange(side)
    pattern = cells[:, None] % 4 < 2 if surface == "striped" else (cells[:, None] // 3 + cells[None] // 3) % 2 == 0
    pattern = np.broadcast_to(pattern, (side, side))
    return ImageChops.multiply(mask, Image.fromarray(np.where(pattern, 255, 0).astype(np.uint8)))


def picture(kind: Kind, colour: str, count: int, place: str, rng: np.random.Generator, size: int) -> Image.Image:
    """`count` objects of `kind` in `colour`, in the `place` half of a light, noisy `size`-pixel image."""
    background = np.clip(rng.integers(220, 250, 3) + rng.normal(0, 4, (size, size, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(background)
    half, side = size // 2, max(9, round(size * 0.27))
    mask = shape_mask(kind.shape, kind.surface, kind.mark, side)
    for slot in sorted(rng.choice(3, size=count, replace=False)):  # three slots along the half's long side
        along = int(slot * size / 3 + rng.integers(0, max(1, size // 3 - side + 1)))
        across = int(rng.integers(0, half - side + 1)) + (half if place in ("right", "bottom") else 0)
        left, top = (across, along) if place in ("left", "right") else (along, across)
        image.paste(COLOURS[colour], (left, top, left + side, top + side), mask)
    return image


def with_hidden_background(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The same picture as RGBA: the light background made transparent, random colours stored under it."""
    pixels = np.asarray(image)
    background = pixels.min(axis=2) > 200
    noise = rng.integers(0, 256, pixels.shape).astype(np.uint8)
    rgb = np.where(background[..., None], noise, pixels)
    alpha = np.where(background, 0, 255).astype(np.uint8)
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def kinds() -> list[Kind]:
    """Every shape × surface × mark: 84 kinds."""
    return [Kind(shape, surface, mark) for shape in SHAPES for surface in SURFACES for mark in MARKS]


def caption(kind: Kind, colour: str, count: int, place: str) -> str:
    """The caption of a photo: "two red striped stars with holes on the left."."""
    shapes = kind.shape if count == 1 else PLURALS.get(kind.shape, kind.shape + "s")
    marks = {"plain": "", "holed": " with a hole" if count == 1 else " with holes",
             "slit": " with a slit" if count == 1 else " with slits"}
    return f"{COUNTS[count]} {colour} {kind.surface} {shapes}{marks[kind.mark]} {PLACES[place]}."


ATTRIBUTES = ("count", "colour", "surface", "shape", "mark", "place")
_CAPTION = re.compile(r"(a|two|three) (\w+) (\w+) (\w+)(?: with (?:a )?(hole|slit)s?)? "
                      r"(on the left|on the right|at the top|at the bottom)\.?")
_SINGULAR = {PLURALS.get(shape, shape + "s"): shape for shape in SHAPES}


def attributes(text: str) -> dict[str, str] | None:
    """What a caption in `caption`'s form says, by attribute, in the words of `Kind` and `PLACES`' keys (None: a
    caption not in that form)."""
    found = _CAPTION.fullmatch(text.strip().lower())
    if not found:
        return None
    count, colour, surface, shape, mark, place = found.groups()
    return {"count": count, "colour": colour, "surface": surface, "shape": _SINGULAR.get(shape, shape),
            "mark": {"hole": "holed", "slit": "slit"}.get(mark, "plain"), "place": place.split()[-1]}


def make_grounding(folder: Path, images_per_kind: tuple[int, int] = (1, 3), size: int = 64, seed: int = 0) -> Path:
    """Write the benchmark under `folder` (the same bytes for the same arguments): every kind in between
    `images_per_kind` images, one caption each. Returns the path of results.csv."""
    rng = np.random.default_rng(seed)
    low, high = images_per_kind
    scenes = [(kind, str(rng.choice(list(COLOURS))), int(rng.integers(1, 4)), str(rng.choice(list(PLACES))))
              for kind in kinds() for _ in range(int(rng.integers(low, high + 1)))]
    order = rng.permutation(len(scenes))

    def pictures():
        for index in order:
            image = picture(*scenes[index], rng, size)
            if rng.random() < 1 / 3:
                image = with_hidden_background(image, rng)
            yield image, [caption(*scenes[index])]

    return write_flickr30k(folder, len(scenes), pictures(), rng)
