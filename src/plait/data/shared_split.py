"""An encoded split held once per machine instead of once per process.

When several processes share a cache folder (a `Division`), the first of them encodes the split's rows; its
in-memory columns (numbers, categories, token ids, targets: whatever is not read from the cache) are written beside
the cache as `.npy` files and every process, the first included, maps them copy-on-write. The pages are then the
page cache's, one copy on the machine however many processes read them, and a process that never writes to them
never copies them. The rest of the split (rows kept, rows skipped, tallies, the cache keys of cached columns) is
small and sent to every process. The files are removed once every process has mapped them: the maps stay valid.
"""

from __future__ import annotations

import copy
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from plait.data.cache import CachedCells
from plait.data.division import Division
from plait.errors import PlaitError

INLINE_BYTES = 2**20  # smaller tensors travel with the rest of the split: not worth a file and a map


def encoded_once(division: Division, cache_folder: Path, columns: dict, encode: Callable):
    """`encode()`'s split, run by the group's first member only and shared with the others (see the module's
    docstring). Every member of the world calls it together; an error in the first member's `encode` is raised
    in every member."""
    folder = Path(cache_folder) / f".encoded-{uuid.uuid4().hex}"
    published = None
    if division.index == 0:
        try:
            published = publish(encode(), folder)
        except PlaitError as error:
            published = error
    published = division.collect(published)[0]
    if isinstance(published, PlaitError):
        raise PlaitError(*published.args)
    split = receive(published, columns)
    division.collect(None)  # every member has mapped the files
    if division.index == 0:
        shutil.rmtree(published.folder, ignore_errors=True)
    return split


class Published:
    """A split whose tensors are replaced by what a process needs to get them back: the path of a mapped file,
    the tensor itself when small, or a cached column's keys."""

    def __init__(self, split, folder: Path):
        self.split, self.folder = split, folder


def publish(split, folder: Path) -> Published:
    folder.mkdir(parents=True, exist_ok=True)
    split.inputs = {name: _publish_column(cells, folder / f"input-{name}") for name, cells in split.inputs.items()}
    split.targets = {name: _publish_column(cells, folder / f"target-{name}") for name, cells in split.targets.items()}
    return Published(split, folder)


def _publish_column(cells, stem: Path):
    if isinstance(cells, CachedCells):
        return ("cached", cells.keys)
    published = {}
    for field, tensor in cells.items():
        if tensor.numel() * tensor.element_size() < INLINE_BYTES:
            published[field] = tensor
        else:
            path = stem.with_name(f"{stem.name}.{field}.npy")
            np.save(path, tensor.contiguous().numpy())
            published[field] = str(path)
    return published


def receive(published: Published, columns: dict):
    """The published split with its tensors mapped and its cached columns read through this process's `columns`."""
    split = copy.copy(published.split)
    split.inputs = {name: _received(cells, columns[name]) for name, cells in split.inputs.items()}
    split.targets = {name: _received(cells, columns[name]) for name, cells in split.targets.items()}
    return split


def _received(cells, column):
    if isinstance(cells, tuple):
        column.store.refresh()  # shards the first member wrote while encoding
        return CachedCells(column.column, column.store, cells[1])
    return {field: torch.from_numpy(np.load(value, mmap_mode="c")) if isinstance(value, str) else value
            for field, value in cells.items()}
