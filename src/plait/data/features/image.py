"""`image`: a file path per row (local, relative to the data root, or any fsspec URL such as `s3://`), decoded
with Pillow, converted to RGB or grayscale and resized once when the dataset is built.

Cells become uint8 tensors [C, H, W] (4× smaller in memory than floats); `prepare` turns a batch into floats in
[0, 1] on the device, applies kornia augmentations when training, then normalises with `mean` / `std`.
Encoders read the fitted feature's `channels` (3 or 1) and `size` (height, width).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from plait.data.features.pixels import PixelFeature
from plait.data.features.preview_media import on_background, thumbnail
from plait.errors import BadSample, file_error_reason, first_line
from plait.html import image_uri, img
from plait.registry import FEATURES
from plait.settings.image import ImageSettings


AUTO_SAMPLE = 200  # training images whose headers choose `size: auto`
AUTO_MAX_SIDE = 224  # `size: auto` never goes beyond this many pixels a side
AUTO_FALLBACK = 64  # when no training image can be read (each bad file is then reported on encode)
SIDEWAYS = {5, 6, 7, 8}  # EXIF orientations that turn a photo a quarter turn


def short_reason(error: Exception) -> str:
    """Why an image file could not be used, in a few words."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image file"
    text = first_line(error)
    return file_error_reason(error) or ("truncated or corrupt image" if "truncated" in text.lower() else text)


def evenly_spaced(values: list, most: int) -> list:
    """At most `most` of `values`, spread over the whole list (a deterministic sample)."""
    step = max(1, len(values) // most)
    return values[::step][:most]


def typical_size(paths: list[str]) -> tuple[int, int]:
    """The median (height, width) of the images (as displayed: EXIF rotations swap them), never enlarged, scaled
    down so the longer side is at most AUTO_MAX_SIDE; read from the files' headers. Files that cannot be read are
    passed over here (encoding reports them)."""
    sizes = []
    for path in paths:
        try:
            with Image.open(path) as image:
                width, height = image.size
                if image.getexif().get(ExifTags.Base.Orientation) in SIDEWAYS:
                    width, height = height, width
            sizes.append((height, width))
        except Exception:  # Pillow raises many kinds for a broken file
            continue
    if not sizes:
        return AUTO_FALLBACK, AUTO_FALLBACK
    height, width = (int(np.median([size[axis] for size in sizes])) for axis in (0, 1))
    scale = min(1.0, AUTO_MAX_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


@FEATURES.register("image")
class ImageFeature(PixelFeature):
    Settings = ImageSettings
    cache_by_default = True
    cache_keys = ("size", "mode", "resample", "background")

    def __init__(self, spec: ImageSettings, base_dir="."):
        super().__init__(spec, base_dir)
        self.channels = 3 if spec.mode == "RGB" else 1

    def fit(self, values):
        if self.spec.size == "auto":
            paths = []
            for value in evenly_spaced(values, AUTO_SAMPLE):
                try:
                    paths.append(self.local_path(value))
                except BadSample:  # reported when the cell is encoded
                    continue
            self.size = typical_size(paths)

    def state_dict(self):
        return {"size": list(self.size)} if self.spec.size == "auto" else {}

    def load_state_dict(self, state):
        if "size" in state:
            self.size = tuple(state["size"])

    def encode(self, value):
        path = self.locate(value)
        local = self.local_path(value)  # a remote image is downloaded once, then read from disk
        try:
            with open(local, "rb") as handle:
                image = Image.open(handle)
                image.load()  # decode everything now, so a truncated file fails here, not later
            image = ImageOps.exif_transpose(image)  # camera photos: honour the orientation tag
            image = on_background(image, self.spec.background).convert(self.spec.mode)
        except Exception as error:  # Pillow raises many kinds (OSError, SyntaxError, ValueError, ...)
            raise BadSample(f"cannot read image '{path}': {short_reason(error)}") from None
        if self.size is None:
            raise RuntimeError(f"{self.spec.name}: size auto is chosen when the preprocessing is fitted; fit it first")
        height, width = self.size
        image = image.resize((width, height), Image.Resampling[self.spec.resample.upper()])
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())
        return pixels.unsqueeze(0) if pixels.ndim == 2 else pixels.permute(2, 0, 1).contiguous()

    def empty(self):
        return torch.zeros((self.channels, *self.size), dtype=torch.uint8)

    def sequential(self, K, steps):
        return K.AugmentationSequential(*steps)

    def preview(self, value, size):
        """A JPEG thumbnail fitting size × size."""
        return img(image_uri(thumbnail(self.local_path(value), size), "JPEG"), os.path.basename(str(value)))
