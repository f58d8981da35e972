"""Encoders for `video` inputs: ResNet3D-18 (optionally from a torchvision weights file), a small 3-D CNN trained
from scratch, or a Hugging Face VideoMAE loaded from a local folder or built with random weights.

Each reads the batch made by the video feature (`value`: float [N, C, T, H, W], already normalised; frames at or
after `length` are zeros) and the fitted feature's `channels`, `frames` (T) and `size` (H, W), and gives one pooled vector
per clip (`projection` maps it to `out_dim`). Padded frames are averaged in like real ones (as torchvision does); a
short clip's trailing zeros are part of what the model learns to read.

For torchvision's Kinetics-400 weights, set the input's mean / std to [0.43216, 0.394666, 0.37645] /
[0.22803, 0.22145, 0.216989].
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from plait.errors import PlaitError
from plait.models.encoders.base import Encoder
from plait.models.encoders.hf import hf_model, square_or_pair
from plait.registry import ENCODERS
from plait.settings.video import Cnn3dConfig, HfVideoConfig, R3d18Config

# ---- ResNet3D-18 ---------------------------------------------------------------------------------------------


def conv_bn(width_in: int, width: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv3d(width_in, width, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(width)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, width_in: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv_bn(width_in, width, stride)
        self.conv2 = conv_bn(width, width, relu=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or width_in != width:
            self.downsample = nn.Sequential(nn.Conv3d(width_in, width, 1, stride=stride, bias=False), nn.BatchNorm3d(width))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


class R3D18(nn.Module):
    """torchvision's `r3d_18` with the same module names, so its state dict loads as is. `fc` (400 Kinetics
    classes) is kept only for that; `features` stops at the pooled 512-d vector."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(channels, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
        )
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(512, 400)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.avgpool(x).flatten(1)


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise PlaitError(f"{path}: no such weights file (plait never downloads weights)")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file), device="cpu")
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt or foreign file fails in many ways, all the user's to fix
        raise PlaitError(f"{path}: cannot read weights: {error}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PlaitError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return state


def load_weights(module: nn.Module, path: str) -> None:
    """Strict load: every key present, none extra, every shape equal; else one error listing what differs."""
    state, expected = read_state_dict(path), module.state_dict()
    problems = []
    missing, unexpected = [k for k in expected if k not in state], [k for k in state if k not in expected]
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
            problems.append(f"{label} keys: {shown}")
    for key in expected.keys() & state.keys():
        if state[key].shape != expected[key].shape:
            problems.append(f"{key}: shape {tuple(state[key].shape)} in the file, {tuple(expected[key].shape)} in the model")
    if problems:
        raise PlaitError(f"{path}: not torchvision r3d_18 weights; " + "; ".join(problems))
    module.load_state_dict(state)


@ENCODERS.register("r3d18")
class VideoR3d18(Encoder):
    """ResNet3D-18 (Tran et al. 2018, R3D): 3×3×3 convolutions throughout, its 512-d pooled features projected."""

    Config = R3d18Config

    def __init__(self, config: R3d18Config, feature):
        super().__init__()
        if config.weights is not None and feature.channels != 3:
            raise PlaitError(
                f"inputs.{feature.spec.name}: r3d18 weights take 3-channel (RGB) video, the input gives {feature.channels}"
            )
        self.backbone = R3D18(feature.channels)
        if config.weights is not None:
            load_weights(self.backbone, config.weights)
        self.out_dim = 512

    def forward(self, batch):
        return self.backbone.features(batch["value"])


# ---- small 3-D CNN -------------------------------------------------------------------------------------------


@ENCODERS.register("cnn3d")
class VideoCnn3d(Encoder):
    """A small 3-D convolutional network trained from scratch; fits any clip length, size and channel count."""

    Config = Cnn3dConfig

    def __init__(self, config: Cnn3dConfig, feature):
        super().__init__()
        layers, width_in, frames = [], feature.channels, feature.frames
        for width in config.channels:
            time = 2 if frames > 1 else 1
            # ceil_mode: an odd or 1-wide dimension rounds up, so deep stacks on tiny clips never shrink to nothing
            layers += [nn.Conv3d(width_in, width, 3, padding=1), nn.BatchNorm3d(width), nn.ReLU(),
                       nn.MaxPool3d((time, 2, 2), ceil_mode=True)]
            width_in, frames = width, -(-frames // time)
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.out_dim = width_in

    def forward(self, batch):
        return self.net(batch["value"])


# ---- Hugging Face VideoMAE -----------------------------------------------------------------------------------


def check_tubelets(feature, tubelet_size: int) -> None:
    if feature.frames % tubelet_size:
        raise PlaitError(f"inputs.{feature.spec.name}.frames: {feature.frames} is not a multiple of the model's tubelet_size ({tubelet_size})")


@ENCODERS.register("hf_video")
class VideoHf(Encoder):
    """VideoMAE: a ViT over tubelets (`tubelet_size` frames × `patch_size`² pixels), mean-pooled over tokens."""

    Config = HfVideoConfig

    def __init__(self, config: HfVideoConfig, feature):
        super().__init__()
        from transformers import VideoMAEConfig, VideoMAEModel

        shape = {"num_frames": feature.frames, "image_size": square_or_pair(feature.size), "num_channels": feature.channels}
        self.model = hf_model(config, VideoMAEConfig, VideoMAEModel, {"videomae"}, shape,
                              check=lambda model_config: check_tubelets(feature, model_config.tubelet_size))
        self._check_shape(feature)
        self.out_dim = hidden = self.model.config.hidden_size
        # use_mean_pooling models end without a layer norm: VideoMAE's classifier norms the mean (its fc_norm)
        self.norm = nn.LayerNorm(hidden, eps=self.model.config.layer_norm_eps) if self.model.layernorm is None else nn.Identity()

    def _check_shape(self, feature) -> None:
        model, name = self.model.config, feature.spec.name
        size = tuple(model.image_size) if isinstance(model.image_size, (list, tuple)) else (model.image_size,) * 2
        patch = model.patch_size if isinstance(model.patch_size, int) else min(model.patch_size)
        if model.num_frames != feature.frames:
            raise PlaitError(f"inputs.{name}.frames: the model takes {model.num_frames} frames, the input gives {feature.frames}")
        if size != tuple(feature.size):
            given = f"{feature.size[0]}×{feature.size[1]}"
            raise PlaitError(f"inputs.{name}.size: the model takes {size[0]}×{size[1]} frames, the input gives {given}")
        if min(size) < patch:
            raise PlaitError(f"inputs.{name}.size: {list(size)} is smaller than the model's patch_size ({patch})")
        if model.num_channels != feature.channels:
            raise PlaitError(f"inputs.{name}: the model takes {model.num_channels}-channel video, the input gives {feature.channels}")

    def forward(self, batch):
        pixels = batch["value"].permute(0, 2, 1, 3, 4)  # [N, C, T, H, W] → VideoMAE's [N, T, C, H, W]
        hidden = self.model(pixel_values=pixels).last_hidden_state  # no CLS token: every token is a tubelet
        return self.norm(hidden.mean(1))
