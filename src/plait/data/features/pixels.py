"""What `image` and `video` share: cells of uint8 pixels with channels on axis 1 of a batch (images [N, C, H, W],
clips [N, C, T, H, W]) that `prepare` turns into floats in [0, 1] on the device, augments with kornia when
training, and normalises with the input's per-channel `mean` / `std`."""

from __future__ import annotations

import torch

from plait.data.features.base import FileFeature


def augment_steps(K, settings, size: tuple[int, int], channels: int) -> list:
    """The kornia steps that `settings` turn on, in a fixed order: crop, flips, rotation, colour jitter."""
    steps = []
    if settings.crop_scale:
        steps.append(K.RandomResizedCrop(size, scale=tuple(settings.crop_scale), p=1.0))
    if settings.hflip:
        steps.append(K.RandomHorizontalFlip(p=settings.hflip))
    if getattr(settings, "vflip", 0.0):  # video's settings have neither vflip nor rotate
        steps.append(K.RandomVerticalFlip(p=settings.vflip))
    if getattr(settings, "rotate", 0.0):
        steps.append(K.RandomRotation(settings.rotate, p=1.0))
    if settings.color_jitter:
        jitter = settings.color_jitter
        steps.append(K.ColorJitter(jitter, jitter, jitter if channels == 3 else 0.0, 0.0, p=1.0))
    return steps


class PixelFeature(FileFeature):
    """A file modality decoded to uint8 pixels of `size` (height, width) with `channels` colour channels."""

    channels: int

    def __init__(self, spec, base_dir="."):
        super().__init__(spec, base_dir)
        self.size: tuple[int, int] | None = None  # `auto`: chosen from the training images when fitted
        if spec.size != "auto":
            self.size = (spec.size, spec.size) if isinstance(spec.size, int) else tuple(spec.size)
        self._augment = None  # the kornia pipeline, built on first use

    def sequential(self, K, steps: list):
        """The steps as one kornia module over a batch of this modality."""
        raise NotImplementedError

    def augmentation(self):
        """The kornia pipeline for training batches, or None when every augmentation is off."""
        settings = self.spec.augment
        if not settings.active:
            return None
        if self._augment is None:
            import kornia.augmentation as K

            self._augment = self.sequential(K, augment_steps(K, settings, self.size, self.channels))
        return self._augment

    def prepare(self, batch, training):
        """uint8 → float in [0, 1]; augment when training (random draws come from torch's global RNG, so a
        restored RNG state repeats them); normalise."""
        pixels = batch["value"].float() / 255.0
        augment = self.augmentation() if training else None
        if augment is not None:
            pixels = augment(pixels)
        shape = (1, -1) + (1,) * (pixels.dim() - 2)
        mean = torch.as_tensor(self.spec.mean, dtype=pixels.dtype, device=pixels.device).reshape(shape)
        std = torch.as_tensor(self.spec.std, dtype=pixels.dtype, device=pixels.device).reshape(shape)
        return {**batch, "value": (pixels - mean) / std}
