"""`video`: a file path per row (local, relative to the data root, or any fsspec URL), decoded with PyAV
(FFmpeg: mp4, avi, mkv, webm, ...). A fixed number of frames is picked from each clip and resized once,
when the dataset is built.

Cells become `{"value": uint8 [3, T, H, W], "length": int64 []}`: a clip with fewer frames than T is padded
with black frames at the end and `length` counts the real ones. `prepare` turns a batch into floats in [0, 1]
on the device, applies kornia augmentations when training (the same transform on every frame of a clip),
normalises with `mean` / `std`, and sets padded frames back to 0.
Encoders read the fitted feature's `channels` (3), `frames` (T) and `size` (height, width).
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np
import torch

from plait.data import media
from plait.data.features.pixels import PixelFeature
from plait.data.features.preview_media import clip_length, counted, poster_frame
from plait.errors import BadSample
from plait.html import captioned, image_uri, img
from plait.registry import FEATURES
from plait.settings.video import VideoSettings


def uniform_indices(total: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over `total` frames (the middle of each of `count` equal parts);
    every frame when the clip has no more than `count`."""
    if total <= count:
        return list(range(total))
    return [int((i + 0.5) * total / count) for i in range(count)]


@FEATURES.register("video")
class VideoFeature(PixelFeature):
    Settings = VideoSettings
    cache_by_default: ClassVar[bool] = True
    cache_keys: ClassVar[tuple[str, ...]] = ("frames", "sampling", "fps", "size")

    def __init__(self, spec: VideoSettings, base_dir="."):
        super().__init__(spec, base_dir)
        self.channels = 3
        self.frames: int = spec.frames

    def decode(self, path: str) -> np.ndarray:
        """The sampled frames of the clip at `path`: RGB uint8 [n, H, W, 3], n <= `frames`."""
        if self.spec.sampling == "fps":
            return media.read_frames_every(path, self.frames, self.spec.fps, self.size)
        total = media.count_video_frames(path)
        return media.read_frames_at(path, uniform_indices(total, self.frames), self.size)

    def encode(self, value):
        path = self.locate(value)
        local = self.local_path(value)  # a remote clip is downloaded once, then read from disk
        try:
            pixels = self.decode(local)
        except media.MediaError as error:
            raise BadSample(f"cannot read video '{path}': {error}") from None
        if len(pixels) == 0:
            raise BadSample(f"cannot read video '{path}': no frames")
        cell = self.empty()
        cell["value"][:, : len(pixels)] = torch.from_numpy(pixels).permute(3, 0, 1, 2)
        cell["length"].fill_(len(pixels))
        return cell

    def empty(self):
        return {
            "value": torch.zeros((self.channels, self.frames, *self.size), dtype=torch.uint8),
            "length": torch.tensor(0, dtype=torch.int64),
        }

    def sequential(self, K, steps):
        return K.VideoSequential(*steps, data_format="BCTHW", same_on_frame=True)

    def prepare(self, batch, training):
        """As for images (see `PixelFeature`), then padded frames back to 0, so they carry no signal whatever the
        mean."""
        batch = super().prepare(batch, training)
        if "length" not in batch:
            return batch
        clips = batch["value"]
        real = torch.arange(clips.shape[2], device=clips.device) < batch["length"].to(clips.device)[:, None]
        return {**batch, "value": clips * real[:, None, :, None, None]}

    def preview(self, value, size):
        """The frame on screen at the middle of the clip (one seek, a few frames decoded), captioned with the clip's
        duration and frame count."""
        poster, seconds, frames = poster_frame(self.local_path(value), size)
        caption = clip_length(seconds) + (f" · {counted(frames, 'frame')}" if frames else "")
        return captioned(img(image_uri(poster, "JPEG"), os.path.basename(str(value))), caption)
