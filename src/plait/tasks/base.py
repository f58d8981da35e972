"""The contract of a task type (one kind of output): targets, head, loss, metrics, decoding, plots.

Most tasks map the fused vector to a prediction (`build_head`). A task with `generates = True` (captions) builds a
head that also attends to every input's token sequence and writes its output step by step: it is trained with
teacher forcing and evaluated by generating (see `evaluation/evaluate.py`).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import ClassVar

import pandas as pd
import torch
from torch import nn

from plait.data.columns import Column
from plait.schema import OutputBase


class TaskType(Column):
    Settings: ClassVar[type[OutputBase]] = OutputBase
    main_metric: ClassVar[str] = "loss"  # the headline metric: the report's summary card, what ablation compares
    # each metric `metrics` reports (a name or an fnmatch pattern) → "max" or "min", whichever way is better
    metric_modes: ClassVar[dict[str, str]] = {}
    generates: ClassVar[bool] = False  # evaluated and predicted by generating sequences (captions): the settings' own

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.generates = cls.Settings.generates

    @classmethod
    def metric_mode(cls, metric: str) -> str:
        """"max" when a larger value of `metric` is better, "min" when a smaller one is: as `metric_modes` says, and
        "min" for `loss` and any name it does not hold."""
        return next((mode for pattern, mode in cls.metric_modes.items() if fnmatchcase(metric, pattern)), "min")

    def build_head(self, in_dim: int, input_dims: dict[str, int]) -> nn.Module:
        """The layer(s) from the fused representation (`in_dim` wide) to this output's raw prediction. A generating
        task's head also reads each input's token sequence (`input_dims`: input → token width)."""
        raise NotImplementedError

    def build_criterion(self) -> nn.Module | None:
        """A loss that holds parameters of its own (ArcFace's per-class weights): the model registers it, so it is
        trained and saved with the weights. Called once each time a model is built. Default: none."""
        return None

    def combine(self, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Late fusion: one prediction from each input's head, stacked [N, inputs, ...], and per-row weights
        [N, inputs] that sum to 1 → the combined prediction. Default: the weighted mean (numbers)."""
        return (weights.view(*weights.shape, *[1] * (predictions.dim() - 2)) * predictions).sum(dim=1)

    def collate(self, target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A batch of stacked targets, on the device → what the head and the loss read. Default: as stacked."""
        return target

    def reduce(self, prediction, target: dict[str, torch.Tensor]):
        """One batch's prediction → what evaluation keeps of it for the whole split (a caption head's per-token
        logits would not fit in memory for a split; their per-row loss does). Default: the prediction."""
        return prediction

    def row_info(self, rows: pd.DataFrame) -> dict[str, list]:
        """Per-row values evaluation needs besides the target tensor (e.g. a caption's text and its image), read
        from the kept rows of a split. Default: none."""
        return {}

    def baseline(self, train_target: dict[str, torch.Tensor], rows: int):
        """The prediction, for `rows` rows, of a model that ignores its inputs and knows only the training split's
        targets (the most frequent class, the mean): the floor a trained model must clear. None: no such baseline."""
        return None

    def save_files(self, folder: Path) -> list[Path]:
        """Files that let a person use what `fit` learned outside plait (a tokenizer's vocabulary), written into
        `folder`. Default: none."""
        return []

    def loss(self, prediction: torch.Tensor, target: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean loss over the rows whose target is present (0 when none is)."""
        raise NotImplementedError

    def evaluation_loss(self, prediction: torch.Tensor, target: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss evaluation reports over a whole split (`NAME.loss`, and so `validation.loss`): the training loss,
        unless the task leaves out terms that only shape training (label smoothing, the focal factor)."""
        return self.loss(prediction, target)

    def metrics(self, prediction: torch.Tensor, target: dict[str, torch.Tensor]) -> dict[str, float]:
        """Metrics over a whole split; `prediction` and `target` are concatenated over all batches."""
        raise NotImplementedError

    def decode(self, prediction: torch.Tensor) -> dict[str, list]:
        """Raw predictions of a batch → columns of user values (labels, probabilities, numbers)."""
        raise NotImplementedError

    def class_names(self) -> list[str] | None:
        """A classifier's class names, in the order of its logits (the report's per-class precision, recall and F1).
        Default: None, not a classifier."""
        return None

    def plot(self, prediction: torch.Tensor, target: dict[str, torch.Tensor], folder: str, split: str) -> list[str]:
        """Write this output's plots for a split into `folder`; returns the paths. Default: none."""
        return []
