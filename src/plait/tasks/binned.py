"""`binned` output: a continuous label classified into equal-width bins of its training range.

The label is scaled to [0, 1] with the training split's minimum and maximum, then cut into `bins` equal bins; each
output is one classification head trained with cross-entropy. Many continuous labels become many `binned`
outputs, and the total loss is the sum of their cross-entropies, each times its `loss_weight` (the trainer's sum).
Values below the training minimum fall into the first bin and values above the maximum into the last one (the
head can say no more than that); their errors in original units are still measured against the true value.

The target cell is a dict, `{"value": bin index (long), "scaled": the scaled label (float32)}`, so a split's targets
stack to `{"value": [N], "scaled": [N], "present": [N]}`: the loss and accuracy read the bin, and `mae` / `rmse`
compare the predicted bin's centre with the true continuous value rather than with its bin.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from plait.data.features.numeric import finite_numbers, parse_number
from plait.errors import BadSample, PlaitError
from plait.models.layers import head
from plait.registry import TASKS
from plait.settings.outputs import BinnedOutput
from plait.tasks.base import TaskType
from plait.tasks.category import cross_entropy_over_present, frequency_logits, mean_of_probabilities, plot_confusion


def scale(value, low: float, high: float):
    """Original units → [0, 1] over the training range (outside it for values outside it)."""
    return (value - low) / (high - low)


def unscale(scaled, low: float, high: float):
    """[0, 1] → original units; the inverse of `scale`."""
    return scaled * (high - low) + low


def to_bin(scaled, bins: int):
    """Scaled value(s) → bin index: `numpy.digitize` over the `bins - 1` inner edges, so a value on an edge goes to
    the bin above it, 1.0 to the last bin, and values below 0 or above 1 to the first or last bin."""
    inner_edges = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    return np.digitize(scaled, inner_edges)


def bin_range(index, bins: int, low: float, high: float):
    """(lower, upper) edge of bin `index` in original units."""
    width = (high - low) / bins
    return low + index * width, low + (index + 1) * width


def bin_centre(index, bins: int, low: float, high: float):
    """Centre of bin `index` in original units: what a predicted bin decodes to."""
    lower, upper = bin_range(index, bins, low, high)
    return (lower + upper) / 2


@TASKS.register("binned")
class BinnedTask(TaskType):
    Settings = BinnedOutput
    main_metric = "accuracy"
    metric_modes: ClassVar[dict[str, str]] = {"accuracy": "max", "within_one": "max", "mae": "min", "rmse": "min"}

    def __init__(self, spec, base_dir="."):
        super().__init__(spec, base_dir)
        self.min, self.max, self.bins = 0.0, 1.0, spec.bins

    def fit(self, values):
        numbers = finite_numbers(values)
        if not numbers:
            raise BadSample("no value in the training split is a finite number")
        self.min, self.max = float(min(numbers)), float(max(numbers))
        if self.max == self.min:
            raise PlaitError(
                f"output {self.spec.name!r}: column {self.spec.column!r} holds only {self.min:g} in the training split, "
                "so it has no range to cut into bins"
            )

    def state_dict(self):
        return {"min": self.min, "max": self.max, "bins": self.bins}

    def load_state_dict(self, state):
        self.min, self.max, self.bins = float(state["min"]), float(state["max"]), int(state["bins"])

    def encode(self, value):
        scaled = scale(parse_number(value), self.min, self.max)
        return {"value": torch.tensor(int(to_bin(scaled, self.bins)), dtype=torch.long),
                "scaled": torch.tensor(scaled, dtype=torch.float32)}

    def empty(self):
        return {"value": torch.tensor(0, dtype=torch.long), "scaled": torch.tensor(0.0)}

    def build_head(self, in_dim, input_dims):
        return head(in_dim, self.bins, self.spec)

    def loss(self, prediction, target):
        return cross_entropy_over_present(prediction, target, label_smoothing=self.spec.label_smoothing)

    def evaluation_loss(self, prediction, target):
        return cross_entropy_over_present(prediction, target)

    def metrics(self, prediction, target):
        """`accuracy` of the bin, `within_one` (off by at most one bin), and `mae` / `rmse` in original units of the
        predicted bin's centre against the true value."""
        from torchmetrics.functional import mean_absolute_error, mean_squared_error
        from torchmetrics.functional.classification import multiclass_accuracy

        present = target["present"]
        guess, truth = prediction[present].argmax(-1), target["value"][present]
        if len(truth) == 0:
            return {}
        decoded = bin_centre(guess.double(), self.bins, self.min, self.max)
        true_value = unscale(target["scaled"][present].double(), self.min, self.max)
        return {
            "accuracy": float(multiclass_accuracy(guess, truth, self.bins, average="micro")),
            "within_one": float(((guess - truth).abs() <= 1).double().mean()),
            "mae": float(mean_absolute_error(decoded, true_value)),
            "rmse": float(mean_squared_error(decoded, true_value, squared=False)),
        }

    def baseline(self, train_target, rows):
        return frequency_logits(train_target, self.bins, rows)

    def combine(self, predictions, weights):
        return mean_of_probabilities(predictions, weights)

    def decode(self, prediction):
        probability, index = prediction.float().softmax(-1).max(-1)
        low, high = bin_range(index.double(), self.bins, self.min, self.max)
        name = self.spec.name
        return {
            f"{name}_pred": bin_centre(index.double(), self.bins, self.min, self.max).tolist(),
            f"{name}_bin": index.tolist(),
            f"{name}_low": low.tolist(),
            f"{name}_high": high.tolist(),
            f"{name}_prob": probability.tolist(),
        }

    def class_names(self):
        """Each bin's range in original units."""
        edges = [bin_range(i, self.bins, self.min, self.max) for i in range(self.bins)]
        return [f"[{low:.3g}, {high:.3g})" for low, high in edges]

    def plot(self, prediction, target, folder, split):
        """A confusion matrix of the bins, each labelled with its range in original units."""
        return [plot_confusion(prediction, target, self.class_names(), folder, self.spec.name, split)]
