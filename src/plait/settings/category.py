"""The keys of `category` inputs and of their encoders: types, defaults and doc strings, with no torch import, so a
config validates in a fraction of a second. The feature type (`plait/data/features/category.py`) and the encoders
(`plait/models/encoders/category.py`) read them."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from plait.schema import EncoderBase, InputBase


class CategorySettings(InputBase):
    default_encoder: ClassVar[str] = "embedding"  # the encoder used when the config names none
    type: Literal["category"] = "category"
    min_count: int = Field(1, ge=1, description="Values seen fewer times than this in training go to the unknown bucket.")
    max_size: int | None = Field(None, ge=1, description="Keep at most this many of the most frequent values.")


class EmbeddingConfig(EncoderBase):
    modalities: ClassVar[tuple[str, ...]] = ("category",)  # the input types it reads
    name: Literal["embedding"] = "embedding"
    dim: int = Field(16, ge=1, description="Size of each category's embedding.")
