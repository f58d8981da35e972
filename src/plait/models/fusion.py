"""Fusions: combine the per-input vectors into one representation the heads read."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from plait.registry import FUSIONS
from plait.schema import Section


def mlp(in_dim: int, hidden: list[int], dropout: float) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU(), nn.Dropout(dropout)]
        in_dim = width
    return nn.Sequential(*layers), in_dim


class ConcatConfig(Section):
    name: Literal["concat"] = "concat"
    hidden: list[int] = Field([128], description="Widths of the MLP layers after concatenation (empty: none).")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout after each MLP layer.")


@FUSIONS.register("concat")
class ConcatFusion(nn.Module):
    """Early fusion: concatenate every input's vector, then an MLP."""

    Config = ConcatConfig

    def __init__(self, config: ConcatConfig, in_dims: dict[str, int]):
        super().__init__()
        self.order = list(in_dims)
        self.mlp, self.out_dim = mlp(sum(in_dims.values()), config.hidden, config.dropout)

    def forward(self, vectors: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.mlp(torch.cat([vectors[name] for name in self.order], dim=-1))
