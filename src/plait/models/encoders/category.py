"""Encoder for `category` inputs: a learned embedding per vocabulary entry."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from plait.models.encoders.base import Encoder
from plait.registry import ENCODERS
from plait.schema import EncoderBase


class EmbeddingConfig(EncoderBase):
    name: Literal["embedding"] = "embedding"
    dim: int = Field(16, ge=1, description="Size of each category's embedding.")


@ENCODERS.register("embedding")
class CategoryEmbedding(Encoder):
    Config = EmbeddingConfig
    modalities = ("category",)

    def __init__(self, config: EmbeddingConfig, feature):
        super().__init__()
        self.embedding = nn.Embedding(len(feature.vocabulary), config.dim)
        self.out_dim = config.dim

    def forward(self, batch):
        return self.embedding(batch["value"])
