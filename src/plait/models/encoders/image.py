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
from plait.models.encoders.hf import hf_model, square_or_pair
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
        self.blocks, self.image_size = len(config.channels), tuple(feature.size)

    def notes(self) -> list[str]:
        """Each cell of the last block sees `receptive_field(blocks)` pixels a side. Below half the image, an object
        that fills a good part of it is only ever seen in pieces: on generated shapes at 64 pixels, three blocks
        (22 pixels) named the shape of 14% of the test images right and four (46 pixels) 41%
        (benchmarks/caption_grounding.py)."""
        seen, side = receptive_field(self.blocks), min(self.image_size)
        if 2 * seen >= side:
            return []
        wanted = next(blocks for blocks in range(self.blocks + 1, 64) if 2 * receptive_field(blocks) >= side)
        return [f"each cell of its last block sees {seen} of the image's {side} pixels a side, so objects larger than "
                f"that are seen only in pieces; {wanted} blocks would see half the image (add widths to `channels`), "
                "or use a pretrained encoder (hf_image)"]

    def forward(self, batch):
        return self.net(batch["value"])

    def encode_tokens(self, batch):
        """The last block's grid cells as tokens (with their positions); the vector is their mean, as in `forward`."""
        grid = self.net[:-2](batch["value"])
        return grid.mean(dim=(2, 3)), grid_tokens(grid)


def receptive_field(blocks: int) -> int:
    """Pixels a side that one output cell of `blocks` (3×3 conv, 2×2 max pool) blocks sees: each block adds its
    conv's two cells and its pool's one at the scale it runs on, and halves the scale."""
    return 1 + sum(3 * 2 ** block for block in range(blocks))


# arch → (transformers config class, model class, model_type values of a matching pretrained folder)
def hf_classes(arch: str):
    import transformers

    config_name, model_name, _ = ARCHS[arch]
    return getattr(transformers, config_name), getattr(transformers, model_name)


def fresh_shape(arch: str, feature) -> dict:
    """What the input fixes in the config of a backbone built with random weights."""
    if arch == "resnet":
        return {"num_channels": feature.channels}
    # CLIP's position grid is square: build the largest, interpolate for the rest
    size = max(feature.size) if arch == "clip" else square_or_pair(feature.size)
    return {"num_channels": feature.channels, "image_size": size}


@ENCODERS.register("hf_image")
class ImageHf(Encoder):
    """A Hugging Face vision backbone; its pooled output is the image's vector."""

    Config = HfImageConfig

    def __init__(self, config: HfImageConfig, feature):
        super().__init__()
        self.arch = config.arch
        config_class, model_class = hf_classes(config.arch)
        extra = {"add_pooling_layer": False} if config.arch == "vit" else {}  # ViT: the CLS token, not a random pooler
        self.model = hf_model(config, config_class, model_class, ARCHS[config.arch][2], fresh_shape(config.arch, feature),
                              extra=extra, wanted=f"one for arch `{config.arch}`")
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
