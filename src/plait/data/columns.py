"""What inputs (feature types) and outputs (task types) share: learn from the training split, turn one
table cell into a tensor, stack cells into batch tensors with a presence mask, save what was learned."""

from __future__ import annotations

import math
from typing import Any

import torch


def is_missing(value: Any) -> bool:
    """An empty cell: None, a float NaN (how pandas reads an empty CSV cell or a null), or an empty string."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


class Column:
    """One named column of the table, preprocessed. Subclasses override what they need."""

    name: str = ""  # the registry fills this in

    def __init__(self, spec, base_dir: str = "."):
        self.spec = spec
        self.base_dir = base_dir  # relative file paths in cells resolve against this folder

    def fit(self, values: list) -> None:
        """Learn from the training split's non-missing cells (vocabularies, statistics). Default: nothing."""

    def state_dict(self) -> dict:
        """What `fit` learned, as JSON-able values, saved with every checkpoint."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `fit` learned."""

    def encode(self, value: Any) -> torch.Tensor | dict[str, torch.Tensor]:
        """One non-missing cell → a tensor, or a dict of tensors (e.g. frames and their count). Raise
        `BadSample(reason)` when the cell cannot be used, `MissingValue` when it holds nothing (a silent clip)."""
        raise NotImplementedError

    def empty(self) -> torch.Tensor | dict[str, torch.Tensor]:
        """Placeholder for a missing cell; must have the shapes and dtypes `encode` returns."""
        raise NotImplementedError

    def stack(self, values: list) -> dict[str, torch.Tensor]:
        """Encoded cells of many rows (None = missing) → `{"value": [N, ...], "present": bool[N]}`; a cell that is a
        dict of tensors stacks key by key (`{"value": ..., "length": ..., "present": ...}`)."""
        present = torch.tensor([v is not None for v in values], dtype=torch.bool)
        template = next((v for v in values if v is not None), None)
        if template is None:
            template = self.empty()
        if not isinstance(template, dict):
            filler = torch.zeros_like(template)
            return {"value": torch.stack([filler if v is None else v for v in values]), "present": present}
        stacked = {}
        for key, like in template.items():
            filler = torch.zeros_like(like)
            stacked[key] = torch.stack([filler if v is None else v[key] for v in values])
        return {**stacked, "present": present}
