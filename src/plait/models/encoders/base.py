"""The contract of an encoder: a module from one feature's batch tensors to a [batch, out_dim] vector."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from plait.schema import EncoderBase


class Encoder(nn.Module):
    """Subclasses declare `Config` (an EncoderBase with `name: Literal[...]` and the feature types it fits,
    `modalities`, in `plait/settings/`), and set `self.out_dim` in `__init__(config, feature)`."""

    Config: ClassVar[type[EncoderBase]] = EncoderBase
    modalities: ClassVar[tuple[str, ...]] = ()  # the config's own

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.modalities = getattr(cls.Config, "modalities", ())
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

    def notes(self) -> list[str]:
        """Advice on this encoder for the data it reads, said when training starts (none by default)."""
        return []

    def encode_tokens(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The vector [N, out_dim] and a token sequence [N, L, out_dim] that a decoder can attend to. Encoders with
        spatial or temporal features (image patches, grid cells) override this; the default is the vector as one token."""
        vector = self(batch)
        return vector, vector[:, None]


def grid_tokens(features: torch.Tensor) -> torch.Tensor:
    """A feature map [N, C, H, W] → tokens [N, H·W, C] carrying a fixed 2-D sine position code (as in DETR), so a
    decoder can tell above from below and left from right in a convolutional grid."""
    n, channels, height, width = features.shape
    quarter = channels // 4
    if quarter == 0:
        return features.flatten(2).transpose(1, 2)
    frequencies = 1.0 / (100.0 ** (torch.arange(quarter, device=features.device, dtype=torch.float32) / quarter))
    rows = torch.arange(height, device=features.device, dtype=torch.float32)[:, None] * frequencies  # [H, q]
    columns = torch.arange(width, device=features.device, dtype=torch.float32)[:, None] * frequencies  # [W, q]
    code = torch.zeros(height, width, channels, device=features.device)
    code[..., 0:quarter] = rows.sin()[:, None]
    code[..., quarter:2 * quarter] = rows.cos()[:, None]
    code[..., 2 * quarter:3 * quarter] = columns.sin()[None]
    code[..., 3 * quarter:4 * quarter] = columns.cos()[None]
    return features.flatten(2).transpose(1, 2) + code.reshape(1, height * width, channels).to(features.dtype)


def projection(in_dim: int, out_dim: int | None) -> tuple[nn.Module, int]:
    """Linear + ReLU to `out_dim`, or nothing when `out_dim` is None; returns the module and the output size."""
    if out_dim is None:
        return nn.Identity(), in_dim
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU()), out_dim
