"""`numeric`: one number per row, standardised with the training split's mean and standard deviation."""

from __future__ import annotations

import math

import torch

from plait.data.features.base import FeatureType
from plait.errors import BadSample
from plait.registry import FEATURES
from plait.settings.numeric import NumericSettings


def parse_number(value) -> float:
    """A cell → finite float, or BadSample naming what was there."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadSample(f"not a number: {value!r}") from None
    if not math.isfinite(number):
        raise BadSample(f"not a finite number: {value!r}")
    return number


def finite_numbers(values) -> list[float]:
    """The cells that parse as finite numbers; statistics learn from these only (bad cells are reported on encode)."""
    numbers = []
    for value in values:
        try:
            numbers.append(parse_number(value))
        except BadSample:
            continue
    return numbers


def standard_scaling(values) -> tuple[float, float]:
    """Mean and standard deviation of the cells that parse as finite numbers."""
    numbers = finite_numbers(values)
    if not numbers:
        return 0.0, 1.0
    column = torch.tensor(numbers, dtype=torch.float64)
    return float(column.mean()), float(column.std(unbiased=False)) or 1.0


class Standardised:
    """A column of numbers standardised with the training split's mean and standard deviation when its settings
    say `normalize: standard`: the `numeric` input and the `number` output."""

    mean: float = 0.0
    std: float = 1.0

    def fit(self, values):
        if self.spec.normalize == "standard":
            self.mean, self.std = standard_scaling(values)

    def state_dict(self):
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state):
        self.mean, self.std = state["mean"], state["std"]

    def standardise(self, value) -> float:
        """A cell → its number on the standardised scale; BadSample when it is not a finite number."""
        return (parse_number(value) - self.mean) / self.std


@FEATURES.register("numeric")
class Numeric(Standardised, FeatureType):
    Settings = NumericSettings

    def encode(self, value):
        return torch.tensor([self.standardise(value)], dtype=torch.float32)

    def empty(self):
        return torch.zeros(1)
