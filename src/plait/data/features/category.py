"""`category`: a label per row, mapped to an index of a vocabulary learned from the training split.

Index 0 is the unknown bucket: values never seen in training (or too rare) land there.
"""

from __future__ import annotations

from collections import Counter

import torch

from plait.data.features.base import FeatureType
from plait.registry import FEATURES
from plait.settings.category import CategorySettings

UNKNOWN = "<unknown>"


def cell_key(value) -> str:
    """Cells are compared as text so `3`, `3.0` read from different formats do not split a class."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def label_counts(values) -> Counter:
    """How often each label (a cell as `cell_key` reads it) occurs."""
    return Counter(cell_key(v) for v in values)


def sorted_labels(counts: Counter, max_size: int | None = None, min_count: int = 1) -> list[str]:
    """The vocabulary learned from `counts`, in sorted order: the `max_size` most frequent labels (all when None)
    that occur at least `min_count` times."""
    return sorted(label for label, n in counts.most_common(max_size) if n >= min_count)


def label_index(labels: list[str]) -> dict[str, int]:
    """Each label's position in the vocabulary: the class id it is encoded as."""
    return {label: i for i, label in enumerate(labels)}


@FEATURES.register("category")
class Category(FeatureType):
    Settings = CategorySettings

    def __init__(self, spec, base_dir="."):
        super().__init__(spec, base_dir)
        self.vocabulary: list[str] = [UNKNOWN]
        self.index: dict[str, int] = {UNKNOWN: 0}

    def fit(self, values):
        kept = sorted_labels(label_counts(values), self.spec.max_size, self.spec.min_count)
        self.load_state_dict({"vocabulary": [UNKNOWN] + kept})

    def state_dict(self):
        return {"vocabulary": self.vocabulary}

    def load_state_dict(self, state):
        self.vocabulary = list(state["vocabulary"])
        self.index = {v: i for i, v in enumerate(self.vocabulary)}

    def encode(self, value):
        return torch.tensor(self.index.get(cell_key(value), 0), dtype=torch.long)

    def empty(self):
        return torch.tensor(0, dtype=torch.long)
