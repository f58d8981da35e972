"""The contract of an encoder: a module from one feature's batch tensors to a [batch, out_dim] vector."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from plait.schema import EncoderBase


class Encoder(nn.Module):
    """Subclasses declare `Config` (an EncoderBase with `name: Literal[...]`), the feature types they fit
    (`modalities`), and set `self.out_dim` in `__init__(config, feature)`."""

    Config: ClassVar[type[EncoderBase]] = EncoderBase
    modalities: ClassVar[tuple[str, ...]] = ()
    out_dim: int
    frozen: bool = False

    def freeze(self) -> None:
        """`freeze: true`: no gradients, and eval mode (fixed batch-norm statistics, no dropout) for good, even
        when the rest of the model is put in training mode."""
        self.frozen = True
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(mode and not self.frozen)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


def projection(in_dim: int, out_dim: int | None) -> tuple[nn.Module, int]:
    """Linear + ReLU to `out_dim`, or nothing when `out_dim` is None; returns the module and the output size."""
    if out_dim is None:
        return nn.Identity(), in_dim
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU()), out_dim
