"""Fusions: combine the per-input vectors into one representation the heads read."""

from __future__ import annotations

import torch
from torch import nn

from plait.models.layers import mlp
from plait.registry import FUSIONS
from plait.settings.fusion import AttentionConfig, ConcatConfig


@FUSIONS.register("concat")
class ConcatFusion(nn.Module):
    """Early fusion: concatenate every input's vector, then an MLP."""

    Config = ConcatConfig

    def __init__(self, config: ConcatConfig, in_dims: dict[str, int]):
        super().__init__()
        self.order = list(in_dims)
        self.mlp, self.out_dim = mlp(sum(in_dims.values()), config.hidden, config.dropout, config.activation, config.batch_norm)

    def forward(self, vectors: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.mlp(torch.cat([vectors[name] for name in self.order], dim=-1))


@FUSIONS.register("attention")
class AttentionFusion(nn.Module):
    """Learned attention over inputs: each input's projected vector gets a score, a softmax across inputs turns the
    scores into per-row weights, and the weighted sum goes through an MLP. The weights say, row by row, which
    inputs the model leaned on; the last forward call's are kept in `weights` ([N, inputs], in `order`)."""

    Config = AttentionConfig

    def __init__(self, config: AttentionConfig, in_dims: dict[str, int]):
        super().__init__()
        self.order = list(in_dims)
        self.project = nn.ModuleDict({name: nn.Sequential(nn.Linear(width, config.dim), nn.Tanh()) for name, width in in_dims.items()})
        self.score = nn.Linear(config.dim, 1)  # shared: the per-input projections already tell the inputs apart
        self.mlp, self.out_dim = mlp(config.dim, config.hidden, config.dropout, config.activation, config.batch_norm)
        self.weights: torch.Tensor | None = None

    def forward(self, vectors: dict[str, torch.Tensor]) -> torch.Tensor:
        projected = torch.stack([self.project[name](vectors[name]) for name in self.order], dim=1)  # [N, inputs, dim]
        weights = self.score(projected).squeeze(-1).softmax(dim=-1)
        self.weights = weights.detach()
        return self.mlp((weights[..., None] * projected).sum(dim=1))
