"""Generated datasets for the demo and the tests, written in the layouts plait reads (CSV + image files).

The demo's label needs every modality: class = shape in the photo × weather word in the note × sign of the
reading (8 classes). Any one input alone gives at most 25% accuracy, any two 50%; all three together 100%.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

WARM = ["sunny", "hot", "warm", "bright", "summery", "balmy", "scorching", "mild"]
COLD = ["icy", "freezing", "cold", "snowy", "wintry", "frosty", "chilly", "bitter"]
OPENINGS = ["the afternoon felt", "this morning was", "our walk was", "the market seemed", "the evening turned", "the trip was"]
PLACES = ["by the river", "in the old town", "near the station", "at the harbour", "on the hill", "in the park"]
SHAPES = ["round", "square"]


def shape_image(shape: str, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """A filled circle or square of random colour, size and position on a random dark background, with noise."""
    background = tuple(int(v) for v in rng.integers(0, 90, 3))
    colour = tuple(int(v) for v in rng.integers(140, 256, 3))
    image = Image.new("RGB", (size, size), background)
    radius = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(radius + 1, size - radius - 1, 2))
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    draw = ImageDraw.Draw(image)
    (draw.ellipse if shape == "round" else draw.rectangle)(box, fill=colour)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-20, 21, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def weather_note(warm: bool, rng: np.random.Generator) -> str:
    word = rng.choice(WARM if warm else COLD)
    return f"{rng.choice(OPENINGS)} {word} {rng.choice(PLACES)}."


def make_demo(folder: str | Path, rows: int = 1500, seed: int = 0, image_size: int = 32) -> Path:
    """Write `images/*.png` and `demo.csv` (photo, note, reading, label, split) into `folder`; return the CSV path."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records = []
    for row in range(rows):
        shape = SHAPES[int(rng.integers(2))]
        warm, positive = bool(rng.integers(2)), bool(rng.integers(2))
        path = f"images/{row:05d}.png"
        shape_image(shape, rng, image_size).save(folder / path)
        reading = (1 if positive else -1) * rng.uniform(0.5, 2.0) + rng.normal(0, 0.1)
        label = f"{shape}_{'warm' if warm else 'cold'}_{'up' if positive else 'down'}"
        split = rng.choice(["train", "validation", "test"], p=[0.7, 0.15, 0.15])
        records.append({"photo": path, "note": weather_note(warm, rng), "reading": round(float(reading), 4), "label": label, "split": split})
    table = folder / "demo.csv"
    pd.DataFrame(records).to_csv(table, index=False)
    return table
