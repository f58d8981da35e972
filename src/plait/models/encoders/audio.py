"""Encoders for `audio` inputs: a Conv1D stack over the log-mel spectrogram, or a Hugging Face Audio Spectrogram
Transformer (AST) loaded from a local folder or built with random weights.

Each reads the batch made by the audio feature (`value`: float [N, n_mels, F] log-mel spectrogram, already
normalised; frames at or after `length` are zeros) and the fitted feature's `n_mels` and `frames` (F, the most a
clip has).

A pretrained AST was trained on Kaldi filterbanks normalised with its own mean and std; the input's log-mels are
close but not the same, so expect to fine-tune rather than freeze it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from plait.errors import PlaitError
from plait.models.encoders.base import Encoder
from plait.models.encoders.hf import hf_model
from plait.registry import ENCODERS
from plait.settings.audio import Conv1dConfig, HfAudioConfig


def time_mask(length: torch.Tensor, steps: int) -> torch.Tensor:
    """[N] real lengths → float [N, 1, steps]: 1 on real time steps, 0 on padding."""
    return (torch.arange(steps, device=length.device) < length[:, None]).unsqueeze(1).float()


@ENCODERS.register("conv1d")
class AudioConv1d(Encoder):
    """Two 1-D convolutions over the spectrogram's frames, averaged over the clip's real frames only, so a clip
    padded with silence to the batch's length gives the same vector (in eval mode) as the clip alone."""

    Config = Conv1dConfig

    def __init__(self, config: Conv1dConfig, feature):
        super().__init__()
        (c1, c2), k = config.channels, config.kernel_size
        self.block1 = nn.Sequential(nn.Conv1d(feature.n_mels, c1, k, padding=k // 2), nn.BatchNorm1d(c1), nn.ReLU())
        # ceil_mode: the last odd frame is kept (a window of one), so a clip's output never depends on padding after it
        self.pool = nn.MaxPool1d(2, ceil_mode=True)
        self.block2 = nn.Sequential(nn.Conv1d(c1, c2, k, padding=k // 2), nn.BatchNorm1d(c2), nn.ReLU())
        self.out_dim = c2

    def forward(self, batch):
        x, length = batch["value"], batch.get("length")
        if length is None:
            return self.block2(self.pool(self.block1(x))).mean(-1)
        # Zero the padding after each block, as the convolutions' own zero padding would be for the clip alone;
        # after ReLU every value is >= 0, so a zero never wins a max-pool window over a real frame.
        mask = time_mask(length, x.shape[-1])
        x = self.pool(self.block1(x * mask) * mask)
        length = (length + 1) // 2
        mask = time_mask(length, x.shape[-1])
        x = self.block2(x) * mask
        return x.sum(-1) / length.clamp(min=1)[:, None].to(x.dtype)


def check_patches(feature, patch_size: int) -> None:
    """A spectrogram smaller than one patch: a clear error instead of a convolution's."""
    for key, value in (("n_mels", feature.n_mels), ("frames", feature.frames)):
        if value < patch_size:
            raise PlaitError(f"inputs.{feature.spec.name}.{key}: {value} is less than the model's patch_size ({patch_size})")


@ENCODERS.register("hf_audio")
class AudioHf(Encoder):
    """AST: a ViT over overlapping 16×16 patches of the spectrogram; its pooled output (the mean of the CLS and
    distillation tokens after the final layer norm) is projected."""

    Config = HfAudioConfig

    def __init__(self, config: HfAudioConfig, feature):
        super().__init__()
        from transformers import ASTConfig, ASTModel

        shape = {"num_mel_bins": feature.n_mels, "max_length": feature.frames}
        self.model = hf_model(config, ASTConfig, ASTModel, {"audio-spectrogram-transformer"}, shape,
                              check=lambda model_config: check_patches(feature, model_config.patch_size))
        if self.model.config.num_mel_bins != feature.n_mels:
            bins = self.model.config.num_mel_bins
            raise PlaitError(f"inputs.{feature.spec.name}.n_mels: the model takes {bins} mel bins, the input gives {feature.n_mels}")
        self.max_length = self.model.config.max_length
        self.out_dim = self.model.config.hidden_size

    def forward(self, batch):
        spectrogram = batch["value"].transpose(1, 2)  # [N, mel, F] → AST's [N, time, mel]
        steps = spectrogram.shape[1]
        if steps > self.max_length:
            spectrogram = spectrogram[:, : self.max_length]
        elif steps < self.max_length:
            spectrogram = F.pad(spectrogram, (0, 0, 0, self.max_length - steps))
        return self.model(input_values=spectrogram).pooler_output
