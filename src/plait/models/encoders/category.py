"""Encoder for `category` inputs: a learned embedding per vocabulary entry."""

from __future__ import annotations

from torch import nn

from plait.models.encoders.base import Encoder
from plait.registry import ENCODERS
from plait.settings.category import EmbeddingConfig


@ENCODERS.register("embedding")
class CategoryEmbedding(Encoder):
    Config = EmbeddingConfig

    def __init__(self, config: EmbeddingConfig, feature):
        super().__init__()
        self.embedding = nn.Embedding(len(feature.vocabulary), config.dim)
        self.out_dim = config.dim

    def forward(self, batch):
        return self.embedding(batch["value"])
