"""`data.augment.generated`: fill up rare classes of the training split with generated images.

A training class with fewer rows than `per_class` gains rows whose image cell is a generated file, taken from
`FOLDER/<label>/` in file-name order (so a resumed run adds the same rows), and whose label cell is the class;
every other cell is empty. Only the training split grows: the added rows are in split `train`, and validation
and test keep exactly the table's own rows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from plait.data.columns import is_missing
from plait.data.places import RowPlaces, joined
from plait.data.tables import Data
from plait.data.features.category import cell_key, label_counts
from plait.errors import PlaitError

if TYPE_CHECKING:
    from plait.config import Config

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
LABEL_TYPES = ("category", "embedding")  # outputs whose column holds a class
KEY = "data.augment.generated"


def image_input(config: Config):
    """The input the generated files fill: `input`, or the config's only image input."""
    wanted = config.data.augment.generated.input
    images = [spec for spec in config.inputs if spec.type == "image"]
    if wanted is None:
        if len(images) != 1:
            found = f"image inputs {', '.join(s.name for s in images)}" if images else "no image input"
            raise PlaitError(f"{KEY}.input: the config has {found}; name the one the generated images fill")
        return images[0]
    spec = next((s for s in config.inputs if s.name == wanted), None)
    if spec is None or spec.type != "image":
        choices = ", ".join(s.name for s in images) or "none"
        raise PlaitError(f"{KEY}.input: {wanted!r} is not an image input (image inputs: {choices})")
    return spec


def label_output(config: Config):
    """The output whose column holds the class: `label`, or the first category or embedding output."""
    wanted = config.data.augment.generated.label
    classes = [spec for spec in config.outputs if spec.type in LABEL_TYPES]
    if wanted is None:
        if not classes:
            raise PlaitError(f"{KEY}.label: the config has no {' or '.join(LABEL_TYPES)} output to take classes from")
        return classes[0]
    spec = next((s for s in config.outputs if s.name == wanted), None)
    if spec is None or spec.type not in LABEL_TYPES:
        choices = ", ".join(s.name for s in classes) or "none"
        raise PlaitError(f"{KEY}.label: {wanted!r} is not a {' or '.join(LABEL_TYPES)} output (those: {choices})")
    return spec


def require_masked_inputs(config: Config, image) -> None:
    """A generated row holds only an image: every other input must accept an empty cell."""
    strict = [spec.name for spec in config.inputs if spec is not image and spec.missing != "mask"]
    if strict:
        raise PlaitError(f"{KEY}: a generated row has only an image, so its other inputs are empty; "
                         f"input(s) {', '.join(strict)} have `missing: error`: set `missing: mask` on them "
                         f"(e.g. --set inputs.{strict[0]}.missing=mask) or turn {KEY} off")


def generated_files(folder: Path) -> dict[str, list[Path]]:
    """Subfolder name → its image files, sorted by name."""
    if not folder.is_dir():
        raise PlaitError(f"{KEY}.folder: {folder}: no such folder")
    return {
        sub.name: sorted(p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        for sub in sorted(folder.iterdir()) if sub.is_dir()
    }


def empty_cells(dtype, count: int) -> pd.Series:
    """`count` missing cells of a column's dtype; of object dtype where it has no missing value (integers,
    booleans), so that the column's own cells keep their values and type."""
    return pd.Series([None] * count, dtype=object if dtype.kind in "iub" else dtype)


def add_generated_rows(data: Data, config: Config) -> tuple[Data, dict]:
    """`data` with generated rows appended to the training split, and a report of what was added per class."""
    settings = config.data.augment.generated
    image, label = image_input(config), label_output(config)
    require_masked_inputs(config, image)
    files = generated_files(Path(settings.folder))

    train = data.rows("train")[label.column]
    counts = label_counts(v for v in train if not is_missing(v))
    value_of = {cell_key(v): v for v in train if not is_missing(v)}  # the table's own cell, so its type is kept
    classes, paths, labels = {}, [], []
    for key in sorted(counts):
        available = files.get(key, [])
        chosen = available[: max(0, settings.per_class - counts[key])]
        paths += [str(path.resolve()) for path in chosen]
        labels += [value_of[key]] * len(chosen)
        classes[key] = {"real": counts[key], "added": len(chosen), "available": len(available),
                        "target": settings.per_class, "short": max(0, settings.per_class - counts[key] - len(chosen))}
    report = {"folder": settings.folder, "input": image.name, "output": label.name, "per_class": settings.per_class,
              "added": len(paths), "classes": classes,
              "ignored_folders": sorted(name for name in files if name not in counts)}
    if not paths:
        return data, report
    added = pd.DataFrame({column: empty_cells(dtype, len(paths)) for column, dtype in data.table.dtypes.items()})
    added[image.column], added[label.column] = paths, labels
    table = pd.concat([data.table, added], ignore_index=True)
    split_of_row = pd.concat([data.split_of_row, pd.Series(["train"] * len(paths))], ignore_index=True)
    places = joined([(len(data.table), data.places), (len(paths), RowPlaces.of_files(settings.folder, paths))],
                    data.source)
    return dataclasses.replace(data, table=table, split_of_row=split_of_row, places=places), report


def summary(report: dict) -> str:
    """One line for the terminal."""
    grown = sum(1 for c in report["classes"].values() if c["added"])
    short = sum(1 for c in report["classes"].values() if c["short"])
    line = f"generated images: added {report['added']} to {grown} training class{'es' if grown != 1 else ''}"
    if short:
        line += f" ({short} still short of {report['per_class']} rows)"
    if report["ignored_folders"]:
        line += f"; ignored folders not naming a training class: {', '.join(report['ignored_folders'])}"
    return line
