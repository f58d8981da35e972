"""The `image` input: decoding and its failures, on-device normalisation and augmentation, the `cnn` and
`hf_image` encoders, and the config keys they add."""

from __future__ import annotations

import re

import fsspec
import numpy as np
import pytest
import torch
from PIL import Image

from plait.config import ConfigError, validate
from plait.data.features.image import ImageFeature, ImageSettings
from plait.errors import BadSample, PlaitError
from plait.models.encoders.image import CnnConfig, HfImageConfig, ImageCnn, ImageHf

TINY = {
    "resnet": {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1]},
    "vit": {"patch_size": 8, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32},
    "clip": {"patch_size": 8, "hidden_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32},
}


def feature(base_dir=".", **settings) -> ImageFeature:
    """An image input; a fixed size unless the test says otherwise (`size: auto` is chosen only by fitting)."""
    return ImageFeature(ImageSettings(name="photo", column="path", **{"size": 16, **settings}), str(base_dir))


def write_image(path, height=20, width=30, fmt=None, seed=0) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return pixels


def batch_of(images: torch.Tensor) -> dict:
    return {"value": images, "present": torch.ones(len(images), dtype=torch.bool)}


def test_decode_resizes_to_uint8_channels_first(tmp_path):
    write_image(tmp_path / "a.png", height=20, width=30)
    square = feature(size=16).encode(str(tmp_path / "a.png"))
    assert square.shape == (3, 16, 16) and square.dtype == torch.uint8
    tall = feature(size=[24, 12]).encode(str(tmp_path / "a.png"))
    assert tall.shape == (3, 24, 12)
    assert feature(size=[24, 12]).empty().shape == (3, 24, 12) and not feature(size=16).empty().any()


def test_size_auto_takes_the_typical_training_image_never_enlarged_and_capped(tmp_path):
    small = [str(tmp_path / f"s{i}.png") for i in range(3)]
    for path, (height, width) in zip(small, [(28, 28), (32, 30), (30, 40)]):
        write_image(path, height=height, width=width)
    assert ImageSettings(name="photo", column="path").size == "auto"  # the default
    digits = feature(size="auto")
    digits.fit(small + ["no-such-file.png"])  # an unreadable file is left to encoding to report
    assert digits.size == (30, 30)  # the median height and width: 32×32 images are not blown up to 64
    assert digits.encode(small[0]).shape == (3, 30, 30)
    again = feature(size="auto")
    again.load_state_dict(digits.state_dict())  # chosen once, saved with the run
    assert again.size == (30, 30) and feature(size=16).state_dict() == {}

    photos = [str(tmp_path / f"p{i}.jpg") for i in range(3)]
    for path in photos:
        write_image(path, height=600, width=800)
    large = feature(size="auto")
    large.fit(photos)
    assert large.size == (168, 224)  # scaled down to 224 on the longer side, the shape kept
    with pytest.raises(RuntimeError, match="fit"):
        feature(size="auto").encode(photos[0])


def test_decode_keeps_pixels_at_the_same_size(tmp_path):
    pixels = write_image(tmp_path / "a.png", height=8, width=10)
    decoded = feature(size=[8, 10]).encode(str(tmp_path / "a.png"))
    assert torch.equal(decoded, torch.from_numpy(pixels).permute(2, 0, 1))


def test_grayscale_mode(tmp_path):
    pixels = write_image(tmp_path / "a.png", height=8, width=8)
    gray = feature(size=8, mode="L")
    decoded = gray.encode(str(tmp_path / "a.png"))
    assert decoded.shape == (1, 8, 8) and gray.channels == 1 and gray.size == (8, 8)
    expected = np.array(Image.fromarray(pixels).convert("L"))
    assert torch.equal(decoded[0], torch.from_numpy(expected))


def transparent_images(folder) -> dict[str, str]:
    """The same picture (a red square on a transparent field) as editors save it: the colour hidden under the
    transparent pixels is black in one file, white in another, noise in a third; and as a palette PNG with a
    transparent index, and a grey one with an alpha channel."""
    rng = np.random.default_rng(0)
    alpha = np.zeros((16, 16), np.uint8)
    alpha[4:12, 4:12] = 255
    paths = {}
    for hidden, under in {"black": 0, "white": 255, "noise": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)}.items():
        rgb = np.broadcast_to(np.asarray(under, np.uint8), (16, 16, 3)).copy()
        rgb[4:12, 4:12] = (255, 0, 0)
        Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(folder / f"{hidden}.png")
        paths[hidden] = str(folder / f"{hidden}.png")
    palette = Image.fromarray(np.where(alpha > 0, 1, 0).astype(np.uint8), "P")
    palette.putpalette([0, 255, 0, 255, 0, 0] + [0] * 762)  # index 0 green (transparent), 1 red
    palette.save(folder / "palette.png", transparency=0)
    Image.fromarray(np.dstack([np.where(alpha > 0, 76, 9).astype(np.uint8), alpha]), "LA").save(folder / "grey.png")
    return {**paths, "palette": str(folder / "palette.png"), "grey": str(folder / "grey.png")}


def test_transparent_pixels_lie_on_the_background_whatever_colour_the_file_hides_under_them(tmp_path):
    paths = transparent_images(tmp_path)
    on_white = feature(size=16)
    encoded = {name: on_white.encode(path) for name, path in paths.items() if name != "grey"}
    for name in ("white", "noise", "palette"):
        assert torch.equal(encoded[name], encoded["black"]), name
    assert encoded["black"][:, 0, 0].tolist() == [255, 255, 255]  # the transparent corner: white
    assert encoded["black"][:, 8, 8].tolist() == [255, 0, 0]  # the square keeps its colour
    assert feature(size=16, background="#102030").encode(paths["noise"])[:, 0, 0].tolist() == [16, 32, 48]
    grey = feature(size=16, mode="L", mean=0.5, std=0.5).encode(paths["grey"])
    assert grey[0, 0, 0] == 255 and grey[0, 8, 8] == 76  # grey with alpha: the field white, the square its grey
    with pytest.raises(ConfigError, match="not a colour"):
        validate(config_with({"name": "photo", "type": "image", "column": "path", "background": "transparent-ish"}))


def test_relative_paths_resolve_against_base_dir_and_urls_open_with_fsspec(tmp_path):
    (tmp_path / "images").mkdir()
    write_image(tmp_path / "images" / "a.jpg", fmt="JPEG")
    assert feature(tmp_path, size=8).encode("images/a.jpg").shape == (3, 8, 8)
    with pytest.raises(BadSample, match="no such file"):
        feature(tmp_path / "elsewhere", size=8).encode("images/a.jpg")
    with fsspec.open("memory://plait-test/b.png", "wb") as handle:
        Image.fromarray(np.zeros((5, 5, 3), dtype=np.uint8)).save(handle, format="PNG")
    assert feature(tmp_path, size=4).encode("memory://plait-test/b.png").shape == (3, 4, 4)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_bad_files_raise_bad_sample_naming_the_path(tmp_path, fmt):
    missing = tmp_path / "missing.png"
    with pytest.raises(BadSample, match=re.escape(f"cannot read image '{missing}': no such file")):
        feature().encode(str(missing))
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(BadSample, match=re.escape(f"'{text}': not an image")):
        feature().encode(str(text))
    whole = tmp_path / f"whole.{fmt.lower()}"
    write_image(whole, height=64, width=64, fmt=fmt)
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(BadSample, match=re.escape(f"'{cut}': truncated")):
        feature().encode(str(cut))


def test_prepare_scales_and_normalises_per_channel():
    images = torch.tensor([0, 255, 51], dtype=torch.uint8).reshape(1, 3, 1, 1).expand(2, 3, 2, 2).contiguous()
    out = feature(size=2, mean=[0.0, 0.5, 0.2], std=[1.0, 0.25, 0.1]).prepare(batch_of(images), training=True)
    assert out["value"].dtype == torch.float32 and out["present"].all()
    expected = torch.tensor([0.0, 2.0, 0.0]).reshape(1, 3, 1, 1).expand(2, 3, 2, 2)
    assert torch.allclose(out["value"], expected, atol=1e-6)
    default = feature(size=2).prepare(batch_of(images), training=False)["value"]
    assert torch.allclose(default[0, :, 0, 0], torch.tensor([-1.0, 1.0, -0.6]), atol=1e-6)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_augmentation_only_when_training_and_reproducible_from_the_rng(mode):
    augmented = feature(size=16, mode=mode, augment={"hflip": 0.5, "rotate": 20, "crop_scale": [0.5, 1.0], "color_jitter": 0.3})
    channels = 3 if mode == "RGB" else 1
    images = torch.randint(0, 256, (6, channels, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    plain = feature(size=16, mode=mode).prepare(batch_of(images), training=True)["value"]
    assert torch.equal(augmented.prepare(batch_of(images), training=False)["value"], plain)
    torch.manual_seed(7)
    first = augmented.prepare(batch_of(images), training=True)["value"]
    second = augmented.prepare(batch_of(images), training=True)["value"]
    torch.manual_seed(7)
    again = augmented.prepare(batch_of(images), training=True)["value"]
    assert first.shape == plain.shape
    assert torch.equal(first, again)
    assert not torch.allclose(first, plain) and not torch.allclose(first, second)


@pytest.mark.parametrize("mode, size", [("RGB", 32), ("L", [8, 12])])
def test_cnn_output_shape_and_gradients(mode, size):
    photo = feature(size=size, mode=mode)
    encoder = ImageCnn(CnnConfig(channels=[4, 8, 8, 6]), photo)
    images = torch.randn(3, photo.channels, *photo.size)
    out = encoder({"value": images, "present": torch.ones(3, dtype=torch.bool)})
    assert encoder.out_dim == 6 and out.shape == (3, 6)
    out.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_a_cnn_that_sees_less_than_half_the_image_says_how_many_blocks_would_see_it():
    three = ImageCnn(CnnConfig(channels=[8, 16, 32]), feature(size=64)).notes()
    assert len(three) == 1 and "sees 22 of the image's 64 pixels" in three[0] and "4 blocks would" in three[0]
    assert ImageCnn(CnnConfig(channels=[8, 16, 32, 64]), feature(size=64)).notes() == []
    assert ImageCnn(CnnConfig(channels=[8, 16, 32]), feature(size=32)).notes() == []
    assert "sees 4 of the image's 16 pixels" in ImageCnn(CnnConfig(channels=[8]), feature(size=[40, 16])).notes()[0]


@pytest.mark.parametrize("arch, out_dim", [("resnet", 16), ("vit", 16), ("clip", 24)])
@pytest.mark.parametrize("mode, size", [("RGB", 32), ("L", [16, 24])])
def test_hf_image_random_weights_from_overrides(arch, out_dim, mode, size):
    photo = feature(size=size, mode=mode)
    encoder = ImageHf(HfImageConfig(arch=arch, overrides=TINY[arch]), photo)
    images = torch.randn(2, photo.channels, *photo.size)
    out = encoder({"value": images})
    assert encoder.out_dim == out_dim and out.shape == (2, out_dim)
    out.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_hf_image_loads_a_local_folder(tmp_path):
    from transformers import ResNetConfig, ResNetModel

    saved = ResNetModel(ResNetConfig(num_channels=3, **TINY["resnet"])).eval()
    saved.save_pretrained(tmp_path / "resnet")
    encoder = ImageHf(HfImageConfig(arch="resnet", path=str(tmp_path / "resnet")), feature(size=32)).eval()
    for (name, mine), theirs in zip(encoder.model.state_dict().items(), saved.state_dict().values()):
        assert torch.equal(mine, theirs), name
    images = torch.randn(2, 3, 32, 32)
    assert torch.allclose(encoder({"value": images}), saved(pixel_values=images).pooler_output.flatten(1))
    with pytest.raises(PlaitError, match="mode"):
        ImageHf(HfImageConfig(arch="resnet", path=str(tmp_path / "resnet")), feature(size=32, mode="L"))
    with pytest.raises(PlaitError, match="not one for arch `vit`"):
        ImageHf(HfImageConfig(arch="vit", path=str(tmp_path / "resnet")), feature(size=32))
    with pytest.raises(PlaitError, match="no config.json"):
        ImageHf(HfImageConfig(arch="resnet", path=str(tmp_path)), feature(size=32))


def test_a_pretrained_vit_and_clip_bring_their_own_size_mean_std_and_resampling(tmp_path):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, ViTConfig, ViTImageProcessor, ViTModel

    from plait.config import load_config, save_config

    ViTModel(ViTConfig(image_size=48, **TINY["vit"])).save_pretrained(tmp_path / "vit")
    ViTImageProcessor(size={"height": 48, "width": 40}, image_mean=[0.1, 0.2, 0.3], image_std=[0.4, 0.5, 0.6],
                      resample=3).save_pretrained(tmp_path / "vit")
    vit = {"type": "image", "encoder": {"name": "hf_image", "arch": "vit", "path": str(tmp_path / "vit")}}
    photo = validate(config_with(vit)).inputs[0]
    assert (photo.size, photo.mean, photo.std, photo.resample) == ((48, 40), [0.1, 0.2, 0.3], [0.4, 0.5, 0.6], "bicubic")
    chosen = validate(config_with({**vit, "size": 32, "mean": 0.5})).inputs[0]
    assert (chosen.size, chosen.mean, chosen.std) == (32, 0.5, [0.4, 0.5, 0.6])  # what the config says wins

    config = validate(config_with(vit))
    save_config(config, tmp_path / "config.yaml")
    (tmp_path / "vit" / "preprocessor_config.json").unlink()  # the run folder's config.yaml holds what it trained with
    assert load_config(tmp_path / "config.yaml").inputs[0].size == (48, 40)

    CLIPVisionModel(CLIPVisionConfig(image_size=36, **TINY["clip"])).save_pretrained(tmp_path / "clip")
    CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 36, "width": 36}).save_pretrained(tmp_path / "clip")
    clip = validate(config_with({"type": "image", "encoder": {"name": "hf_image", "arch": "clip", "path": str(tmp_path / "clip")}}))
    photo = clip.inputs[0]
    assert photo.size == (36, 36) and photo.mean[0] == pytest.approx(0.48145466) and photo.resample == "bicubic"
    encoder = ImageHf(photo.encoder, ImageFeature(photo))
    assert not encoder.interpolate  # the model sees images at the size it was trained on
    path = tmp_path / "square.png"
    write_image(path, height=50, width=70)
    assert ImageFeature(photo).encode(str(path)).shape == (3, 36, 36)


@pytest.mark.parametrize("build", [
    lambda photo: ImageHf.build(HfImageConfig(arch="resnet", overrides=TINY["resnet"], freeze=True, out_dim=8), photo),
    lambda photo: ImageCnn.build(CnnConfig(channels=[4], freeze=True, out_dim=8), photo),
])
def test_freeze_keeps_the_backbone_in_eval_mode_and_trains_the_projection(build):
    from tests.test_freezing import assert_backbone_frozen_projection_trains

    assert_backbone_frozen_projection_trains(build(feature(size=16)), {"value": torch.randn(4, 3, 16, 16)})


def config_with(image_input: dict) -> dict:
    return {
        "data": {"table": "table.csv"},
        "inputs": [{"name": "photo", "type": "image", "column": "path", **image_input}],
        "outputs": [{"name": "label", "type": "category", "column": "label"}],
    }


def test_config_defaults_and_misspelt_keys():
    spec = validate(config_with({})).inputs[0]
    assert spec.encoder.name == "cnn" and spec.size == "auto" and spec.mode == "RGB" and not spec.augment.active
    spec = validate(config_with({"size": [32, 48], "augment": {"hflip": 0.5}, "encoder": {"name": "hf_image", "arch": "vit"}})).inputs[0]
    assert spec.size == (32, 48) and spec.augment.hflip == 0.5 and spec.encoder.arch == "vit"
    cases = [
        ({"encoder": {"name": "cnn", "chanels": [8]}}, "inputs.photo.encoder.chanels: unknown key; did you mean channels?"),
        ({"augment": {"hflp": 0.5}}, "inputs.photo.augment.hflp: unknown key; did you mean hflip?"),
        ({"encoder": {"name": "hf_image", "arch": "vit", "overrides": {"hiden_size": 8}}}, "inputs.photo.encoder.overrides:"),
        ({"mean": [0.1, 0.2]}, "inputs.photo.mean:"),
        ({"augment": {"crop_scale": [0.9, 0.2]}}, "inputs.photo.augment.crop_scale:"),
    ]
    for image_input, expected in cases:
        with pytest.raises(ConfigError) as caught:
            validate(config_with(image_input))
        assert any(line.startswith(expected) for line in caught.value.lines), caught.value.lines
