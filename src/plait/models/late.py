"""Late fusion: every input gets its own head for each output, and the heads' predictions are combined.

Early fusion (`concat`, `attention`) mixes the inputs' vectors before one head per output. Late fusion keeps the
inputs apart until the end: each input's vector goes through its own MLP and its own copy of every head, and each
output is the weighted mean of those predictions (of class probabilities for classifiers, of normalised embeddings
for embeddings). A row's missing input gets no weight, so a model trained this way degrades gracefully when a
modality is absent. Besides the combined output's loss, each input's own predictions are trained against the target
(`input_loss`), so every input's heads stay usable alone.
"""

from __future__ import annotations

import torch
from torch import nn

from plait.models.layers import mlp
from plait.registry import FUSIONS
from plait.settings.fusion import LateConfig


@FUSIONS.register("late")
class LateFusion(nn.Module):
    """Per-input MLPs; the heads come from `LateHead`. `out_dims` holds each input's width after its MLP."""

    Config = LateConfig
    late = True

    def __init__(self, config: LateConfig, in_dims: dict[str, int]):
        super().__init__()
        self.order = list(in_dims)
        self.input_loss = config.input_loss
        self.combine = config.combine
        self.mlps = nn.ModuleDict()
        self.out_dims: dict[str, int] = {}
        for name, width in in_dims.items():
            self.mlps[name], self.out_dims[name] = mlp(width, config.hidden, config.dropout, config.activation, config.batch_norm)

    def forward(self, vectors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: self.mlps[name](vectors[name]) for name in self.order}


class LateHead(nn.Module):
    """One output's head per input, and their combination by the output's task (`TaskType.combine`)."""

    def __init__(self, task, in_dims: dict[str, int], combine: str):
        super().__init__()
        self.combine = task.combine
        self.parts = nn.ModuleDict({name: task.build_head(width, in_dims) for name, width in in_dims.items()})
        self.scores = nn.Parameter(torch.zeros(len(in_dims))) if combine == "learned" else None

    def weights(self, present: dict[str, torch.Tensor]) -> torch.Tensor:
        """[N, inputs]: the input weights, zero for a row's missing inputs, renormalised per row (a row missing every
        input weighs them equally)."""
        base = self.scores.softmax(0) if self.scores is not None else None
        mask = torch.stack([present[name] for name in self.parts], dim=1).float()
        weights = mask if base is None else mask * base
        empty = weights.sum(dim=1, keepdim=True) == 0
        weights = torch.where(empty, torch.ones_like(weights) if base is None else base.expand_as(weights), weights)
        return weights / weights.sum(dim=1, keepdim=True)

    def forward(self, per_input: dict[str, torch.Tensor], present: dict[str, torch.Tensor]):
        """→ (combined prediction, {input: that input's own prediction})."""
        parts = {name: head(per_input[name]) for name, head in self.parts.items()}
        stacked = torch.stack([parts[name] for name in self.parts], dim=1)
        combined = self.combine(stacked, self.weights(present).to(stacked.dtype))
        return combined, parts
