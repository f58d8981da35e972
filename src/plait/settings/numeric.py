"""The keys of `numeric` inputs and of their encoders: types, defaults and doc strings, with no torch import, so a
config validates in a fraction of a second. The feature type (`plait/data/features/numeric.py`) and the encoders
(`plait/models/encoders/numeric.py`) read them."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from plait.schema import EncoderBase, InputBase


class NumericSettings(InputBase):
    default_encoder: ClassVar[str] = "mlp"  # the encoder used when the config names none
    type: Literal["numeric"] = "numeric"
    normalize: Literal["standard", "none"] = Field(
        "standard", description="`standard`: subtract the training mean, divide by the training standard deviation."
    )


class MlpConfig(EncoderBase):
    modalities: ClassVar[tuple[str, ...]] = ("numeric",)  # the input types it reads
    name: Literal["mlp"] = "mlp"
    hidden: int = Field(32, ge=1, description="Width of the hidden layer and of the output.")
