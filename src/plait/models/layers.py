"""The small building blocks shared by fusions, heads and encoders: an MLP of Linear → (BatchNorm) → activation →
Dropout layers, and an output head made of one."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "silu": nn.SiLU, "none": nn.Identity}


class RowBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that normalises a training batch of a single row with the running statistics (as in evaluation)
    instead of failing: the last batch of an epoch can hold one row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


def mlp(in_dim: int, hidden: list[int], dropout: float, activation: str = "relu",
        batch_norm: bool = False) -> tuple[nn.Sequential, int]:
    """Linear → (RowBatchNorm) → activation → Dropout per width of `hidden`; returns the layers and the output width."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_dim, width))
        if batch_norm:
            layers.append(RowBatchNorm(width))
        layers += [ACTIVATIONS[activation](), nn.Dropout(dropout)]
        in_dim = width
    return nn.Sequential(*layers), in_dim


def head(in_dim: int, out_dim: int, keys) -> nn.Module:
    """An output's head: `keys.hidden` MLP layers (with its `activation` and `dropout`), then a Linear to `out_dim`.
    Without hidden layers it is that one Linear, named as heads always were, so older checkpoints still load."""
    if not keys.hidden:
        return nn.Linear(in_dim, out_dim)
    layers, width = mlp(in_dim, keys.hidden, keys.dropout, keys.activation)
    return nn.Sequential(*layers, nn.Linear(width, out_dim))
