"""The keys of `video` inputs and of their encoders: types, defaults and doc strings, with no torch import, so a
config validates in a fraction of a second. The feature type (`plait/data/features/video.py`) and the encoders
(`plait/models/encoders/video.py`) read them."""

from __future__ import annotations

from pathlib import Path

from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator

from plait.schema import EncoderBase, InputBase, Projection, check_transformers_overrides, projection_field
from plait.settings.image import FlipCropJitter, PixelSize, check_per_channel


KINETICS_MEAN = [0.43216, 0.394666, 0.37645]


KINETICS_STD = [0.22803, 0.22145, 0.216989]


class VideoAugment(FlipCropJitter):
    """Random changes applied to training batches only, on the device, the same on every frame of a clip;
    all off by default."""


class VideoSettings(InputBase):
    default_encoder: ClassVar[str] = "r3d18"  # the encoder used when the config names none
    type: Literal["video"] = "video"
    frames: PositiveInt = Field(16, description="Frames taken from each clip (T).")
    sampling: Literal["uniform", "fps"] = Field(
        "uniform",
        description="`uniform`: `frames` frames spread evenly over the whole clip, whatever its length (the middle "
        "frame of each of `frames` equal parts). `fps`: a window of `frames` frames taken `fps` times per second "
        "from the start of the clip; a clip shorter than the window is padded.",
    )
    fps: PositiveFloat = Field(8.0, description="Frames per second taken with `sampling: fps` (unused otherwise).")
    size: PixelSize = Field(
        112, description="Resize every frame to this size: one number for a square, or [height, width]."
    )
    mean: float | list[float] = Field(
        KINETICS_MEAN,
        description="Subtracted from each channel after scaling pixels to [0, 1]: one number for all channels or one "
        "per channel (RGB). The default is the Kinetics-400 mean that pretrained video models such as `r3d18` expect.",
    )
    std: PositiveFloat | list[PositiveFloat] = Field(
        KINETICS_STD,
        description="Each channel is divided by this after subtracting `mean`: one number or one per channel. The "
        "default is the Kinetics-400 standard deviation.",
    )
    augment: VideoAugment = Field(default_factory=VideoAugment, description="Augmentation of training batches.")

    @field_validator("mean", "std")
    @classmethod
    def _per_channel(cls, value):
        return check_per_channel(value)


class R3d18Config(EncoderBase):
    modalities: ClassVar[tuple[str, ...]] = ("video",)  # the input types it reads
    name: Literal["r3d18"] = "r3d18"
    projection: Projection | None = projection_field(128)
    weights: str | None = Field(
        None,
        description="Local file of torchvision `r3d_18` weights (`.pth` / `.pt` state dict, or `.safetensors`), e.g. "
        "the Kinetics-400 `r3d_18-b3b3357e.pth`; never downloaded. null: random weights. Needs 3-channel video.",
    )

    @field_validator("weights")
    @classmethod
    def _known_format(cls, value):
        if value is not None and Path(value).suffix not in {".pth", ".pt", ".safetensors"}:
            raise ValueError(f"{value}: expected a .pth, .pt or .safetensors file")
        return value


class Cnn3dConfig(EncoderBase):
    modalities: ClassVar[tuple[str, ...]] = ("video",)  # the input types it reads
    name: Literal["cnn3d"] = "cnn3d"
    channels: list[PositiveInt] = Field(
        [16, 32, 64],
        min_length=1,
        description="Width of each block (3×3×3 conv, batch norm, ReLU, 2×2×2 max pool; time is pooled only while "
        "more than one frame is left); the last block is averaged over time and space.",
    )
    projection: Projection | None = projection_field(128)


class HfVideoConfig(EncoderBase):
    modalities: ClassVar[tuple[str, ...]] = ("video",)  # the input types it reads
    name: Literal["hf_video"] = "hf_video"
    path: str | None = Field(
        None,
        description="Local folder of a pretrained Hugging Face VideoMAE (config.json + weights, e.g. written by "
        "`save_pretrained`); never downloaded. Its frame count and image size must equal the input's. null: random "
        "weights from `overrides`.",
    )
    overrides: dict[str, Any] = Field(
        {},
        description="Keys of transformers' VideoMAEConfig, e.g. {hidden_size: 64, num_hidden_layers: 2, "
        "num_attention_heads: 2, intermediate_size: 128, tubelet_size: 2}. Without `path` they shape a randomly "
        "initialised model; with it they change the loaded config (e.g. dropout). `num_frames`, `image_size` and "
        "`num_channels` come from the input.",
    )
    projection: Projection | None = projection_field(128)

    @field_validator("overrides")
    @classmethod
    def _known_overrides(cls, value):
        return check_transformers_overrides(value, "VideoMAEConfig", VIDEO_FROM_INPUT)


VIDEO_FROM_INPUT = {"num_frames": "frames", "image_size": "size", "num_channels": "channels"}
