"""Each column's role from its values: an input of some type, a target, the split, or left out; with the evidence.

Rules, in order: no values or one value → left out; a column of train / validation / test → the split; array cells
→ a sequence (2-D cells, cells of different lengths, or neighbouring values that move together, as a signal's do)
or a vector (fixed-length arrays whose neighbours do not: features, embeddings); paths with a media suffix → image,
video or audio, confirmed by opening a few of the files; numbers → numeric (a whole-number column with few values
→ category); other text → category (few distinct values, few words), an identifier (distinct in almost every row,
one word) or text. A target is a category, a number (binned when asked), or a caption (text with an image input).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from plait.data.columns import is_missing
from plait.data.tables import SPLIT_NAMES
from plait.errors import PlaitError

MEDIA_SUFFIXES = {
    "image": (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"),
    "video": (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"),
    "audio": (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".opus"),
    "sequence": (".npy", ".npz", ".pkl", ".pickle"),
}
PROBED_FILES = 3
FEW_CATEGORIES = 20  # a whole-number column with at most this many values is a category
ID_NAME = re.compile(r"(^|[_\s.])(id|ids|no|number)\.?$", re.IGNORECASE)  # dialogue_id, Dialogue_ID, Sr No.
SMOOTH = 0.5  # neighbouring values of a signal correlate above this; features and embeddings do not


@dataclass
class Decision:
    column: str
    role: str  # "input", "target", "split" or "left out"
    evidence: str
    type: str | None = None
    settings: dict = field(default_factory=dict)


def decide_all(table: pd.DataFrame, root: str, targets: list[str], binned: set[str]) -> list[Decision]:
    """A decision per column of `table` (targets first checked to exist); audio tracks of video inputs added."""
    for target in targets:
        if target not in table.columns:
            raise PlaitError(f"--target {target}: no such column (the table has {', '.join(map(str, table.columns))})")
    inputs = [decide_input(str(name), table[name], root) for name in table.columns if name not in targets]
    has_image = any(decision.type == "image" for decision in inputs)
    outputs = [decide_target(name, table[name], name in binned, has_image) for name in targets]
    return [*inputs, *outputs]


def present(values: pd.Series) -> list:
    return [value for value in values.tolist() if not is_missing(value)]


def decide_input(name: str, column: pd.Series, root: str) -> Decision:
    values = present(column)
    if not values:
        return Decision(name, "left out", "no values")
    if all(isinstance(value, (np.ndarray, list, tuple)) for value in values):
        return arrays(name, values)
    distinct = column_distinct(values)
    if distinct == 1:
        return Decision(name, "left out", f"one value in every row ({values[0]!r})")
    if {str(value).strip().lower() for value in values} <= set(SPLIT_NAMES):
        return Decision(name, "split", f"values {', '.join(sorted({str(v) for v in values}))}", settings={"column": name})
    if ID_NAME.search(name) or re.search(r"[a-z]Id$", name):  # also imageId
        return Decision(name, "left out", f"{distinct:,} distinct values, named as an identifier or a count")
    numbers = as_numbers(values)
    if numbers is not None:
        return numeric(name, numbers, distinct, len(values))
    media = media_type(values)
    if media is not None:
        return media_input(name, values, media, root)
    return text_or_category(name, [str(value) for value in values], distinct)


def examples(values: list, shown: int = 4) -> str:
    """The most frequent values: `joy, neutral, anger, ...`."""
    common = [text if len(text) <= 24 else text[:22] + "…"
              for text in pd.Series([str(value) for value in values]).value_counts().index[:shown]]
    return ", ".join(common) + (", ..." if column_distinct(values) > shown else "")


def column_distinct(values: list) -> int:
    return len({str(value) for value in values})


def as_numbers(values: list) -> np.ndarray | None:
    """The values as floats when (nearly) all of them are numbers (a CSV's cells arrive as text)."""
    if all(isinstance(value, (int, float, np.number)) and not isinstance(value, bool) for value in values):
        return np.asarray(values, dtype=float)
    parsed = pd.to_numeric(pd.Series([str(value) for value in values]), errors="coerce")
    return parsed.to_numpy(dtype=float) if parsed.notna().mean() >= 0.98 else None


def numeric(name: str, numbers: np.ndarray, distinct: int, count: int) -> Decision:
    whole = bool(np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)))
    if whole and distinct == count and count >= 20 and np.all(np.diff(numbers) > 0):
        return Decision(name, "left out", f"{distinct:,} distinct whole numbers, increasing row by row: an identifier")
    if whole and distinct <= FEW_CATEGORIES:
        return Decision(name, "input", f"{distinct} distinct whole numbers → category", "category")
    low, high = np.nanmin(numbers), np.nanmax(numbers)
    return Decision(name, "input", f"numbers from {low:g} to {high:g}, {distinct:,} distinct → numeric", "numeric")


def arrays(name: str, values: list) -> Decision:
    shapes = {np.shape(value) for value in values}
    if any(len(shape) == 2 for shape in shapes) or len(shapes) > 1:
        lengths = sorted({shape[0] for shape in shapes})
        return Decision(name, "input", f"arrays of {lengths[0]:,} to {lengths[-1]:,} steps → sequence", "sequence",
                        sequence_settings(lengths[-1]))
    (length,) = shapes.pop()
    correlation = neighbour_correlation(values[:200])
    if correlation > SMOOTH:
        return Decision(name, "input", f"arrays of {length:,} numbers whose neighbours correlate {correlation:.2f}: a "
                        "signal → sequence", "sequence", sequence_settings(length))
    return Decision(name, "input", f"arrays of {length:,} numbers whose neighbours do not correlate ({correlation:.2f}): "
                    "features → vector", "vector")


def neighbour_correlation(values: list) -> float:
    rows = np.asarray([np.asarray(value, dtype=float) for value in values])
    if rows.shape[1] < 3:
        return 0.0
    left, right = rows[:, :-1].ravel(), rows[:, 1:].ravel()
    if left.std() == 0 or right.std() == 0:
        return 0.0
    return float(np.corrcoef(left, right)[0, 1])


def sequence_settings(longest: int) -> dict:
    if longest >= 512:  # long signals: convolutions shorten them before the LSTM, as the binned CNN-LSTM recipe does
        return {"encoder": {"name": "cnn_lstm", "filters": 16, "blocks": 4, "pool": 4, "hidden": 32, "dense": [64]}}
    return {}


def media_type(values: list) -> str | None:
    suffixes = [os.path.splitext(str(value).split("?")[0])[1].lower() for value in values]
    for media, known in MEDIA_SUFFIXES.items():
        if sum(suffix in known for suffix in suffixes) >= 0.9 * len(values):
            return media
    return None


def media_input(name: str, values: list, media: str, root: str) -> Decision:
    from plait.starter.probe import probe_files

    paths = [str(value) if os.path.isabs(str(value)) or "://" in str(value) else os.path.join(root, str(value))
             for value in values[:: max(1, len(values) // PROBED_FILES)][:PROBED_FILES]]
    probed = probe_files(media, paths)
    if not probed.opened:
        return Decision(name, "left out", f"{len(values):,} paths to {media} files, but {probed.summary}")
    return Decision(name, "input", f"{len(values):,} paths to {media} files; {probed.summary} → {media}", media,
                    {"has_audio": probed.has_audio, "smallest_side": probed.smallest_side})


def text_or_category(name: str, texts: list[str], distinct: int) -> Decision:
    words = float(np.mean([len(text.split()) for text in texts]))
    if distinct <= max(FEW_CATEGORIES, 0.05 * len(texts)) and words <= 4:
        return Decision(name, "input", f"{distinct} distinct values ({examples(texts)}), {words:.1f} words per cell → "
                        "category", "category")
    if distinct >= 0.95 * len(texts) and words <= 1.5:
        return Decision(name, "left out", f"{distinct:,} distinct values in {len(texts):,} rows, one word each: an "
                        "identifier or a timestamp")
    longest = int(np.percentile([len(text.split()) for text in texts], 95))
    return Decision(name, "input", f"{distinct:,} distinct values, {words:.0f} words per cell on average → text",
                    "text", {"words": words, "longest": longest})


def decide_target(name: str, column: pd.Series, binned: bool, has_image: bool) -> Decision:
    values = present(column)
    if not values:
        raise PlaitError(f"--target {name}: the column has no values")
    distinct = column_distinct(values)
    numbers = as_numbers(values)
    if numbers is not None:
        whole = bool(np.all(numbers == np.round(numbers)))
        if binned:
            return Decision(name, "target", f"numbers from {numbers.min():g} to {numbers.max():g}, binned as asked",
                            "binned")
        if whole and distinct <= FEW_CATEGORIES:
            return Decision(name, "target", f"{distinct} distinct whole numbers → category", "category")
        return Decision(name, "target", f"numbers from {numbers.min():g} to {numbers.max():g}, {distinct:,} distinct "
                        "→ number", "number")
    if binned:
        raise PlaitError(f"--binned {name}: the column holds text, not numbers")
    words = float(np.mean([len(str(value).split()) for value in values]))
    if has_image and words >= 4 and distinct > FEW_CATEGORIES:
        return Decision(name, "target", f"{distinct:,} distinct texts of {words:.0f} words beside an image → caption",
                        "caption")
    if distinct <= max(FEW_CATEGORIES * 5, 0.2 * len(values)) or words <= 3:
        return Decision(name, "target", f"{distinct} distinct values ({examples(values)}) → category", "category")
    raise PlaitError(f"--target {name}: {distinct:,} distinct texts of {words:.0f} words each; plait predicts "
                     "categories, numbers and captions of images, not free text from other inputs")
