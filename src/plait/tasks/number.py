"""`number` output: regression on a standardised target; MSE or Huber; MAE, RMSE, R², Spearman, Pearson."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from plait.data.features.numeric import Standardised
from plait.models.layers import head
from plait.registry import TASKS
from plait.settings.outputs import NumberOutput
from plait.tasks.base import TaskType


def pearson(guess: torch.Tensor, truth: torch.Tensor) -> float:
    """Pearson correlation in float64. Where a side is constant it is undefined: 0.0, as torchmetrics' Spearman gives
    (its `pearson_corrcoef` would warn and give NaN, which a `monitor` cannot compare)."""
    guess, truth = guess.double() - guess.double().mean(), truth.double() - truth.double().mean()
    spread = (guess.square().sum() * truth.square().sum()).sqrt()
    return float((guess * truth).sum() / spread) if spread > 0 else 0.0


@TASKS.register("number")
class NumberTask(Standardised, TaskType):
    Settings = NumberOutput
    main_metric = "rmse"
    metric_modes: ClassVar[dict[str, str]] = {"mae": "min", "rmse": "min", "r2": "max", "spearman": "max", "pearson": "max"}

    def encode(self, value):
        return torch.tensor(self.standardise(value), dtype=torch.float32)

    def empty(self):
        return torch.tensor(0.0)

    def build_head(self, in_dim, input_dims):
        return head(in_dim, 1, self.spec)

    def loss(self, prediction, target):
        present = target["present"]
        if not present.any():
            return prediction.sum() * 0.0
        guess, truth = prediction.squeeze(-1)[present].float(), target["value"][present]
        if self.spec.loss == "huber":
            return F.huber_loss(guess, truth, delta=self.spec.huber_delta)
        return F.mse_loss(guess, truth)

    def to_original_units(self, standardised: torch.Tensor) -> torch.Tensor:
        return standardised.double() * self.std + self.mean

    def metrics(self, prediction, target):
        from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score, spearman_corrcoef

        present = target["present"]
        guess = self.to_original_units(prediction.squeeze(-1)[present])
        truth = self.to_original_units(target["value"][present])
        if len(truth) < 2:
            return {}
        return {
            "mae": float(mean_absolute_error(guess, truth)),
            "rmse": float(mean_squared_error(guess, truth, squared=False)),
            "r2": float(r2_score(guess, truth)),
            "spearman": float(spearman_corrcoef(guess.float(), truth.float())),
            "pearson": pearson(guess, truth),
        }

    def baseline(self, train_target, rows):
        """The training mean, which is 0 on the standardised scale the head predicts."""
        return torch.zeros(rows, 1)

    def decode(self, prediction):
        return {f"{self.spec.name}_pred": self.to_original_units(prediction.squeeze(-1)).tolist()}

    def plot(self, prediction, target, folder, split):
        from plait.evaluation.plots import scatter_plot

        present = target["present"]
        path = f"{folder}/predicted_{self.spec.name}.png"
        scatter_plot(
            self.to_original_units(target["value"][present]).tolist(),
            self.to_original_units(prediction.squeeze(-1)[present]).tolist(),
            path,
            title=f"{self.spec.name} ({split})",
        )
        return [path]
