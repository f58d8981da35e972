"""Generated image–caption pairs in Kaggle's Flickr30k layout: `flickr30k_images/results.csv` (pipe-separated,
header `image_name| comment_number| comment`, five captions per image) and the JPEGs in
`flickr30k_images/flickr30k_images/<id>.jpg`.

Each image shows two shapes on a light, slightly noisy background, one clearly above or to the left of the
other. A shape has a colour (red, green, blue, yellow), a kind (circle, square, triangle) and a size (small,
about 1/6 of the image; large, about 1/3). The captions name both shapes, in either order, with the relation
word that fits that order ("a red circle above a small blue square", "a small blue square below a red circle"),
from several templates and synonyms. So a captioning model must learn to see each shape's colour, kind and size,
to bind those words to the right shape, and to pick the relation that matches the order it chose; no caption
word can be guessed from the others alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HEADER = "image_name| comment_number| comment"
COLOURS = {"red": (215, 35, 35), "green": (30, 150, 50), "blue": (35, 65, 215), "yellow": (225, 185, 0)}
KINDS = {"circle": ["circle", "circle", "disc"], "square": ["square", "square", "box"], "triangle": ["triangle"]}
SIZES = {"small": ["small", "little", "tiny"], "large": ["large", "big"]}
# (first relation second, second relation first): the first shape is the upper or the left one
RELATIONS = {
    "vertical": (["above", "over", "on top of"], ["below", "under", "beneath"]),
    "horizontal": (["to the left of", "left of"], ["to the right of", "right of"]),
}
TEMPLATES = [
    "{a} {rel} {b}",
    "{b} {rev} {a}",
    "there is {a} {rel} {b}",
    "{a} and {b} {rev} it",
    "two shapes: {a} {rel} {b}",
    "{b} with {a} {rel} it",
    "{a} sits {rel} {b}",
    "{b} is {rev} {a}",
]


def phrase(shape: dict, rng: np.random.Generator) -> str:
    """`a small red circle`, the size word said about half the time."""
    words = [rng.choice(SIZES[shape["size"]])] if rng.random() < 0.5 else []
    return " ".join(["a", *words, shape["colour"], rng.choice(KINDS[shape["kind"]])])


def captions_for(first: dict, second: dict, relation: str, rng: np.random.Generator, count: int = 5) -> list[str]:
    """`count` different captions of one image; some capitalised, some ending in ` .` as Flickr's do."""
    forward, backward = RELATIONS[relation]
    captions: list[str] = []
    for template in rng.permutation(TEMPLATES):
        text = template.format(a=phrase(first, rng), b=phrase(second, rng), rel=rng.choice(forward), rev=rng.choice(backward))
        text = text[0].upper() + text[1:] if rng.random() < 0.5 else text
        captions.append(text + " ." if rng.random() < 0.5 else text)
        if len(captions) == count:
            return captions
    raise ValueError(f"only {len(TEMPLATES)} templates for {count} captions")


def draw_shape(draw: ImageDraw.ImageDraw, shape: dict, left: int, top: int, side: int) -> None:
    box = [left, top, left + side - 1, top + side - 1]
    colour = COLOURS[shape["colour"]]
    if shape["kind"] == "circle":
        draw.ellipse(box, fill=colour)
    elif shape["kind"] == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(left + side / 2, top), (left + side - 1, top + side - 1), (left, top + side - 1)], fill=colour)


def two_shapes(rng: np.random.Generator, size: int) -> tuple[Image.Image, dict, dict, str]:
    """An image with two different shapes, the first in the upper (or left) half, the second in the other."""
    while True:
        first, second = ({"colour": rng.choice(list(COLOURS)), "kind": rng.choice(list(KINDS)),
                          "size": rng.choice(list(SIZES))} for _ in range(2))
        if (first["colour"], first["kind"]) != (second["colour"], second["kind"]):
            break
    relation = "vertical" if rng.random() < 0.5 else "horizontal"
    background = rng.integers(225, 250, 3) + rng.normal(0, 4, (size, size, 3))
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    half, wobble = size // 2, max(1, size // 12)
    line = int(rng.integers(size // 6 + wobble, size - size // 6 - wobble))  # both centres near one line across
    for index, shape in enumerate((first, second)):
        side = max(3, round(size / (6 if shape["size"] == "small" else 3)))
        along = index * half + int(rng.integers(1, max(2, half - side)))  # inside its own half: no overlap
        across = int(np.clip(line + rng.integers(-wobble, wobble + 1) - side // 2, 0, size - side))
        left, top = (across, along) if relation == "vertical" else (along, across)
        draw_shape(draw, shape, left, top, side)
    return image, first, second, relation


def make_flickr30k(folder: Path, images: int = 600, size: int = 64, seed: int = 0) -> Path:
    """Write the layout under `folder` (the same bytes for the same arguments); return the path of results.csv."""
    rng = np.random.default_rng(seed)

    def pictures():
        for _ in range(images):
            image, first, second, relation = two_shapes(rng, size)
            yield image, captions_for(first, second, relation, rng)

    return write_flickr30k(folder, images, pictures(), rng)


def write_flickr30k(folder: Path, count: int, pictures: Iterator[tuple[Image.Image, list[str]]],
                    rng: np.random.Generator) -> Path:
    """Kaggle's Flickr30k layout under `folder` for `count` (image, captions) pairs, drawn from `pictures` after
    the ids: each image saved under a random 10-digit id (a JPEG; an RGBA image as a PNG), its captions numbered
    from 0. Returns the path of results.csv."""
    root = Path(folder) / "flickr30k_images"
    image_folder = root / "flickr30k_images"
    image_folder.mkdir(parents=True, exist_ok=True)
    ids = sorted({str(n) for n in rng.integers(1_000_000_000, 9_999_999_999, count * 2)})[:count]
    lines = [HEADER]
    for image_id, (image, captions) in zip(ids, pictures):
        name = f"{image_id}.png" if image.mode == "RGBA" else f"{image_id}.jpg"
        image.save(image_folder / name, **({} if image.mode == "RGBA" else {"quality": 90}))
        lines += [f"{name}| {number}| {caption}" for number, caption in enumerate(captions)]
    table = root / "results.csv"
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return table
