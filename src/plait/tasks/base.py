"""The contract of a task type (one kind of output): targets, head, loss, metrics, decoding, plots."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from plait.data.columns import Column
from plait.schema import OutputBase


class TaskType(Column):
    Settings: ClassVar[type[OutputBase]] = OutputBase
    main_metric: ClassVar[str] = "loss"  # what `train.monitor: auto` watches for this output
    higher_is_better: ClassVar[bool] = False

    def build_head(self, in_dim: int) -> nn.Module:
        """The layer(s) from the fused representation to this output's raw prediction."""
        raise NotImplementedError

    def loss(self, prediction: torch.Tensor, target: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean loss over the rows whose target is present (0 when none is)."""
        raise NotImplementedError

    def metrics(self, prediction: torch.Tensor, target: dict[str, torch.Tensor]) -> dict[str, float]:
        """Metrics over a whole split; `prediction` and `target` are concatenated over all batches."""
        raise NotImplementedError

    def decode(self, prediction: torch.Tensor) -> dict[str, list]:
        """Raw predictions of a batch → columns of user values (labels, probabilities, numbers)."""
        raise NotImplementedError

    def plot(self, prediction: torch.Tensor, target: dict[str, torch.Tensor], folder: str, split: str) -> list[str]:
        """Write this output's plots for a split into `folder`; returns the paths. Default: none."""
        return []
