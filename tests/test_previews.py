"""The report's cell previews: what each modality shows (thumbnail, poster frame, spectrogram, sparkline, text),
that everything is escaped and self-contained, and that empty or broken cells never raise."""

from __future__ import annotations

import base64
import io
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plait.data.features.audio import AudioFeature, AudioSettings
from plait.data.dataset import Preprocessor
from plait.data.features.image import ImageFeature, ImageSettings
from plait.data.features.numeric import NumericSettings
from plait.data.features.sequence import SequenceFeature, SequenceSettings
from plait.data.features.text import Text, TextSettings
from plait.data.features.video import VideoFeature, VideoSettings
from plait.demo.synthetic import make_demo
from plait.demo.synthetic_media import tone, write_audio, write_clip
from plait.report.previews import preview, preview_row

CLIP_COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 220), (230, 210, 40), (200, 40, 200)]  # frame i is colour i


def pictures(html: str) -> list[Image.Image]:
    """The images embedded in `html` as data URIs, decoded."""
    found = re.findall(r'src="data:image/(?:jpeg|png);base64,([A-Za-z0-9+/=]+)"', html)
    return [Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB") for data in found]


def only_picture(html: str) -> Image.Image:
    found = pictures(html)
    assert len(found) == 1, html[:200]
    return found[0]


@pytest.fixture(scope="module")
def media_folder(tmp_path_factory):
    """A wide photo, a five-frame clip of distinct colours, a low and a high tone."""
    folder = tmp_path_factory.mktemp("media")
    Image.new("RGB", (400, 200), (10, 120, 200)).save(folder / "wide.png")
    frames = np.array([np.full((32, 48, 3), colour, dtype=np.uint8) for colour in CLIP_COLOURS])
    write_clip(folder / "colours.mp4", frames, fps=5)
    write_audio(folder / "low.wav", tone(200, 1.0, 16000), 16000)
    write_audio(folder / "high.wav", tone(4000, 1.0, 16000), 16000)
    return folder


def test_image_is_a_jpeg_thumbnail_fitting_size_with_the_same_aspect(media_folder):
    photo = ImageFeature(ImageSettings(name="photo", column="photo"), str(media_folder))
    html = preview(photo, "wide.png", size=100)
    assert 'src="data:image/jpeg;base64,' in html and 'alt="wide.png"' in html
    assert only_picture(html).size == (100, 50)


def test_video_poster_is_the_middle_frame_with_duration_and_frame_count(media_folder):
    clip = VideoFeature(VideoSettings(name="clip", column="clip"), str(media_folder))
    html = preview(clip, "colours.mp4", size=24)
    poster = only_picture(html)
    assert poster.size == (24, 16)  # 48 × 32 frames, halved
    mean = np.asarray(poster, dtype=float).reshape(-1, 3).mean(axis=0)
    distances = [np.abs(mean - colour).sum() for colour in CLIP_COLOURS]
    assert int(np.argmin(distances)) == 2 and min(distances) < 40  # the third of five frames
    assert "1.0 s" in html and "5 frames" in html


def brightest_row(html: str) -> float:
    """Height (0 bottom, 1 top) of the brightest row of the spectrogram in `html`."""
    rows = np.asarray(only_picture(html).convert("L"), dtype=float).mean(axis=1)
    return 1 - int(rows.argmax()) / (len(rows) - 1)


def test_audio_spectrogram_puts_a_low_tone_low_and_a_high_tone_high(media_folder):
    sound = AudioFeature(AudioSettings(name="sound", column="sound"), str(media_folder))
    low, high = preview(sound, "low.wav"), preview(sound, "high.wav")
    assert 'src="data:image/png;base64,' in low and "1.0 s" in low
    assert brightest_row(low) < 0.25
    assert brightest_row(high) > brightest_row(low) + 0.4


def test_text_is_escaped_and_cut(media_folder):
    note = Text(TextSettings(name="note", column="note"))
    html = preview(note, "<script>alert(1)</script> " + "word " * 200)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.startswith('<div class="text">') and "…" in html
    assert len(html) < 400


def test_sequence_gives_a_sparkline_with_its_shape(tmp_path):
    trace = SequenceFeature(SequenceSettings(name="trace", column="trace"), str(tmp_path))
    steps = np.stack([np.sin(np.linspace(0, 6, 500)), np.linspace(-1, 1, 500)], axis=1)
    np.save(tmp_path / "trace.npy", steps)
    for cell in ("trace.npy", steps.tolist()):
        html = preview(trace, cell, size=120)
        picture = only_picture(html)
        assert 'src="data:image/png;base64,' in html and "500 steps × 2 channels" in html
        assert picture.size == (120, 60)
        assert (np.asarray(picture) != 255).any(axis=2).sum() > 120  # lines drawn across the white canvas


def test_missing_and_unreadable_cells_are_shown_not_raised(media_folder):
    photo = ImageFeature(ImageSettings(name="photo", column="photo"), str(media_folder))
    clip = VideoFeature(VideoSettings(name="clip", column="clip"), str(media_folder))
    sound = AudioFeature(AudioSettings(name="sound", column="sound"), str(media_folder))
    (media_folder / "broken.png").write_bytes(b"not really a picture")
    for empty in (None, float("nan"), "  "):
        assert preview(photo, empty) == '<span class="missing">missing</span>'
    assert preview(photo, "gone.png") == '<span class="missing">unreadable: no such file</span>'
    assert preview(photo, "broken.png") == '<span class="missing">unreadable: not an image file</span>'
    assert preview(clip, "broken.png").startswith('<span class="missing">unreadable: ')
    assert preview(sound, "colours.mp4") == '<span class="missing">no audio track</span>'


def test_preview_row_reads_each_input_from_its_column(tmp_path):
    table = make_demo(tmp_path, rows=3)
    inputs = [ImageSettings(name="picture", column="photo"), TextSettings(name="words", column="note"),
              NumericSettings(name="value", column="reading")]
    features = Preprocessor(SimpleNamespace(inputs=inputs, outputs=[]), str(tmp_path)).features
    row = pd.read_csv(table).iloc[0]
    shown = preview_row(features, row, size=32)
    assert set(shown) == {"picture", "words", "value"}
    assert only_picture(shown["picture"]).size == (32, 32)
    assert shown["words"] == f'<div class="text">{row["note"]}</div>'
    assert shown["value"] == f"{row['reading']:.6g}"
    assert preview_row(features, row.drop("note"))["words"] == '<span class="missing">missing</span>'
