"""`image`: a file path per row (local, relative to the data root, or any fsspec URL such as `s3://`), decoded
with Pillow, converted to RGB or grayscale and resized once when the dataset is built.

Cells become uint8 tensors [C, H, W] (4× smaller in memory than floats); `prepare` turns a batch into floats in
[0, 1] on the device, applies kornia augmentations when training, then normalises with `mean` / `std`.
Encoders read the fitted feature's `channels` (3 or 1) and `size` (height, width).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import AfterValidator, Field, PositiveFloat, ValidationInfo, field_validator

from plait.data.features.base import FileFeature
from plait.errors import BadSample
from plait.registry import FEATURES
from plait.schema import InputBase, Section


class FlipCropJitter(Section):
    """The augmentations images and video share; all off by default."""

    hflip: float = Field(0.0, ge=0, le=1, description="Probability of flipping left to right.")
    crop_scale: tuple[float, float] | None = Field(
        None,
        description="Random resized crop: cut a region covering this range of the area, e.g. [0.6, 1.0], and resize "
        "it back to `size` (null: off).",
    )
    color_jitter: float = Field(
        0.0, ge=0, le=1, description="Strength of random brightness, contrast and (RGB only) saturation changes (0: off)."
    )

    @field_validator("crop_scale")
    @classmethod
    def _crop_range(cls, value):
        if value is not None and not 0 < value[0] <= value[1] <= 1:
            raise ValueError(f"needs 0 < low <= high <= 1 (got {list(value)})")
        return value

    @property
    def active(self) -> bool:
        return bool(self.hflip or self.crop_scale or self.color_jitter)


class ImageAugment(FlipCropJitter):
    """Random changes applied to training batches only, on the device; all off by default."""

    vflip: float = Field(0.0, ge=0, le=1, description="Probability of flipping an image upside down.")
    rotate: float = Field(0.0, ge=0, le=180, description="Rotate by a random angle in [-rotate, rotate] degrees (0: off).")

    @property
    def active(self) -> bool:
        return bool(super().active or self.vflip or self.rotate)


def check_size(value):
    if min((value,) if isinstance(value, int) else value) < 1:
        raise ValueError(f"must be at least 1 pixel (got {value})")
    return value


def check_per_channel(value, mode: str = "RGB"):
    """`mean` / `std`: one number, or one per channel of `mode`."""
    channels = 3 if mode == "RGB" else 1
    if isinstance(value, list) and len(value) not in (1, channels):
        wanted = "one value" if channels == 1 else f"one value or {channels}"
        raise ValueError(f"needs {wanted} for mode {mode} (got {len(value)})")
    return value


PixelSize = Annotated[int | tuple[int, int], AfterValidator(check_size)]


class ImageSettings(InputBase):
    type: Literal["image"] = "image"
    size: PixelSize = Field(
        64, description="Resize every image to this size: one number for a square, or [height, width]."
    )
    mode: Literal["RGB", "L"] = Field("RGB", description="`RGB`: 3 channels. `L`: grayscale, 1 channel.")
    mean: float | list[float] = Field(
        0.5,
        description="Subtracted from each channel after scaling pixels to [0, 1]: one number for all channels or one per "
        "channel. For a pretrained `hf_image` encoder use the model's own, e.g. [0.485, 0.456, 0.406] for ImageNet.",
    )
    std: PositiveFloat | list[PositiveFloat] = Field(
        0.5,
        description="Each channel is divided by this after subtracting `mean`: one number or one per channel. For a "
        "pretrained `hf_image` encoder use the model's own, e.g. [0.229, 0.224, 0.225] for ImageNet.",
    )
    augment: ImageAugment = Field(default_factory=ImageAugment, description="Augmentation of training batches.")

    @field_validator("mean", "std")
    @classmethod
    def _per_channel(cls, value, info: ValidationInfo):
        return check_per_channel(value, info.data.get("mode", "RGB"))


def short_reason(error: Exception) -> str:
    """Why an image file could not be used, in a few words."""
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(error, UnidentifiedImageError):
        return "not an image file"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "truncated" in text.lower():
        return "truncated or corrupt image"
    return text[:200]


@FEATURES.register("image")
class ImageFeature(FileFeature):
    Settings = ImageSettings
    default_encoder = "cnn"
    cache_by_default = True
    cache_keys = ("size", "mode")

    def __init__(self, spec: ImageSettings, base_dir="."):
        super().__init__(spec, base_dir)
        self.channels = 3 if spec.mode == "RGB" else 1
        self.size: tuple[int, int] = (spec.size, spec.size) if isinstance(spec.size, int) else tuple(spec.size)
        self._augment = None  # the kornia pipeline, built on first use

    def encode(self, value):
        path = self.locate(value)
        local = self.local_path(value)  # a remote image is downloaded once, then read from disk
        try:
            with open(local, "rb") as handle:
                image = Image.open(handle)
                image.load()  # decode everything now, so a truncated file fails here, not later
            image = ImageOps.exif_transpose(image)  # camera photos: honour the orientation tag
            height, width = self.size
            image = image.convert(self.spec.mode).resize((width, height), Image.Resampling.BILINEAR)
        except Exception as error:  # Pillow raises many kinds (OSError, SyntaxError, ValueError, ...)
            raise BadSample(f"cannot read image '{path}': {short_reason(error)}") from None
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())
        return pixels.unsqueeze(0) if pixels.ndim == 2 else pixels.permute(2, 0, 1).contiguous()

    def empty(self):
        return torch.zeros((self.channels, *self.size), dtype=torch.uint8)

    def augmentation(self):
        """The kornia pipeline for training batches, or None when every augmentation is off."""
        settings = self.spec.augment
        if not settings.active:
            return None
        if self._augment is None:
            import kornia.augmentation as K

            steps = []
            if settings.crop_scale:
                steps.append(K.RandomResizedCrop(self.size, scale=tuple(settings.crop_scale), p=1.0))
            if settings.hflip:
                steps.append(K.RandomHorizontalFlip(p=settings.hflip))
            if settings.vflip:
                steps.append(K.RandomVerticalFlip(p=settings.vflip))
            if settings.rotate:
                steps.append(K.RandomRotation(settings.rotate, p=1.0))
            if settings.color_jitter:
                jitter = settings.color_jitter
                steps.append(K.ColorJitter(jitter, jitter, jitter if self.channels == 3 else 0.0, 0.0, p=1.0))
            self._augment = K.AugmentationSequential(*steps)
        return self._augment

    def prepare(self, batch, training):
        """uint8 → float in [0, 1]; augment when training (random draws come from torch's global RNG, so a
        restored RNG state repeats them); normalise."""
        images = batch["value"].float() / 255.0
        augment = self.augmentation() if training else None
        if augment is not None:
            images = augment(images)
        shape = (1, -1, 1, 1)
        mean = torch.as_tensor(self.spec.mean, dtype=images.dtype, device=images.device).reshape(shape)
        std = torch.as_tensor(self.spec.std, dtype=images.dtype, device=images.device).reshape(shape)
        return {**batch, "value": (images - mean) / std}
