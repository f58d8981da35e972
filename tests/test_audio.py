"""The `audio` input: decoding and resampling to a log-mel spectrogram, audio from a video's sound track, missing
tracks and silence as missing values, fixed and variable length, cropping, formats, and the on-device step."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from plait.data.dataset import Preprocessor
from plait.data.places import RowPlaces
from plait.data.tally import CellTally
from plait.data.features.audio import AudioFeature, AudioSettings, mel_filters
from plait.demo.synthetic_media import audio_codec_for, ramp_frames, tone, write_audio, write_clip
from plait.errors import BadSample, MissingValue, PlaitError


def feature(base_dir=".", **settings) -> AudioFeature:
    return AudioFeature(AudioSettings(name="sound", column="sound", **settings), str(base_dir))


def nearest_mel_bin(hz: float, n_mels: int = 64, f_max: float = 8000.0) -> int:
    """The band whose centre is closest to `hz` (HTK mel scale, written out here independently of the code)."""
    top = 2595 * np.log10(1 + f_max / 700)
    centres = 700 * (10 ** (np.linspace(0, top, n_mels + 2)[1:-1] / 2595) - 1)
    return int(np.abs(centres - hz).argmin())


def strongest_bin(cell: dict) -> int:
    real = int(cell["length"])
    return int(cell["value"][:, 2 : real - 2].float().mean(dim=1).argmax())  # edge frames are half padding


def can_write(suffix: str) -> bool:
    try:
        audio_codec_for(suffix)
    except ValueError:
        return False
    return True


def test_wav_decodes_to_a_log_mel_of_fixed_shape(tmp_path):
    path = write_audio(tmp_path / "half.wav", tone(1000, 0.5, 16000), 16000)
    sound = feature(max_seconds=1.0)
    cell = sound.encode(str(path))
    assert sound.frames == 101 and sound.n_mels == 64 and sound.sample_rate == 16000
    assert cell["value"].shape == (64, 101) and cell["value"].dtype == torch.float16
    assert cell["length"].dtype == torch.int64 and cell["length"].shape == () and int(cell["length"]) == 51
    assert strongest_bin(cell) == nearest_mel_bin(1000)
    assert torch.allclose(cell["value"][:, 60:].float(), torch.tensor(np.log(1e-6), dtype=torch.float32), atol=0.01)
    empty = sound.empty()
    assert {k: (v.shape, v.dtype) for k, v in empty.items()} == {k: (v.shape, v.dtype) for k, v in cell.items()}
    assert feature(n_mels=40, max_seconds=2.0, hop_ms=20.0).encode(str(path))["value"].shape == (40, 101)


@pytest.mark.parametrize("hz", [1000, 3000])
def test_resampled_to_the_configured_rate(tmp_path, hz):
    path = write_audio(tmp_path / "tone.wav", tone(hz, 1.0, 44100), 44100)
    cell = feature(max_seconds=2.0, length="variable").encode(str(path))
    assert cell["value"].shape == (64, 201)
    assert int(cell["length"]) == 101  # 1 s at 16 kHz in 10 ms hops (+1 centred frame), not 44100 samples' worth
    assert strongest_bin(cell) == nearest_mel_bin(hz)
    upper = feature(max_seconds=1.0, sample_rate=8000).encode(str(path))
    assert strongest_bin(upper) == nearest_mel_bin(hz, f_max=4000.0)


def test_sound_track_of_a_video(tmp_path):
    sound = tone(3000, 1.0, 22050)
    clip = write_clip(tmp_path / "clip.mp4", ramp_frames(8, 16, 16), fps=8, audio=sound, sample_rate=22050)
    cell = feature(source="video_column", max_seconds=2.0).encode(str(clip))
    assert strongest_bin(cell) == nearest_mel_bin(3000)
    assert 100 <= int(cell["length"]) <= 110  # 1 s of sound (AAC may add a few ms of padding)


def test_video_without_sound_is_a_missing_value(tmp_path):
    mute = str(write_clip(tmp_path / "mute.mp4", ramp_frames(8, 16, 16), fps=8))
    with pytest.raises(MissingValue, match="no audio track"):
        feature(source="video_column").encode(mute)
    masked = feature(source="video_column", missing="mask")
    tally = CellTally()
    assert Preprocessor._encode_cell(masked, False, mute, 3, RowPlaces("t.csv"), "error", {}, tally) is None
    assert tally.missing == {"no audio track": 1} and tally.total == 1  # counted as missing, with why
    strict = feature(source="video_column", missing="error")
    with pytest.raises(PlaitError, match=re.escape("t.csv, row 3, column 'sound': no audio track")):
        Preprocessor._encode_cell(strict, False, mute, 3, RowPlaces("t.csv"), "error", {}, CellTally())
    skipped = {}
    assert Preprocessor._encode_cell(strict, False, mute, 3, RowPlaces("t.csv"), "skip", skipped, CellTally()) is None
    assert skipped[3].reason == "no audio track"


def test_silence_is_a_missing_value(tmp_path):
    silent = str(write_audio(tmp_path / "silent.wav", np.zeros(8000, dtype=np.float32), 16000))
    with pytest.raises(MissingValue, match="silent"):
        feature().encode(silent)
    tally = CellTally()
    assert Preprocessor._encode_cell(feature(), False, silent, 0, RowPlaces("t.csv"), "error", {}, tally) is None
    assert tally.missing == {"silent": 1}
    quiet = str(write_audio(tmp_path / "quiet.wav", tone(1000, 0.5, 16000, amplitude=10 ** (-50 / 20)), 16000))
    assert int(feature().encode(quiet)["length"]) == 51  # -50 dBFS is above the default -60
    with pytest.raises(MissingValue, match="silent"):
        feature(silence_db=-40).encode(quiet)


def test_crop_keeps_the_start_or_the_middle(tmp_path):
    parts = np.concatenate([tone(500, 1.0, 16000), tone(2000, 1.0, 16000), tone(4000, 1.0, 16000)])
    path = str(write_audio(tmp_path / "three.wav", parts, 16000))
    start = feature(max_seconds=1.0).encode(path)
    middle = feature(max_seconds=1.0, crop="center").encode(path)
    assert int(start["length"]) == int(middle["length"]) == 101
    assert strongest_bin(start) == nearest_mel_bin(500)
    assert strongest_bin(middle) == nearest_mel_bin(2000)


def test_fixed_and_variable_length_differ_only_in_prepare(tmp_path):
    short = str(write_audio(tmp_path / "short.wav", tone(1000, 0.5, 16000), 16000))
    fixed, variable = feature(max_seconds=1.0), feature(max_seconds=1.0, length="variable")
    cells = [fixed.encode(short), None]
    assert torch.equal(cells[0]["value"], variable.encode(short)["value"])
    batch = fixed.stack(cells)
    assert batch["value"].shape == (2, 64, 101) and batch["length"].tolist() == [51, 0]
    padding = (np.log(1e-6) - (-5.0)) / 4.0
    kept = fixed.prepare(batch, training=True)
    assert kept["value"].dtype == torch.float32 and kept["present"].tolist() == [True, False]
    assert torch.allclose(kept["value"][0, :, 60:], torch.tensor(padding, dtype=torch.float32), atol=0.01)
    assert torch.allclose(kept["value"][0], (batch["value"][0].float() + 5.0) / 4.0)
    masked = variable.prepare(batch, training=True)["value"]
    assert not masked[0, :, 51:].any() and not masked[1].any()
    assert torch.equal(masked[0, :, :51], kept["value"][0, :, :51])
    custom = feature(max_seconds=1.0, mean=1.0, std=2.0).prepare(batch, training=False)["value"]
    assert torch.allclose(custom[0], (batch["value"][0].float() - 1.0) / 2.0)


@pytest.mark.parametrize("suffix", [".flac", ".ogg", ".mp3"])
def test_compressed_formats(tmp_path, suffix):
    if not can_write(suffix):
        pytest.skip(f"this FFmpeg build has no encoder for {suffix}")
    path = write_audio(tmp_path / f"tone{suffix}", tone(1000, 1.0, 16000), 16000)
    cell = feature(max_seconds=2.0).encode(str(path))
    assert strongest_bin(cell) == nearest_mel_bin(1000)
    assert 100 <= int(cell["length"]) <= 110  # encoder padding may add a few ms


def test_bad_files_raise_bad_sample_naming_the_path(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(BadSample, match=re.escape(f"cannot read audio '{missing}': no such file")):
        feature().encode(str(missing))
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    with pytest.raises(BadSample, match=re.escape(f"cannot read audio '{text}': not a media file")):
        feature().encode(str(text))
    (tmp_path / "sounds").mkdir()
    write_audio(tmp_path / "sounds" / "a.wav", tone(1000, 0.3, 16000), 16000)
    assert int(feature(tmp_path, max_seconds=1.0).encode("sounds/a.wav")["length"]) == 31


def test_mel_filters_and_settings():
    filters = mel_filters(8, 512, 16000, 0.0, 8000.0)
    assert filters.shape == (8, 257) and filters.min() >= 0 and torch.all(filters.max(dim=1).values > 0.5)
    assert AudioFeature.cache_by_default and AudioFeature.default_encoder == "conv1d"
    assert "length" not in AudioFeature.cache_keys
    assert {"sample_rate", "n_mels", "max_seconds", "crop"} <= set(AudioFeature.cache_keys)
    assert feature().n_fft == 512 and feature().hop == 160 and feature().frames == 801
    bad_settings = ({"f_max": 9000}, {"f_min": 8000}, {"sample_rate": 0}, {"length": "any"}, {"hop_ms": 30.0},
                    {"crop": "end"}, {"n_mel": 40})
    for bad in bad_settings:
        with pytest.raises(ValueError):
            AudioSettings(name="sound", column="sound", **bad)
