"""A generated dataset for metric learning and retrieval: a photo, a sound and a description per row, 8 classes.

Each class has one cue per modality:
- the photo: a shape of the class's colour (`red_circle`, `blue_square`, ...) at a random place and size on a
  noisy dark background;
- the sound: a tone at the class's pitch (log-spaced from 250 to 3000 Hz, ±3%) with a random loudness, fades and
  noise; 0.5 s mono at 8000 Hz by default, so read it with `sample_rate: 8000` and `max_seconds: 0.5`;
- the description: one of the class's words among filler words.

Every cue is imperfect: with probability `confusion` (0.3), independently per row and per modality, a modality
shows a random other class's cue instead. A model that reads one modality perfectly is right at most 70% of the
time, one that reads two at most 79%, one that reads all three at most 88% (`cue_ceiling` computes these), so
fusing the modalities beats any single one.

Classes are imbalanced: their sizes fall off geometrically from the first to the last, the largest about
`imbalance` (9) times the smallest. Each class is split 70/15/15 on its own, so every split holds every class in
the same proportions.

`make_generated_images` draws further photos from the same class-conditional generator, without confusion: the
stand-ins for images a diffusion model would make, for filling up rare classes (`data.augment.generated`).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from plait.demo.synthetic import OPENINGS, PLACES
from plait.demo.synthetic_media import tone, write_audio

# class → (colour, shape, words); the class sizes fall off in this order
CLASSES = {
    "red_circle": ((220, 40, 40), "circle", ["cherry", "ruby", "tomato", "crimson"]),
    "blue_square": ((40, 70, 220), "square", ["ocean", "sapphire", "denim", "cobalt"]),
    "green_triangle": ((40, 180, 60), "triangle", ["forest", "emerald", "moss", "lime"]),
    "yellow_star": ((230, 210, 40), "star", ["lemon", "golden", "sunflower", "canary"]),
    "purple_ring": ((150, 60, 200), "ring", ["violet", "plum", "lavender", "grape"]),
    "orange_cross": ((240, 140, 30), "cross", ["tangerine", "pumpkin", "amber", "apricot"]),
    "cyan_diamond": ((40, 200, 210), "diamond", ["turquoise", "lagoon", "teal", "aqua"]),
    "white_bar": ((230, 230, 230), "bar", ["snow", "ivory", "chalk", "pearl"]),
}
LABELS = list(CLASSES)
PITCHES = dict(zip(LABELS, np.geomspace(250.0, 3000.0, len(LABELS))))  # Hz
SPLIT_SHARES = (("validation", 0.15), ("test", 0.15))  # the rest of each class is train


def polygon(cx: float, cy: float, radius: float, corners: int, start: float, inner: float = 1.0) -> list[tuple[float, float]]:
    """A regular polygon (`inner` = 1) or a star (every other point at `inner` × `radius`)."""
    points = corners * (1 if inner == 1.0 else 2)
    return [(cx + radius * (1 if k % 2 == 0 else inner) * math.cos(start + 2 * math.pi * k / points),
             cy + radius * (1 if k % 2 == 0 else inner) * math.sin(start + 2 * math.pi * k / points))
            for k in range(points)]


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: int, cy: int, r: int, colour: tuple) -> None:
    box = [cx - r, cy - r, cx + r, cy + r]
    thin = max(2, r // 3)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=thin)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "bar":
        draw.rectangle([cx - r, cy - thin, cx + r, cy + thin], fill=colour)
    elif shape == "cross":
        draw.rectangle([cx - r, cy - thin // 2, cx + r, cy + thin // 2], fill=colour)
        draw.rectangle([cx - thin // 2, cy - r, cx + thin // 2, cy + r], fill=colour)
    elif shape == "triangle":
        draw.polygon(polygon(cx, cy, r, 3, -math.pi / 2), fill=colour)
    elif shape == "diamond":
        draw.polygon(polygon(cx, cy, r, 4, 0.0), fill=colour)
    elif shape == "star":
        draw.polygon(polygon(cx, cy, r, 5, -math.pi / 2, inner=0.45), fill=colour)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def class_image(label: str, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """The class's shape in its colour (±25 per channel) at a random place and size, on a noisy dark background."""
    colour, shape, _ = CLASSES[label]
    colour = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in colour)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 70, 3)))
    radius = int(rng.integers(max(3, size // 5), max(4, size // 3) + 1))
    cx, cy = (int(v) for v in rng.integers(radius, size - radius, 2))
    draw_shape(ImageDraw.Draw(image), shape, cx, cy, radius, colour)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-20, 21, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def class_sound(label: str, rng: np.random.Generator, seconds: float, sample_rate: int) -> np.ndarray:
    """A tone at the class's pitch (±3%), random loudness, 20 ms fades, background noise; float32 [S]."""
    pitch = PITCHES[label] * rng.uniform(0.97, 1.03)
    wave = tone(pitch, seconds, sample_rate, amplitude=float(rng.uniform(0.2, 0.5)))
    ramp = np.clip(np.minimum(np.arange(wave.size), wave.size - 1 - np.arange(wave.size)) / (0.02 * sample_rate), 0, 1)
    noise = rng.normal(0, 0.03, wave.size)
    return np.clip(wave * ramp + noise, -1, 1).astype(np.float32)


def class_description(label: str, rng: np.random.Generator) -> str:
    return f"{rng.choice(OPENINGS)} {rng.choice(CLASSES[label][2])} {rng.choice(PLACES)}."


def class_sizes(rows: int, imbalance: float) -> dict[str, int]:
    """Rows per class, falling off geometrically so the first class has `imbalance` times the last's share
    (largest-remainder rounding, so they add up to `rows`)."""
    shares = imbalance ** (-np.arange(len(LABELS)) / (len(LABELS) - 1))
    exact = rows * shares / shares.sum()
    sizes = np.floor(exact).astype(int)
    for index in np.argsort(sizes - exact)[: rows - sizes.sum()]:
        sizes[index] += 1
    return dict(zip(LABELS, sizes.tolist()))


def class_splits(size: int, rng: np.random.Generator) -> list[str]:
    """A shuffled split name per row of one class: 15% validation, 15% test (at least one each), the rest train."""
    held = [name for name, share in SPLIT_SHARES for _ in range(max(1, round(share * size)))]
    splits = held + ["train"] * (size - len(held))
    return rng.permutation(splits).tolist()


def cue_of(label: str, confusion: float, rng: np.random.Generator) -> str:
    """The class whose cue a modality shows: the row's own, or with probability `confusion` a random other."""
    if rng.random() >= confusion:
        return label
    return LABELS[(LABELS.index(label) + int(rng.integers(1, len(LABELS)))) % len(LABELS)]


def cue_ceiling(modalities: int = 1, confusion: float = 0.3, imbalance: float = 9.0) -> float:
    """The best expected accuracy of a model that reads `modalities` cues perfectly: for every combination of
    cues, guess the class most likely to have produced it (the Bayes decision, class sizes included)."""
    prior = np.array(list(class_sizes(10**6, imbalance).values()), dtype=np.float64) / 10**6
    k = len(LABELS)
    shows = np.full((k, k), confusion / (k - 1))  # shows[true, cue]
    np.fill_diagonal(shows, 1 - confusion)
    correct = 0.0
    for cues in itertools.product(range(k), repeat=modalities):
        correct += max(prior[y] * np.prod([shows[y, c] for c in cues]) for y in range(k))
    return float(correct)


def make_retrieval(folder: str | Path, rows: int = 1200, seed: int = 0, image_size: int = 32, confusion: float = 0.3,
                   imbalance: float = 9.0, seconds: float = 0.5, sample_rate: int = 8000) -> Path:
    """Write `images/NNNNN.png`, `audio/NNNNN.wav` and `retrieval.csv` (photo, sound, description, label, split)
    into `folder`; return the CSV path."""
    sizes = class_sizes(rows, imbalance)
    if min(sizes.values()) < 3:
        raise ValueError(f"{rows} rows leave the smallest class fewer than 3 rows (one per split); use more rows")
    folder = Path(folder)
    for sub in ("images", "audio"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labelled = [(label, split) for label, size in sizes.items() for split in class_splits(size, rng)]
    records = []
    for row in rng.permutation(len(labelled)).tolist():
        label, split = labelled[row]
        photo, sound = f"images/{len(records):05d}.png", f"audio/{len(records):05d}.wav"
        class_image(cue_of(label, confusion, rng), rng, image_size).save(folder / photo)
        write_audio(folder / sound, class_sound(cue_of(label, confusion, rng), rng, seconds, sample_rate), sample_rate)
        description = class_description(cue_of(label, confusion, rng), rng)
        records.append({"photo": photo, "sound": sound, "description": description, "label": label, "split": split})
    table = folder / "retrieval.csv"
    pd.DataFrame(records).to_csv(table, index=False)
    return table


def make_generated_images(folder: str | Path, labels: list[str], per_class: int, seed: int = 1,
                          image_size: int = 32) -> Path:
    """Write `folder/<label>/gen_NNNN.png`, `per_class` clean photos of each class (no confusion); return `folder`."""
    unknown = sorted(set(labels) - set(CLASSES))
    if unknown:
        raise ValueError(f"unknown classes {', '.join(unknown)}; the classes are {', '.join(LABELS)}")
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for label in labels:
        (folder / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            class_image(label, rng, image_size).save(folder / label / f"gen_{index:04d}.png")
    return folder
