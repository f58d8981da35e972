"""Encoders for `image` inputs: a small CNN trained from scratch, or a Hugging Face vision backbone (ResNet, ViT,
CLIP) loaded from a local folder or built with random weights from a few config keys.

Each reads the batch made by the image feature's `prepare` (`value`: float [N, C, H, W], already normalised with
the input's `mean` / `std`) and the fitted feature's `channels` and `size` (height, width). For a pretrained
model, set the input's `mean` / `std` to the ones the model was trained with.
"""

from __future__ import annotations

from torch import nn

from plait.errors import PlaitError
from plait.models.encoders.base import Encoder, grid_tokens
from plait.pretrained import load_hf
from plait.registry import ENCODERS
from plait.settings.image import ARCHS, CnnConfig, HfImageConfig


@ENCODERS.register("cnn")
class ImageCnn(Encoder):
    """A small convolutional network; fits any image size and channel count."""

    Config = CnnConfig

    def __init__(self, config: CnnConfig, feature):
        super().__init__()
        layers, width_in = [], feature.channels
        for width in config.channels:
            # ceil_mode: a 1-pixel map stays 1 pixel, so deep stacks on small images never shrink to nothing
            layers += [nn.Conv2d(width_in, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            width_in = width
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = config.channels[-1]

    def forward(self, batch):
        return self.net(batch["value"])

    def encode_tokens(self, batch):
        """The last block's grid cells as tokens (with their positions); the vector is their mean, as in `forward`."""
        grid = self.net[:-2](batch["value"])
        return grid.mean(dim=(2, 3)), grid_tokens(grid)


# arch → (transformers config class, model class, model_type values of a matching pretrained folder)
def hf_classes(arch: str):
    import transformers

    config_name, model_name, _ = ARCHS[arch]
    return getattr(transformers, config_name), getattr(transformers, model_name)


def square_or_pair(size: tuple[int, int]):
    return size[0] if size[0] == size[1] else tuple(size)


@ENCODERS.register("hf_image")
class ImageHf(Encoder):
    """A Hugging Face vision backbone; its pooled output is the image's vector."""

    Config = HfImageConfig

    def __init__(self, config: HfImageConfig, feature):
        super().__init__()
        self.arch = config.arch
        config_class, model_class = hf_classes(config.arch)
        extra = {"add_pooling_layer": False} if config.arch == "vit" else {}  # ViT: the CLS token, not a random pooler
        if config.path is None:
            shape = {"num_channels": feature.channels, "image_size": square_or_pair(feature.size)}
            if config.arch == "clip":  # CLIP's position grid is square: build the largest, interpolate for the rest
                shape["image_size"] = max(feature.size)
            elif config.arch == "resnet":
                shape.pop("image_size")
            self.model = model_class(config_class(**{**config.overrides, **shape}), **extra)
        else:
            self.model = load_hf(config.path, model_class, ARCHS[config.arch][2], {**config.overrides, **extra},
                                 wanted=f"one for arch `{config.arch}`")
        self.check_channels(feature)
        model_size = getattr(self.model.config, "image_size", None)
        model_size = tuple(model_size) if isinstance(model_size, (list, tuple)) else (model_size, model_size)
        self.interpolate = config.arch != "resnet" and model_size != tuple(feature.size)
        self.out_dim = self.model.config.hidden_sizes[-1] if config.arch == "resnet" else self.model.config.hidden_size

    def check_channels(self, feature) -> None:
        expected = self.model.config.num_channels
        if expected != feature.channels:
            mode = "RGB" if expected == 3 else "L" if expected == 1 else f"{expected} channels"
            raise PlaitError(f"inputs.{feature.spec.name}.mode: the model takes {mode} images, the input gives {feature.spec.mode}")

    def forward(self, batch):
        return self.encode_tokens(batch)[0]

    def encode_tokens(self, batch):
        """ResNet: the last stage's grid cells (with their positions); ViT and CLIP: the CLS and patch tokens of
        the last layer, which already carry position embeddings."""
        pixels = batch["value"]
        if self.arch == "resnet":
            output = self.model(pixel_values=pixels)
            return output.pooler_output.flatten(1), grid_tokens(output.last_hidden_state)
        output = self.model(pixel_values=pixels, interpolate_pos_encoding=self.interpolate)
        if self.arch == "vit":
            return output.last_hidden_state[:, 0], output.last_hidden_state  # CLS token after the final layer norm
        return output.pooler_output, output.last_hidden_state  # CLIP: CLS token after its post-layer-norm
