"""The keys of `sequence` inputs and of their encoders: types, defaults and doc strings, with no torch import, so a
config validates in a fraction of a second. The feature type (`plait/data/features/sequence.py`) and the encoders
(`plait/models/encoders/sequence.py`) read them."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt, field_validator

from plait.schema import EncoderBase, InputBase, Section

POSITION_CHANNELS = 16  # width of the sinusoidal time-step code that `positional_encoding` adds as channels


class TokenIds(Section):
    vocab_size: PositiveInt | None = Field(
        None, description="Ids run from 0 to vocab_size - 1; an id outside is a bad sample. null: the largest id in the "
        "training split + 1.",
    )
    dim: PositiveInt = Field(32, description="Width of each id's learned embedding, the encoder's input channels.")


class SequenceSettings(InputBase):
    default_encoder: ClassVar[str] = "lstm"  # the encoder used when the config names none
    type: Literal["sequence"] = "sequence"
    max_length: PositiveInt | None = Field(
        None, description="Keep at most this many steps of each sequence (which ones: `crop`). null: all of them."
    )
    crop: Literal["start", "end", "center"] = Field(
        "start", description="Which steps of a longer sequence are kept: the first, the last, or the middle ones."
    )
    scaling: Literal["standard", "minmax", "none"] = Field(
        "standard",
        description="Per channel, from the training split's steps: `standard` subtracts the mean and divides by the "
        "standard deviation; `minmax` maps the minimum to 0 and the maximum to 1; `none` leaves values as they are. "
        "A constant channel is only shifted.",
    )
    member: str | None = Field(
        None,
        description="Which array to use when a cell's file holds several (a .npz file, or a pickled dict). null: the "
        "only one there.",
    )
    tokens: TokenIds | None = Field(
        None,
        description="The steps are integer token ids (one channel, e.g. words or symbols numbered 0, 1, 2, ...): each "
        "is looked up in a learned embedding of `dim` numbers (`nn.Embedding(vocab_size, dim)`) instead of being "
        "scaled as a number (`scaling` does not apply). null: the steps are measurements. A column of whole numbers "
        "with few distinct values read as measurements gets a warning.",
    )
    layout: Literal["length_channels", "channels_length"] = Field(
        "length_channels",
        description="How a 2-D array is laid out: `length_channels` is [steps, channels]; `channels_length` is "
        "[channels, steps] and is transposed.",
    )


class RecurrentKeys(EncoderBase):
    """The recurrent part both encoders share."""

    cell: Literal["lstm", "gru"] = Field("lstm", description="Recurrent cell: `lstm` or `gru` (fewer weights, often as good).")
    hidden: PositiveInt = Field(64, description="Hidden size of the recurrent cell (per direction).")
    layers: PositiveInt = Field(1, description="Stacked recurrent layers.")
    bidirectional: bool = Field(False, description="Also read each sequence backwards; doubles the recurrent output size.")
    pooling: Literal["last", "mean", "max"] = Field(
        "last",
        description="How the recurrent outputs become one vector: `last`, the final state of each direction (the "
        "forward one at the row's last real step); `mean` or `max` over the row's real steps.",
    )
    positional_encoding: bool = Field(
        False,
        description=f"Append a fixed sinusoidal code of the time step ({POSITION_CHANNELS} channels) to each step's "
        "values before the first layer, so the network is told where in the series a step is.",
    )


class LstmConfig(RecurrentKeys):
    modalities: ClassVar[tuple[str, ...]] = ("sequence",)  # the input types it reads
    name: Literal["lstm"] = "lstm"
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout between stacked recurrent layers (needs layers > 1).")


class CnnLstmConfig(RecurrentKeys):
    modalities: ClassVar[tuple[str, ...]] = ("sequence",)  # the input types it reads
    name: Literal["cnn_lstm"] = "cnn_lstm"
    filters: PositiveInt = Field(32, description="Filters of the first convolution block; each next block doubles them.")
    blocks: PositiveInt = Field(
        3, description="Convolution blocks, each Conv1d → BatchNorm → ReLU → MaxPool; every block divides the length by `pool`."
    )
    kernel_size: PositiveInt = Field(
        5, description="Time steps each convolution sees; odd, so it is centred (zero-padded by kernel_size // 2 each side)."
    )
    pool: PositiveInt = Field(2, description="Window and stride of each block's max pool over time.")
    dense: list[PositiveInt] = Field(
        [128], description="Widths of the Linear + ReLU layers after the recurrence; the last is the output size (empty: "
        "none, the pooled recurrent vector is the output).",
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout after each dense layer.")

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value):
        if value % 2 == 0:  # torch pads an even kernel unevenly, so steps would not line up across blocks
            raise ValueError(f"{value} is even; an odd kernel keeps every step centred (e.g. {value + 1})")
        return value


