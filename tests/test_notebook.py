"""`plait.Model`: fit, predict, evaluate, save and load on DataFrames, with images in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import plait
from plait.errors import PlaitError


def photos_table(rows: int, seed: int) -> pd.DataFrame:
    """Bright or dark photos (PIL images and uint8 arrays, in memory) with a reading; the label is the brightness."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(["bright", "dark"], rows)
    pixels = [(rng.integers(0, 90, (16, 16, 3)) + (150 if label == "bright" else 0)).astype(np.uint8) for label in labels]
    photos = [Image.fromarray(p) if i % 2 else p for i, p in enumerate(pixels)]  # both kinds of in-memory image
    return pd.DataFrame({"photo": photos, "reading": rng.normal(size=rows).round(3), "label": labels},
                        index=pd.RangeIndex(1000, 1000 + rows))


def test_the_public_api_is_what_all_names():
    assert sorted(plait.__all__) == ["Model", "__version__", "evaluate", "train"]
    assert all(getattr(plait, name) for name in plait.__all__)


@pytest.mark.slow
def test_a_model_round_trips_fit_predict_evaluate_save_and_load(tmp_path):
    train, validation, test = photos_table(96, 0), photos_table(24, 1), photos_table(20, 2)
    model = plait.Model.from_table(train, target="label", workdir=tmp_path / "work")
    assert "photo: 96 paths to image files" in model.inferred  # the in-memory photos were decided as images
    model.raw["train"].update(epochs=4, checkpoint_every_steps=None)
    model.fit(train, validation=validation)

    predictions = model.predict(test.drop(columns="label"))
    assert list(predictions.index) == list(test.index) and "label_pred" in predictions
    assert (predictions["label_pred"] == test["label"]).mean() >= 0.9
    metrics = model.evaluate(test)
    assert metrics["label.accuracy"] == pytest.approx((predictions["label_pred"] == test["label"]).mean())

    saved = model.save(tmp_path / "saved")
    again = plait.Model.load(saved).predict(test.drop(columns="label"))
    pd.testing.assert_frame_equal(again, predictions)
    with pytest.raises(PlaitError, match="exists"):
        model.save(saved)


def test_an_untrained_model_says_so(tmp_path):
    model = plait.Model({"name": "x"}, workdir=tmp_path)
    with pytest.raises(PlaitError, match="not trained yet"):
        model.predict(pd.DataFrame({"a": [1]}))
    with pytest.raises(PlaitError, match="not a run folder"):
        plait.Model.load(tmp_path)


def clips_table(rows: int, seed: int) -> pd.DataFrame:
    """Clips (uint8 frames) and sounds (float samples) in memory; the label is both the clips' brightness and the
    sounds' pitch, so either input alone can learn it."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(["day", "night"], rows)
    clips = [(rng.integers(0, 80, (4, 16, 16, 3)) + (160 if label == "day" else 0)).astype(np.uint8) for label in labels]
    time = np.arange(4000) / 8000
    sounds = [(0.4 * np.sin(2 * np.pi * (1500 if label == "day" else 300) * time)).astype(np.float32) for label in labels]
    return pd.DataFrame({"clip": clips, "voice": sounds, "label": labels})


@pytest.mark.slow
def test_a_model_takes_clips_and_sounds_in_memory(tmp_path):
    config = {
        "name": "clips",
        "data": {"table": "replaced-by-fit.parquet"},
        "inputs": [
            {"name": "clip", "type": "video", "column": "clip", "frames": 4, "size": 16,
             "encoder": {"name": "cnn3d", "channels": [8, 16]}},
            {"name": "voice", "type": "audio", "column": "voice", "sample_rate": 8000, "max_seconds": 0.5},
        ],
        "outputs": [{"name": "label", "type": "category", "column": "label"}],
        "train": {"epochs": 4, "batch_size": 16, "optimizer": {"lr": 3.0e-3}, "checkpoint_every_steps": None},
    }
    model = plait.Model(config, workdir=tmp_path / "work").fit(clips_table(64, 0), validation=clips_table(16, 1))
    test = clips_table(20, 2)
    predictions = model.predict(test.drop(columns="label"))
    assert (predictions["label_pred"] == test["label"]).mean() >= 0.9
    assert model.evaluate(test)["label.accuracy"] >= 0.9
    clips, sounds = list((tmp_path / "work").rglob("*.avi")), list((tmp_path / "work").rglob("*.wav"))
    assert len(clips) == 64 + 16 + 20 + 20  # each clip (all differ) went through a file: fit, predict, evaluate
    assert len(sounds) == 2 * 3  # the two tones, one file each per table: equal cells share a file


def test_a_relative_work_folder_and_clips_whose_sound_is_wanted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert plait.Model({"name": "x"}, workdir="work").workdir == tmp_path / "work"  # cells hold absolute paths
    config = {"name": "x", "data": {"table": "t.csv"}, "outputs": [{"name": "label", "type": "category", "column": "label"}],
              "inputs": [{"name": "voice", "type": "audio", "column": "clip", "source": "video_column"}]}
    with pytest.raises(PlaitError, match="frames in memory have no sound track"):
        plait.Model(config, workdir="work").fit(clips_table(4, 0))
