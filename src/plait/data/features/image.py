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
from PIL import Image, ImageOps, UnidentifiedImageError

from plait.data.features.pixels import PixelFeature
from plait.data.features.preview_media import on_background, thumbnail
from plait.errors import BadSample, file_error_reason, first_line
from plait.html import image_uri, img
from plait.registry import FEATURES
from plait.settings.image import ImageSettings


def short_reason(error: Exception) -> str:
    """Why an image file could not be used, in a few words."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image file"
    text = first_line(error)
    return file_error_reason(error) or ("truncated or corrupt image" if "truncated" in text.lower() else text)


@FEATURES.register("image")
class ImageFeature(PixelFeature):
    Settings = ImageSettings
    cache_by_default = True
    cache_keys = ("size", "mode", "resample", "background")

    def __init__(self, spec: ImageSettings, base_dir="."):
        super().__init__(spec, base_dir)
        self.channels = 3 if spec.mode == "RGB" else 1

    def encode(self, value):
        path = self.locate(value)
        local = self.local_path(value)  # a remote image is downloaded once, then read from disk
        try:
            with open(local, "rb") as handle:
                image = Image.open(handle)
                image.load()  # decode everything now, so a truncated file fails here, not later
            image = ImageOps.exif_transpose(image)  # camera photos: honour the orientation tag
            image = on_background(image, self.spec.background)
            height, width = self.size
            image = image.convert(self.spec.mode).resize((width, height), Image.Resampling[self.spec.resample.upper()])
        except Exception as error:  # Pillow raises many kinds (OSError, SyntaxError, ValueError, ...)
            raise BadSample(f"cannot read image '{path}': {short_reason(error)}") from None
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())
        return pixels.unsqueeze(0) if pixels.ndim == 2 else pixels.permute(2, 0, 1).contiguous()

    def empty(self):
        return torch.zeros((self.channels, *self.size), dtype=torch.uint8)

    def sequential(self, K, steps):
        return K.AugmentationSequential(*steps)

    def preview(self, value, size):
        """A JPEG thumbnail fitting size × size."""
        return img(image_uri(thumbnail(self.local_path(value), size), "JPEG"), os.path.basename(str(value)))
