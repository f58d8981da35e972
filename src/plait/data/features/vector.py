"""`vector`: a fixed-length array of numbers per row, such as features extracted earlier by another model or by
`plait embed`. A cell is a list or array (a list column of a parquet or JSON-lines table, a row of a 2-D array in an
`npy` table, a parquet cell written by `plait embed`), or a string (a CSV cell): a JSON list `[0.1, 0.2]` or numbers
separated by spaces and/or commas (`0.1 0.2`, `0.1,0.2`).

Encoded cell: float32 [dim], as given; `prepare` (on the device, per batch) applies `normalize`, so a cached cell
does not depend on the fitted statistics. Vectors are cheap to read, so they stay out of the preprocessing cache
unless `cache: true`, as numbers do.

Fitted: `dim` (the setting, or the most common length among the training rows) and, for `normalize: standard`, the
per-dimension mean and standard deviation of the training rows of that length. A row of another length, or with a
value that is not a finite number, is a bad sample; an empty cell or an empty list is a missing value.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from typing import ClassVar

import numpy as np
import torch

from plait.data.features.base import FeatureType
from plait.errors import BadSample, MissingValue
from plait.html import escape
from plait.registry import FEATURES
from plait.settings.vector import VectorSettings

SEPARATORS = re.compile(r"[\s,]+")
PREVIEW_NUMBERS = 6  # components shown in the report's preview


def parse_vector(value) -> np.ndarray:
    """A cell → a 1-D float64 array; BadSample naming what is wrong, MissingValue for an empty list."""
    if isinstance(value, str):
        text = value.strip()
        try:
            parts = SEPARATORS.split(text.strip(", "))
            value = json.loads(text) if text.startswith("[") else [float(part) for part in parts if part]
        except ValueError:
            raise BadSample(f"not a vector: {shorten(value)!r} (a JSON list, or numbers separated by spaces or commas)") from None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadSample(f"not a vector of numbers: {shorten(value)!r}") from None
    if array.ndim == 0:
        raise BadSample(f"a single number, not a vector: {shorten(value)!r}")
    if array.ndim > 1:
        raise BadSample(f"an array of shape {list(array.shape)}, not a vector (one dimension)")
    if array.size == 0:
        raise MissingValue("empty vector")
    if not np.isfinite(array).all():
        raise BadSample(f"not finite: component {int(np.flatnonzero(~np.isfinite(array))[0])} is {array[~np.isfinite(array)][0]}")
    return array


def shorten(value, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


@FEATURES.register("vector")
class VectorFeature(FeatureType):
    Settings = VectorSettings
    cache_keys: ClassVar[tuple[str, ...]] = ("dim",)  # `normalize` happens in prepare

    def __init__(self, spec: VectorSettings, base_dir="."):
        super().__init__(spec, base_dir)
        self.dim: int = spec.dim or 0  # 0 until fitted
        self.mean: list[float] = []
        self.std: list[float] = []
        self._on_device: dict = {}

    def fit(self, values):
        lengths: Counter = Counter()
        vectors = []
        for value in values:
            try:
                vector = parse_vector(value)
            except (BadSample, MissingValue):
                continue  # reported, with its row, when the cell is encoded
            lengths[len(vector)] += 1
            if self.spec.normalize == "standard":  # the only use of the vectors themselves
                vectors.append(vector)
        if not lengths:
            raise BadSample(f"no training row holds a vector of numbers (first cell: {shorten(values[0])!r})")
        if not self.spec.dim:
            self.dim = lengths.most_common(1)[0][0]
        if self.spec.normalize == "standard":
            matrix = np.stack([v for v in vectors if len(v) == self.dim]) if lengths[self.dim] else np.zeros((1, self.dim))
            std = matrix.std(axis=0)
            self.mean, self.std = matrix.mean(axis=0).tolist(), np.where(std > 0, std, 1.0).tolist()

    def state_dict(self):
        return {"dim": self.dim, "mean": self.mean, "std": self.std}

    def load_state_dict(self, state):
        self.dim, self.mean, self.std = state["dim"], state["mean"], state["std"]
        self._on_device = {}

    def fingerprint(self, value) -> str:
        """The numbers themselves (a NumPy array's `str` elides the middle of a long one)."""
        try:
            return hashlib.sha256(parse_vector(value).astype(np.float32).tobytes()).hexdigest()
        except (BadSample, MissingValue):
            return super().fingerprint(value)

    def encode(self, value):
        vector = parse_vector(value)
        if len(vector) != self.dim:
            source = "the `dim` setting" if self.spec.dim else "the training rows"
            raise BadSample(f"vector of length {len(vector)}, expected {self.dim} (the length of {source})")
        return torch.from_numpy(vector.astype(np.float32))

    def empty(self):
        return torch.zeros(self.dim)

    def prepare(self, batch, training):
        value = batch["value"]
        if self.spec.normalize == "standard" and self.mean:
            key = (value.device, value.dtype)
            if key not in self._on_device:
                self._on_device[key] = (torch.tensor(self.mean, dtype=value.dtype, device=value.device),
                                        torch.tensor(self.std, dtype=value.dtype, device=value.device))
            mean, std = self._on_device[key]
            value = (value - mean) / std
        elif self.spec.normalize == "l2":
            value = value / value.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return {**batch, "value": value}

    def preview(self, value, size: int) -> str:
        vector = parse_vector(value)
        shown = ", ".join(f"{x:.3g}" for x in vector[:PREVIEW_NUMBERS])
        more = ", …" if len(vector) > PREVIEW_NUMBERS else ""
        return escape(f"[{shown}{more}] ({len(vector)} numbers)")
