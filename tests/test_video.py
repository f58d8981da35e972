"""The `video` input: frame sampling (uniform and by time), padding of short clips, container formats, bad
files, and the on-device step (normalisation, augmentation, zeroed padding)."""

from __future__ import annotations

import re

import fsspec
import numpy as np
import pytest
import torch

from plait.data.features.video import VideoFeature, VideoSettings, uniform_indices
from plait.demo.synthetic_media import ramp_frames, ramp_value, tone, write_audio, write_clip
from plait.errors import BadSample


def feature(base_dir=".", **settings) -> VideoFeature:
    return VideoFeature(VideoSettings(name="clip", column="clip", **settings), str(base_dir))


def source_frames(cell: dict, count: int) -> list[int]:
    """Which frame of a `ramp_frames(count)` clip each real decoded frame is (by its brightness)."""
    levels = np.array([ramp_value(i, count) for i in range(count)])
    brightness = cell["value"][:, : int(cell["length"])].float().mean(dim=(0, 2, 3)).numpy()
    return [int(np.abs(levels - b).argmin()) for b in brightness]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, str]:
    """A 32-frame ramp at 16 fps (2 s) in each container, and a 3-frame one."""
    folder = tmp_path_factory.mktemp("clips")
    made = {ext: str(write_clip(folder / f"ramp.{ext}", ramp_frames(32, 32, 32), fps=16))
            for ext in ("mp4", "avi", "mkv", "webm")}
    made["short"] = str(write_clip(folder / "short.mp4", ramp_frames(3, 32, 32), fps=16))
    return made


def test_uniform_sampling_shape_and_spread(clips):
    clip = feature(frames=8, size=[16, 24])
    cell = clip.encode(clips["mp4"])
    assert cell["value"].shape == (3, 8, 16, 24) and cell["value"].dtype == torch.uint8
    assert cell["length"].dtype == torch.int64 and cell["length"].shape == () and int(cell["length"]) == 8
    assert clip.channels == 3 and clip.frames == 8 and clip.size == (16, 24)
    picked = source_frames(cell, 32)
    assert picked == [2, 6, 10, 14, 18, 22, 26, 30]  # the middle of each eighth of the clip
    assert uniform_indices(32, 8) == picked and uniform_indices(5, 8) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("ext", ["mp4", "avi", "mkv", "webm"])
def test_containers_decode_alike(clips, ext):
    """mkv and webm headers carry no frame count: it is counted from the packets."""
    cell = feature(frames=4, size=32).encode(clips[ext])
    assert cell["value"].shape == (3, 4, 32, 32) and int(cell["length"]) == 4
    assert source_frames(cell, 32) == [4, 12, 20, 28]
    assert feature(frames=4, size=32, sampling="fps", fps=4).encode(clips[ext])["value"].shape == (3, 4, 32, 32)


def test_fps_sampling_picks_frames_by_time(clips):
    quarter_seconds = feature(frames=4, size=32, sampling="fps", fps=4).encode(clips["mp4"])
    assert source_frames(quarter_seconds, 32) == [0, 4, 8, 12]
    faster_than_clip = feature(frames=5, size=32, sampling="fps", fps=40).encode(clips["mkv"])
    assert source_frames(faster_than_clip, 32) == [0, 0, 0, 1, 1]  # 0, 25, 50, 75, 100 ms at 62.5 ms per frame
    # a 2 s clip read at 2 fps for 8 frames: 4 real frames, then padding
    past_the_end = feature(frames=8, size=32, sampling="fps", fps=2).encode(clips["avi"])
    assert int(past_the_end["length"]) == 4 and source_frames(past_the_end, 32) == [0, 8, 16, 24]
    assert not past_the_end["value"][:, 4:].any()


@pytest.mark.parametrize("sampling", ["uniform", "fps"])
def test_short_clip_is_padded_and_length_counts_real_frames(clips, sampling):
    cell = feature(frames=8, size=32, sampling=sampling, fps=16).encode(clips["short"])
    assert cell["value"].shape == (3, 8, 32, 32) and int(cell["length"]) == 3
    assert source_frames(cell, 3) == [0, 1, 2]
    assert cell["value"][:, :3].float().mean() > 10 and not cell["value"][:, 3:].any()
    empty = feature(frames=8, size=32).empty()
    assert {k: (v.shape, v.dtype) for k, v in empty.items()} == {k: (v.shape, v.dtype) for k, v in cell.items()}
    assert int(empty["length"]) == 0 and not empty["value"].any()


def test_relative_paths_and_fsspec_urls(clips, tmp_path):
    data = open(clips["mp4"], "rb").read()
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(data)
    assert int(feature(tmp_path, frames=2, size=8).encode("videos/a.mp4")["length"]) == 2
    with fsspec.open("memory://plait-video/a.mp4", "wb") as handle:
        handle.write(data)
    assert int(feature(frames=2, size=8).encode("memory://plait-video/a.mp4")["length"]) == 2


def test_bad_files_raise_bad_sample_naming_the_path(clips, tmp_path):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(BadSample, match=re.escape(f"cannot read video '{missing}': no such file")):
        feature().encode(str(missing))
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    with pytest.raises(BadSample, match=re.escape(f"cannot read video '{text}': not a media file")):
        feature().encode(str(text))
    cut = tmp_path / "cut.mp4"  # the index (moov) of this mp4 is at the end: without it nothing can be read
    cut.write_bytes(open(clips["mp4"], "rb").read()[:300])
    with pytest.raises(BadSample, match=re.escape(f"cannot read video '{cut}': ")):
        feature().encode(str(cut))
    garbled = tmp_path / "garbled.mkv"  # a valid start, then noise
    garbled.write_bytes(open(clips["mkv"], "rb").read()[:400] + bytes(range(256)) * 20)
    with pytest.raises(BadSample, match=re.escape(f"cannot read video '{garbled}': truncated or corrupt")):
        feature().encode(str(garbled))
    sound = write_audio(tmp_path / "sound.wav", tone(440, 0.2, 16000), 16000)
    with pytest.raises(BadSample, match=re.escape(f"cannot read video '{sound}': no video track")):
        feature().encode(str(sound))
    with pytest.raises(BadSample, match="is a folder"):
        feature().encode(str(tmp_path))


def test_prepare_normalises_and_zeroes_padded_frames(clips):
    clip = feature(frames=8, size=32, sampling="fps", fps=16)
    batch = clip.stack([clip.encode(clips["short"]), clip.encode(clips["mp4"]), None])
    assert batch["value"].shape == (3, 3, 8, 32, 32) and batch["length"].tolist() == [3, 8, 0]
    assert batch["present"].tolist() == [True, True, False]
    out = clip.prepare(batch, training=False)
    assert out["value"].dtype == torch.float32 and out["length"] is batch["length"]
    assert torch.equal(out["value"][0, :, 3:], torch.zeros(3, 5, 32, 32)) and not out["value"][2].any()
    mean = torch.tensor([0.43216, 0.394666, 0.37645]).reshape(3, 1, 1, 1)
    std = torch.tensor([0.22803, 0.22145, 0.216989]).reshape(3, 1, 1, 1)
    expected = (batch["value"][1].float() / 255 - mean) / std
    assert torch.allclose(out["value"][1], expected, atol=1e-5)
    plain = feature(frames=8, size=32, mean=0.5, std=0.25).prepare(batch, training=False)["value"]
    assert torch.allclose(plain[1], (batch["value"][1].float() / 255 - 0.5) / 0.25, atol=1e-5)


def test_augmentation_only_when_training_same_on_every_frame():
    augmented = feature(frames=4, size=16, augment={"hflip": 0.5, "crop_scale": [0.5, 1.0], "color_jitter": 0.3})
    plain_feature = feature(frames=4, size=16)
    generator = torch.Generator().manual_seed(0)
    one_frame = torch.randint(0, 256, (6, 3, 1, 16, 16), dtype=torch.uint8, generator=generator)
    clips = one_frame.expand(6, 3, 4, 16, 16).contiguous()  # every frame of a clip identical
    batch = {"value": clips, "length": torch.tensor([4, 4, 4, 4, 4, 2]), "present": torch.ones(6, dtype=torch.bool)}
    plain = plain_feature.prepare(batch, training=True)["value"]
    assert torch.equal(augmented.prepare(batch, training=False)["value"], plain)
    torch.manual_seed(7)
    first = augmented.prepare(batch, training=True)["value"]
    second = augmented.prepare(batch, training=True)["value"]
    torch.manual_seed(7)
    assert torch.equal(first, augmented.prepare(batch, training=True)["value"])
    assert first.shape == plain.shape == (6, 3, 4, 16, 16)
    assert not torch.allclose(first, plain) and not torch.allclose(first, second)
    for t in range(1, 4):  # the same transform on every frame: identical frames stay identical
        assert torch.allclose(first[:5, :, t], first[:5, :, 0], atol=1e-5)
    assert not first[5, :, 2:].any()  # padding is zeroed after augmentation too


def test_settings_defaults_and_checks():
    spec = VideoSettings(name="clip", column="clip")
    assert (spec.frames, spec.sampling, spec.fps, spec.size) == (16, "uniform", 8.0, 112) and not spec.augment.active
    assert VideoFeature.cache_by_default and VideoFeature.cache_keys == ("frames", "sampling", "fps", "size")
    assert VideoFeature.default_encoder == "r3d18"
    for bad in ({"frames": 0}, {"fps": 0}, {"size": 0}, {"mean": [0.1, 0.2]}, {"augment": {"crop_scale": [0.9, 0.2]}},
                {"sampling": "random"}, {"augment": {"hflp": 0.5}}):
        with pytest.raises(ValueError):
            VideoSettings(name="clip", column="clip", **bad)
