"""The contract of an encoder: a backbone from one feature's batch tensors to a vector, then the config's projection
to the [batch, out_dim] vector fusion gets."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from plait.models.layers import mlp
from plait.schema import EncoderBase

UNPROJECTED = nn.Identity()


class Encoder(nn.Module):
    """An encoder is a backbone and a projection. Subclasses declare `Config` (an EncoderBase with `name:
    Literal[...]` and the feature types it fits, `modalities`, in `plait/settings/`), build the backbone in
    `__init__(config, feature)`, set `self.out_dim` to its width, and compute it in `forward` (and `encode_tokens`).
    `build` adds the config's `projection`, after which `out_dim` is the projected width and `feature_dim` the
    backbone's; `encode` runs both. `freeze` fixes the backbone only: the projection still trains."""

    Config: ClassVar[type[EncoderBase]] = EncoderBase
    modalities: ClassVar[tuple[str, ...]] = ()  # the config's own

    out_dim: int
    feature_dim: int
    frozen: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.modalities = getattr(cls.Config, "modalities", ())

    @classmethod
    def build(cls, config: EncoderBase, feature) -> Encoder:
        encoder = cls(config, feature)
        encoder.feature_dim = encoder.out_dim
        if config.projection is not None:  # Linear → activation → Dropout, as `project.0...` in older checkpoints
            settings = config.projection
            encoder.project, encoder.out_dim = mlp(encoder.feature_dim, [settings.out_dim], settings.dropout, settings.activation)
        return encoder

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The backbone's vector [N, feature_dim]."""
        raise NotImplementedError

    def encode_tokens(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The backbone's vector [N, D] and a token sequence [N, L, D] that a decoder can attend to. Encoders with
        spatial or temporal features (image patches, grid cells) override this; the default is the vector as one token."""
        vector = self(batch)
        return vector, vector[:, None]

    def encode(self, batch: dict[str, torch.Tensor], with_tokens: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The projected vector [N, out_dim] and, `with_tokens`, the projected tokens [N, L, out_dim]; a frozen
        backbone runs without gradients."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            vector, tokens = self.encode_tokens(batch) if with_tokens else (self(batch), None)
        return self.projected(vector, tokens)

    def projected(self, vector: torch.Tensor, tokens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The projection of backbone outputs (computed now, or earlier and cached: tokens kept in float16)."""
        project = self._modules.get("project", UNPROJECTED)  # registered by `build` when the config asks for one
        return project(vector), None if tokens is None else project(tokens.to(vector.dtype))

    def backbone_parameters(self):
        return (parameter for name, parameter in self.named_parameters() if not name.startswith("project."))

    def freeze(self) -> None:
        """`freeze: true`: the backbone gets no gradients and stays in eval mode (fixed batch-norm statistics, no
        dropout) for good, even when the rest of the model is put in training mode; the projection trains."""
        self.frozen = True
        for parameter in self.backbone_parameters():
            parameter.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            for name, child in self.named_children():
                if name != "project":
                    child.train(False)
        return self

    def notes(self) -> list[str]:
        """Advice on this encoder for the data it reads, said when training starts (none by default)."""
        return []


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
