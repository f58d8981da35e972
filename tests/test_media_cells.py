"""In-memory media in DataFrame cells (`plait.Model`'s tables) become files the data path reads back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from plait.data.media import count_video_frames, read_audio, read_frames_at, read_frames_every
from plait.media_cells import with_files


def test_images_clips_and_sounds_are_written_and_read_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (15, 17, 3), dtype=np.uint8)          # odd sizes: no codec constraint applies
    clip = rng.integers(0, 256, (5, 9, 11, 3), dtype=np.uint8)
    sound = (0.5 * np.sin(np.linspace(0, 200, 8000))).astype(np.float32)
    table = pd.DataFrame({
        "photo": [photo, Image.fromarray(photo[:, :, 0]), "kept/as/path.png", None],
        "clip": [clip, (clip[:2], 10), None, "kept.mp4"],
        "voice": [sound, (np.stack([sound, sound], axis=1), 8000), None, "kept.wav"],
        "reading": [1.0, 2.0, 3.0, 4.0],
    })
    out = with_files(table, tmp_path / "media", kinds={"voice": "audio"}, sample_rates={"voice": 16000})

    assert out["photo"][2] == "kept/as/path.png" and pd.isna(out["photo"][3])  # paths and missing cells stay
    assert list(out["reading"]) == [1.0, 2.0, 3.0, 4.0]
    assert np.array_equal(np.asarray(Image.open(out["photo"][0])), photo)
    assert np.array_equal(np.asarray(Image.open(out["photo"][1])), photo[:, :, 0])

    assert out["clip"][0].endswith(".avi") and pd.isna(out["clip"][2]) and out["clip"][3] == "kept.mp4"
    assert count_video_frames(out["clip"][0]) == 5
    assert np.array_equal(read_frames_at(out["clip"][0], list(range(5)), (9, 11)), clip)  # pixels exactly
    assert len(read_frames_every(out["clip"][1], 8, 20.0, (9, 11))) == 4  # 2 frames at 10 fps last 0.2 s

    first = read_audio(out["voice"][0], 16000)
    assert out["voice"][0].endswith(".wav") and abs(len(first) - 8000) <= 1
    assert np.abs(first[:7999] - sound[:7999]).max() < 1e-3  # 16-bit PCM at the input's rate
    second = read_audio(out["voice"][1], 8000)  # the rate given with the samples; two channels mixed to mono
    assert abs(len(second) - 8000) <= 1 and np.abs(second[:7999] - sound[:7999]).max() < 1e-3
    assert list(table["photo"][:1].map(type)) == [np.ndarray]  # the caller's table is left as it was


def test_arrays_that_are_not_media_stay_arrays(tmp_path):
    signal = np.linspace(0, 1, 50, dtype=np.float32)
    table = pd.DataFrame({"signal": [signal, signal], "ids": [np.arange(3), np.arange(3)]})
    out = with_files(table, tmp_path / "media")  # no config: samples are audio only in an audio column
    assert all(isinstance(cell, np.ndarray) for cell in out["signal"]) and not (tmp_path / "media").exists()


def test_equal_media_share_one_file_and_odd_column_names_stay_inside_the_folder(tmp_path):
    photo = np.full((8, 8, 3), 200, dtype=np.uint8)
    frames = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    table = pd.DataFrame([[photo, photo.copy(), (frames, np.float32(12.5))],
                          [photo.copy(), np.zeros((8, 8), np.uint8), (frames, np.float32(12.5))]],
                         columns=[1, "1", "/etc"])  # a name that is an int, its string twin, an absolute path
    out = with_files(table, tmp_path / "media")
    assert out.iloc[0, 0] == out.iloc[1, 0]  # an image on two rows (five captions, say) is one file
    assert out.iloc[0, 0] != out.iloc[0, 1] and out.iloc[1, 1] != out.iloc[0, 1]
    written = [Path(p) for p in out.to_numpy().ravel()]
    assert all(p.is_file() and tmp_path / "media" in p.parents for p in written)
    assert len(set(written)) == 4 and read_frames_every(str(written[2]), 2, 12.5, (4, 4)).shape == (2, 4, 4, 3)


def test_channels_first_sound_is_mixed_down_too(tmp_path):
    sound = (0.3 * np.sin(np.linspace(0, 300, 6000))).astype(np.float32)
    out = with_files(pd.DataFrame({"voice": [np.stack([sound, sound])]}), tmp_path, kinds={"voice": "audio"},
                     sample_rates={"voice": 8000})  # [channels, samples], as torchaudio and librosa give it
    assert abs(len(read_audio(out["voice"][0], 8000)) - 6000) <= 1
