"""The keys of `vector` inputs and of their encoder: types, defaults and doc strings, with no torch import. The
feature type (`plait/data/features/vector.py`) and the encoder (`plait/models/encoders/vector.py`) read them."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt

from plait.schema import Activation, EncoderBase, InputBase


class VectorSettings(InputBase):
    default_encoder: ClassVar[str] = "vector_mlp"  # the encoder used when the config names none
    type: Literal["vector"] = "vector"
    dim: int | None = Field(
        None, ge=1,
        description="Length of every row's vector. null: the length the training rows have (the most common one); a "
        "row of another length is a bad sample.",
    )
    normalize: Literal["none", "standard", "l2"] = Field(
        "standard",
        description="`standard`: per dimension, subtract the training rows' mean and divide by their standard "
        "deviation (saved with the run); `l2`: scale each vector to unit length; `none`: as given.",
    )


class VectorMlpConfig(EncoderBase):
    modalities: ClassVar[tuple[str, ...]] = ("vector",)  # the input types it reads
    name: Literal["vector_mlp"] = "vector_mlp"
    hidden: list[PositiveInt] = Field(
        [64], description="Width of each hidden layer (Linear → activation → dropout). `[]` with no `projection`: "
        "the vector goes to fusion as it is (after `normalize`).",
    )
    activation: Activation = Field("relu", description="Activation after each layer.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout after each layer's activation.")
