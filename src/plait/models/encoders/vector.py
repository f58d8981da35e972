"""Encoder for `vector` inputs: an MLP over the (normalised) vector, or nothing at all (`hidden: []`), so features
extracted earlier go straight to fusion."""

from __future__ import annotations

from plait.models.encoders.base import Encoder
from plait.models.layers import mlp
from plait.registry import ENCODERS
from plait.settings.vector import VectorMlpConfig


@ENCODERS.register("vector_mlp")
class VectorMlp(Encoder):
    Config = VectorMlpConfig

    def __init__(self, config: VectorMlpConfig, feature):
        super().__init__()
        self.net, self.out_dim = mlp(feature.dim, config.hidden, config.dropout, config.activation)

    def forward(self, batch):
        return self.net(batch["value"])
