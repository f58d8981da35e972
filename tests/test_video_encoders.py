"""The `video` encoders: ResNet3D-18 laid out key for key like torchvision's `r3d_18` (and loading its weights
files), the small `cnn3d`, and a Hugging Face VideoMAE (`hf_video`). A stand-in feature object keeps these
tests independent of the video feature's decoding."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import save_file

from plait.errors import PlaitError
from plait.models.encoders.video import (
    Cnn3dConfig,
    HfVideoConfig,
    R3d18Config,
    VideoCnn3d,
    VideoHf,
    VideoR3d18,
)
from plait.registry import ENCODERS

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64, "patch_size": 16}


def clip_feature(channels=3, frames=8, size=(32, 32)):
    return SimpleNamespace(channels=channels, frames=frames, size=size, spec=SimpleNamespace(name="clip"))


def batch_of(feature, n=2, seed=0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    value = torch.randn(n, feature.channels, feature.frames, *feature.size, generator=generator)
    return {"value": value, "length": torch.full((n,), feature.frames), "present": torch.ones(n, dtype=torch.bool)}


@pytest.fixture(scope="module")
def r3d() -> VideoR3d18:
    torch.manual_seed(0)
    return VideoR3d18.build(R3d18Config(), clip_feature()).eval()


def r3d18_layout() -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of torchvision's r3d_18 state dict, from the paper's table: a 3×7×7 stem of 64, four stages
    of two basic blocks (64, 128, 256, 512 wide; stages 2-4 halve every dimension in their first block, with a
    1×1×1 projection shortcut), and a 400-way classifier."""

    def conv(key, width_in, width, kernel):
        return [(f"{key}.weight", (width, width_in, *kernel))]

    def norm(key, width):
        return [(f"{key}.{name}", (width,)) for name in ("weight", "bias", "running_mean", "running_var")] + [
            (f"{key}.num_batches_tracked", ())
        ]

    layout = conv("stem.0", 3, 64, (3, 7, 7)) + norm("stem.1", 64)
    width_in = 64
    for stage, width in enumerate([64, 128, 256, 512], start=1):
        for block in range(2):
            prefix, stride = f"layer{stage}.{block}", 2 if stage > 1 and block == 0 else 1
            layout += conv(f"{prefix}.conv1.0", width_in, width, (3, 3, 3)) + norm(f"{prefix}.conv1.1", width)
            layout += conv(f"{prefix}.conv2.0", width, width, (3, 3, 3)) + norm(f"{prefix}.conv2.1", width)
            if stride != 1 or width_in != width:
                layout += conv(f"{prefix}.downsample.0", width_in, width, (1, 1, 1)) + norm(f"{prefix}.downsample.1", width)
            width_in = width
    return layout + [("fc.weight", (400, 512)), ("fc.bias", (400,))]


def test_registered_names_and_modality():
    for name, cls in [("r3d18", VideoR3d18), ("cnn3d", VideoCnn3d), ("hf_video", VideoHf)]:
        assert ENCODERS[name] is cls and cls.modalities == ("video",) and cls.Config().name == name
        assert cls.Config().projection.out_dim == 128
        assert all(field.description for key, field in cls.Config.model_fields.items() if key != "name"), name


def test_r3d18_state_dict_is_torchvision_r3d_18(r3d):
    state = r3d.backbone.state_dict()
    assert [(key, tuple(value.shape)) for key, value in state.items()] == r3d18_layout()
    assert sum(p.numel() for p in r3d.backbone.parameters()) == 33_371_472
    assert set(r3d.state_dict()) == {f"backbone.{k}" for k, _ in r3d18_layout()} | {"project.0.weight", "project.0.bias"}


def test_r3d18_strides_halve_time_and_space(r3d):
    shapes = {}
    hooks = [getattr(r3d.backbone, name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
             for name in ("stem", "layer1", "layer2", "layer3", "layer4")]
    with torch.no_grad():
        r3d(batch_of(clip_feature(), n=1))
    for hook in hooks:
        hook.remove()
    assert shapes == {
        "stem": (1, 64, 8, 16, 16), "layer1": (1, 64, 8, 16, 16), "layer2": (1, 128, 4, 8, 8),
        "layer3": (1, 256, 2, 4, 4), "layer4": (1, 512, 1, 2, 2),
    }


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_r3d18_loads_a_torchvision_weights_file(r3d, tmp_path, suffix):
    state = r3d.backbone.state_dict()
    file = tmp_path / f"r3d_18{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(file))
    else:
        torch.save(state, file)
    torch.manual_seed(1)  # different random weights before loading
    loaded = VideoR3d18.build(R3d18Config(weights=str(file)), clip_feature())
    loaded.project.load_state_dict(r3d.project.state_dict())
    loaded.eval()
    for key, value in state.items():
        assert torch.equal(loaded.backbone.state_dict()[key], value), key
    batch = batch_of(clip_feature())
    with torch.no_grad():
        assert torch.equal(loaded.encode(batch)[0], r3d.encode(batch)[0])


def test_r3d18_weights_that_do_not_fit_name_the_problem(r3d, tmp_path):
    state = dict(r3d.backbone.state_dict())
    renamed = {("stem.0.weights" if k == "stem.0.weight" else k): v for k, v in state.items()}
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(PlaitError, match=r"missing keys: stem\.0\.weight; unexpected keys: stem\.0\.weights"):
        VideoR3d18(R3d18Config(weights=str(tmp_path / "renamed.pth")), clip_feature())
    torch.save({**state, "fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)}, tmp_path / "classes.pt")
    with pytest.raises(PlaitError, match=r"fc\.weight: shape \(10, 512\) in the file, \(400, 512\) in the model"):
        VideoR3d18(R3d18Config(weights=str(tmp_path / "classes.pt")), clip_feature())
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PlaitError, match="cannot read weights"):
        VideoR3d18(R3d18Config(weights=str(tmp_path / "junk.pth")), clip_feature())
    with pytest.raises(PlaitError, match="no such weights file"):
        VideoR3d18(R3d18Config(weights=str(tmp_path / "absent.pth")), clip_feature())
    with pytest.raises(PlaitError, match="3-channel"):
        VideoR3d18(R3d18Config(weights=str(tmp_path / "absent.pth")), clip_feature(channels=1))
    with pytest.raises(ValidationError, match=r"\.pth, \.pt or \.safetensors"):
        R3d18Config(weights="r3d_18.ckpt")


def first_conv(encoder) -> torch.nn.Parameter:
    if isinstance(encoder, VideoR3d18):
        return encoder.backbone.stem[0].weight
    if isinstance(encoder, VideoCnn3d):
        return encoder.net[0].weight
    return encoder.model.embeddings.patch_embeddings.projection.weight


BUILDS = {
    "r3d18": lambda feature, **kw: VideoR3d18.build(R3d18Config(**kw), feature),
    "cnn3d": lambda feature, **kw: VideoCnn3d.build(Cnn3dConfig(channels=[4, 8], **kw), feature),
    "hf_video": lambda feature, **kw: VideoHf.build(HfVideoConfig(overrides=TINY, **kw), feature),
}


@pytest.mark.parametrize("name", BUILDS)
def test_forward_shape_and_gradients(name):
    feature = clip_feature(frames=4)
    encoder = BUILDS[name](feature, out_dim=24)
    out, _ = encoder.encode(batch_of(feature))
    assert encoder.out_dim == 24 and out.shape == (2, 24) and torch.isfinite(out).all()
    out.sum().backward()
    grad = first_conv(encoder).grad
    assert grad is not None and grad.abs().sum() > 0


@pytest.mark.parametrize("frames, size, channels", [(1, (8, 8), 3), (3, (5, 7), 1), (8, (32, 32), 3)])
def test_small_clips_any_shape(frames, size, channels):
    feature = clip_feature(channels=channels, frames=frames, size=size)
    for encoder in (VideoCnn3d.build(Cnn3dConfig(channels=[4, 4, 4, 4]), feature), VideoR3d18.build(R3d18Config(), feature)):
        assert encoder.eval().encode(batch_of(feature))[0].shape == (2, 128)


@pytest.mark.parametrize("name", BUILDS)
def test_freeze_keeps_the_backbone_in_eval_mode_and_trains_the_projection(name):
    from tests.test_freezing import assert_backbone_frozen_projection_trains

    feature = clip_feature(frames=4)
    assert_backbone_frozen_projection_trains(BUILDS[name](feature, freeze=True), batch_of(feature))


def test_hf_video_takes_its_shape_from_the_input_and_checks_overrides():
    encoder = VideoHf.build(HfVideoConfig(overrides={**TINY, "tubelet_size": 2}), clip_feature(frames=4, size=(32, 48)))
    config = encoder.model.config
    assert (config.num_frames, tuple(config.image_size), config.num_channels) == (4, (32, 48), 3)
    assert encoder.encode(batch_of(clip_feature(frames=4, size=(32, 48))))[0].shape == (2, 128)
    with pytest.raises(PlaitError, match=r"inputs\.clip\.frames: 5 is not a multiple of the model's tubelet_size \(2\)"):
        VideoHf(HfVideoConfig(overrides=TINY), clip_feature(frames=5))
    with pytest.raises(ValidationError, match="hiden_size: not a key of VideoMAEConfig; did you mean hidden_size?"):
        HfVideoConfig(overrides={"hiden_size": 32})
    with pytest.raises(ValidationError, match="num_frames: set by the input's frames"):
        HfVideoConfig(overrides={"num_frames": 16})


def test_hf_video_loads_a_local_folder(tmp_path):
    from transformers import ASTConfig, ASTModel, VideoMAEConfig, VideoMAEModel

    saved = VideoMAEModel(VideoMAEConfig(num_frames=4, image_size=32, **TINY)).eval()
    saved.save_pretrained(tmp_path / "videomae")
    encoder = VideoHf(HfVideoConfig(path=str(tmp_path / "videomae")), clip_feature(frames=4)).eval()
    for (key, mine), theirs in zip(encoder.model.state_dict().items(), saved.state_dict().values()):
        assert torch.equal(mine, theirs), key
    batch = batch_of(clip_feature(frames=4))
    tokens = saved(pixel_values=batch["value"].permute(0, 2, 1, 3, 4)).last_hidden_state
    with torch.no_grad():
        assert torch.allclose(encoder(batch), encoder.norm(tokens.mean(1)), atol=1e-6)
    with pytest.raises(PlaitError, match=r"inputs\.clip\.frames: the model takes 4 frames, the input gives 8"):
        VideoHf(HfVideoConfig(path=str(tmp_path / "videomae")), clip_feature(frames=8))
    with pytest.raises(PlaitError, match=r"inputs\.clip\.size"):
        VideoHf(HfVideoConfig(path=str(tmp_path / "videomae")), clip_feature(frames=4, size=(48, 48)))
    ASTModel(ASTConfig(num_mel_bins=16, max_length=16, **TINY)).save_pretrained(tmp_path / "ast")
    with pytest.raises(PlaitError, match="audio-spectrogram-transformer"):
        VideoHf(HfVideoConfig(path=str(tmp_path / "ast")), clip_feature(frames=4))
    with pytest.raises(PlaitError, match="no config.json"):
        VideoHf(HfVideoConfig(path=str(tmp_path)), clip_feature(frames=4))


def test_out_dim_null_gives_the_backbones_own_features_unprojected():
    feature = clip_feature()
    encoder = VideoR3d18.build(R3d18Config(out_dim=None), feature).eval()
    batch = batch_of(feature)
    assert encoder.out_dim == 512 and "project" not in dict(encoder.named_children())
    assert torch.equal(encoder.encode(batch)[0], encoder.backbone.features(batch["value"]))
