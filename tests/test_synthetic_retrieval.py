"""The generated retrieval dataset: its layout, its class imbalance and splits, one imperfect class cue per modality
(photo colour, sound pitch, description words), and the generated-images folder used to balance classes."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plait.data.media import read_audio
from plait.demo.synthetic_retrieval import (CLASSES, LABELS, PITCHES, cue_ceiling, make_generated_images,
                                            make_retrieval)

SAMPLE_RATE = 8000


@pytest.fixture(scope="module")
def retrieval(tmp_path_factory):
    table = make_retrieval(tmp_path_factory.mktemp("retrieval"), rows=320, seed=0)
    return table, pd.read_csv(table)


def share_matching(cues: list[str], labels) -> float:
    return float(np.mean([cue == label for cue, label in zip(cues, labels)]))


def test_files_and_columns(retrieval):
    table, rows = retrieval
    assert list(rows.columns) == ["photo", "sound", "description", "label", "split"]
    assert len(rows) == 320 and set(rows["label"]) == set(LABELS)
    for photo, sound in zip(rows["photo"], rows["sound"]):
        assert (table.parent / photo).is_file() and (table.parent / sound).is_file()
    image = Image.open(table.parent / rows["photo"][0])
    assert image.size == (32, 32) and image.mode == "RGB"
    assert len(read_audio(str(table.parent / rows["sound"][0]), SAMPLE_RATE)) == SAMPLE_RATE // 2


def test_classes_are_imbalanced_and_every_split_holds_every_class(retrieval):
    _, rows = retrieval
    counts = rows["label"].value_counts()
    assert counts.max() / counts.min() >= 5
    assert counts[LABELS].is_monotonic_decreasing  # sizes fall off in the order of CLASSES
    by_split = pd.crosstab(rows["label"], rows["split"])
    assert set(by_split.columns) == {"train", "validation", "test"}
    assert (by_split > 0).all().all()
    shares = rows["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.7, abs=0.05) and shares["test"] == pytest.approx(0.15, abs=0.04)
    # each split keeps the imbalance
    assert by_split.loc[LABELS[0], "train"] > 5 * by_split.loc[LABELS[-1], "train"]


def test_photos_show_the_class_colour_most_of_the_time(retrieval):
    table, rows = retrieval
    colours = np.array([CLASSES[label][0] for label in LABELS], dtype=float)
    cues = []
    for photo in rows["photo"]:
        pixels = np.asarray(Image.open(table.parent / photo), dtype=float).reshape(-1, 3)
        shape = pixels[pixels.max(axis=1) > 120].mean(axis=0)  # the background is dark; the shape is not
        cues.append(LABELS[int(np.linalg.norm(colours - shape, axis=1).argmin())])
    assert 0.6 <= share_matching(cues, rows["label"]) <= 0.8  # confusion 0.3: the cue is right about 70% of the time


def test_sounds_carry_the_class_pitch_most_of_the_time(retrieval):
    table, rows = retrieval
    frequencies = np.fft.rfftfreq(SAMPLE_RATE // 2, 1 / SAMPLE_RATE)
    cues = []
    for sound in rows["sound"]:
        wave = read_audio(str(table.parent / sound), SAMPLE_RATE)[: SAMPLE_RATE // 2]
        peak = frequencies[np.abs(np.fft.rfft(wave)).argmax()]
        nearest = min(LABELS, key=lambda label: abs(np.log(PITCHES[label] / peak)))
        assert abs(peak / PITCHES[nearest] - 1) < 0.05  # always some class's pitch, never noise
        cues.append(nearest)
    assert 0.6 <= share_matching(cues, rows["label"]) <= 0.8


def test_descriptions_hold_one_class_word(retrieval):
    _, rows = retrieval
    cues = []
    for text in rows["description"]:
        words = set(text.rstrip(".").split())
        owners = [label for label in LABELS if words & set(CLASSES[label][2])]
        assert len(owners) == 1, text
        cues.append(owners[0])
    assert 0.6 <= share_matching(cues, rows["label"]) <= 0.8


def test_fusing_modalities_raises_the_ceiling():
    one, two, three = (cue_ceiling(m) for m in (1, 2, 3))
    assert one == pytest.approx(0.7)
    assert one < two < three and three > 0.85


def test_same_seed_same_data_and_too_few_rows_is_refused(tmp_path):
    first, second = make_retrieval(tmp_path / "a", rows=100), make_retrieval(tmp_path / "b", rows=100)
    assert first.read_text() == second.read_text()
    assert (first.parent / "images/00007.png").read_bytes() == (second.parent / "images/00007.png").read_bytes()
    assert (first.parent / "audio/00007.wav").read_bytes() == (second.parent / "audio/00007.wav").read_bytes()
    with pytest.raises(ValueError, match="fewer than 3 rows"):
        make_retrieval(tmp_path / "c", rows=40)


def test_generated_images_layout(tmp_path):
    folder = make_generated_images(tmp_path / "generated", ["white_bar", "cyan_diamond"], per_class=3)
    assert sorted(p.name for p in folder.iterdir()) == ["cyan_diamond", "white_bar"]
    assert sorted(p.name for p in (folder / "white_bar").iterdir()) == ["gen_0000.png", "gen_0001.png", "gen_0002.png"]
    pixels = np.asarray(Image.open(folder / "white_bar" / "gen_0000.png"), dtype=float).reshape(-1, 3)
    shape = pixels[pixels.max(axis=1) > 120].mean(axis=0)
    assert np.abs(shape - CLASSES["white_bar"][0]).max() < 40  # a clean cue of its own class
    with pytest.raises(ValueError, match="unknown classes unicorn"):
        make_generated_images(tmp_path / "other", ["unicorn"], per_class=1)
