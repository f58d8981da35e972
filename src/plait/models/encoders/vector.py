"""Encoder for `vector` inputs: an MLP over the (normalised) vector, or nothing at all (`hidden: []`), so features
extracted earlier go straight to fusion."""

from __future__ import annotations

from torch import nn

from plait.models.encoders.base import Encoder
from plait.registry import ENCODERS
from plait.settings.vector import VectorMlpConfig

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


@ENCODERS.register("vector_mlp")
class VectorMlp(Encoder):
    Config = VectorMlpConfig

    def __init__(self, config: VectorMlpConfig, feature):
        super().__init__()
        layers, width = [], feature.dim
        for out in config.widths:
            layers += [nn.Linear(width, out), ACTIVATIONS[config.activation]()]
            layers += [nn.Dropout(config.dropout)] if config.dropout else []
            width = out
        self.net = nn.Sequential(*layers) if layers else nn.Identity()
        self.out_dim = width

    def forward(self, batch):
        return self.net(batch["value"])
