"""The keys of `image` inputs and of their encoders: types, defaults and doc strings, with no torch import, so a
config validates in a fraction of a second. The feature type (`plait/data/features/image.py`) and the encoders
(`plait/models/encoders/image.py`) read them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, PositiveFloat, PositiveInt, ValidationInfo, field_validator, model_validator

from plait.schema import EncoderBase, InputBase, Section, check_transformers_overrides


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


def check_colour(value: str) -> str:
    """A colour Pillow knows: a name (`white`, `black`, `grey`) or `#rrggbb`."""
    from PIL import ImageColor  # Pillow only, no torch: the schema stays light

    try:
        ImageColor.getrgb(value)
    except ValueError:
        raise ValueError(f"not a colour: {value!r} (a name such as white or black, or #rrggbb)") from None
    return value


Colour = Annotated[str, AfterValidator(check_colour)]
RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}  # Pillow's numbers


def pretrained_preprocessing(folder: Path) -> dict:
    """`size`, `mean`, `std` and `resample` as a transformers image processor saved them in `preprocessor_config.json`
    (those it states). Read by hand rather than through transformers' processors: plait resizes with Pillow and
    normalises on the device itself, so only these four values of theirs matter, and the schema stays light."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read the model's preprocessing: {error}") from None
    found = {"size": _processed_size(saved), "mean": saved.get("image_mean"), "std": saved.get("image_std"),
             "resample": RESAMPLE_NAMES.get(saved.get("resample"))}
    return {key: value for key, value in found.items() if value is not None}


def _processed_size(saved: dict) -> tuple[int, int] | None:
    """The (height, width) the model sees: the centre crop when the processor crops, else the resize target; a
    `shortest_edge` alone becomes a square."""
    size = saved.get("crop_size") if saved.get("do_center_crop") else saved.get("size")
    if isinstance(size, int):
        return size, size
    if isinstance(size, dict) and "height" in size and "width" in size:
        return int(size["height"]), int(size["width"])
    if isinstance(size, dict) and "shortest_edge" in size:
        return int(size["shortest_edge"]), int(size["shortest_edge"])
    return None


class ImageSettings(InputBase):
    default_encoder: ClassVar[str] = "cnn"  # the encoder used when the config names none
    type: Literal["image"] = "image"
    size: PixelSize | Literal["auto"] = Field(
        "auto", description="Resize every image to this size: one number for a square, or [height, width]. `auto`: the "
        "training images' typical (median) height and width, never enlarged, scaled down to at most 224 pixels a side "
        "keeping their shape (chosen once, when the preprocessing is fitted, and saved with the run). With a pretrained "
        "`hf_image` encoder whose folder has a `preprocessor_config.json`, the model's own size unless set here "
        "(likewise `mean`, `std` and `resample`).",
    )
    mode: Literal["RGB", "L"] = Field("RGB", description="`RGB`: 3 channels. `L`: grayscale, 1 channel.")
    resample: Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"] = Field(
        "bilinear", description="How images are resized to `size` (Pillow's filters).",
    )
    background: Colour = Field(
        "white", description="What transparent pixels (PNG, GIF and WebP with an alpha channel or a transparent palette "
        "colour) are laid over: a colour name or #rrggbb. Whatever colour a file stores under its transparent pixels is "
        "never seen.",
    )
    mean: float | list[float] = Field(
        0.5,
        description="Subtracted from each channel after scaling pixels to [0, 1]: one number for all channels or one per "
        "channel. A pretrained `hf_image` encoder's folder gives its own (e.g. [0.485, 0.456, 0.406] for ImageNet).",
    )
    std: PositiveFloat | list[PositiveFloat] = Field(
        0.5,
        description="Each channel is divided by this after subtracting `mean`: one number or one per channel. For a "
        "pretrained `hf_image` encoder's folder gives its own (e.g. [0.229, 0.224, 0.225] for ImageNet).",
    )
    augment: ImageAugment = Field(default_factory=ImageAugment, description="Augmentation of training batches.")

    @field_validator("mean", "std")
    @classmethod
    def _per_channel(cls, value, info: ValidationInfo):
        return check_per_channel(value, info.data.get("mode", "RGB"))

    @model_validator(mode="after")
    def _as_the_pretrained_model_saw_them(self):
        """A pretrained `hf_image` model's size, mean, std and resampling, from its folder's
        `preprocessor_config.json`, for each of them the config leaves unset. Resolved here, so the run's saved
        config.yaml holds the values it trained with."""
        encoder = getattr(self, "encoder", None)  # the input model assembled in config.py adds it
        if getattr(encoder, "name", None) != "hf_image" or encoder.path is None:
            return self
        for key, value in pretrained_preprocessing(Path(encoder.path).expanduser()).items():
            if key not in self.model_fields_set:
                setattr(self, key, value)
        return self


class CnnConfig(EncoderBase):
    modalities: ClassVar[tuple[str, ...]] = ("image",)  # the input types it reads
    name: Literal["cnn"] = "cnn"
    channels: list[PositiveInt] = Field(
        [16, 32, 64],
        min_length=1,
        description="Width of each block (3×3 conv, batch norm, ReLU, 2×2 max pool); the output is the last width, "
        "averaged over the image. A cell of the last block sees 4, 10, 22, 46, 94 pixels a side after 1 to 5 blocks; "
        "training says so when that is less than half the image, where objects are only seen in pieces.",
    )


ARCHS = {
    "resnet": ("ResNetConfig", "ResNetModel", {"resnet"}),
    "vit": ("ViTConfig", "ViTModel", {"vit"}),
    "clip": ("CLIPVisionConfig", "CLIPVisionModel", {"clip", "clip_vision_model"}),
}


class HfImageConfig(EncoderBase):
    modalities: ClassVar[tuple[str, ...]] = ("image",)  # the input types it reads
    name: Literal["hf_image"] = "hf_image"
    arch: Literal["resnet", "vit", "clip"] = Field("resnet", description="Backbone family: ResNet, ViT, or CLIP's vision tower.")
    path: str | None = Field(
        None,
        description="Local folder of a pretrained Hugging Face model (config.json + weights, e.g. written by "
        "`save_pretrained`); never downloaded. null: random weights from `overrides`.",
    )
    overrides: dict[str, Any] = Field(
        {},
        description="Keys of the arch's transformers config (ResNetConfig, ViTConfig, CLIPVisionConfig), e.g. "
        "{hidden_size: 64, num_hidden_layers: 2}. Without `path` they shape a randomly initialised model; with it "
        "they change the loaded config (e.g. dropout). Without `path`, `image_size` and `num_channels` come from the input; "
        "a pretrained ViT or CLIP given another size interpolates its position embeddings.",
    )

    @field_validator("overrides")
    @classmethod
    def _known_overrides(cls, value, info: ValidationInfo):
        """A misspelt override would be silently ignored by transformers: reject it here instead."""
        if value and "arch" in info.data:
            check_transformers_overrides(value, ARCHS[info.data["arch"]][0])
        return value

