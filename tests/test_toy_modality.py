"""A modality defined entirely in this file (a colour written `#rrggbb`, drawn as a swatch in the report) trains end
to end, evaluates, ablates, predicts and shows in the report, with nothing added under `src/`: the feature type and
its encoder below, and one `add_modality` line."""

from __future__ import annotations

import html
import json
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import Field
from torch import nn

from plait import api
from plait.config import validate
from plait.data.features.base import FeatureType
from plait.errors import BadSample, PlaitError
from plait.models.encoders.base import Encoder
from plait.schema import EncoderBase, InputBase
from tests.conftest import run_cli_here


# ── the modality: settings, feature type, encoder ─────────────────────────────────────────────────────
class ColourSettings(InputBase):
    default_encoder: ClassVar[str] = "rgb_mlp"
    type: Literal["colour"] = "colour"


class RgbMlpSettings(EncoderBase):
    modalities: ClassVar[tuple[str, ...]] = ("colour",)
    name: Literal["rgb_mlp"] = "rgb_mlp"
    width: int = Field(16, ge=1, description="Width of the hidden layer and of the output.")


class Colour(FeatureType):
    """`#rrggbb` → its red, green and blue in [0, 1]."""

    Settings = ColourSettings

    def encode(self, value):
        text = str(value).strip().lstrip("#")
        try:
            channels = bytes.fromhex(text)
        except ValueError:
            channels = b""
        if len(channels) != 3:
            raise BadSample(f"not a #rrggbb colour: {value!r}")
        return torch.tensor(list(channels), dtype=torch.float32) / 255

    def empty(self):
        return torch.zeros(3)

    def preview(self, value, size: int) -> str:
        return f'<span class="swatch" style="background:{html.escape(str(value))}"></span>'


class RgbMlp(Encoder):
    Config = RgbMlpSettings

    def __init__(self, config: RgbMlpSettings, feature):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, config.width), nn.ReLU(), nn.Linear(config.width, config.width), nn.ReLU())
        self.out_dim = config.width

    def forward(self, batch):
        return self.net(batch["value"])


@pytest.fixture
def colour_modality():
    """The one registration line, undone afterwards so later tests in this process see plait's own schema."""
    from plait.config import rebuild_schema
    from plait.modalities import add_modality
    from plait.registry import ENCODERS, FEATURES
    from plait.settings import ENCODERS as ENCODER_SETTINGS, INPUTS

    saved = list(INPUTS), list(ENCODER_SETTINGS)
    add_modality(Colour, [RgbMlp])
    yield
    INPUTS[:], ENCODER_SETTINGS[:] = saved
    FEATURES.pop("colour")
    ENCODERS.pop("rgb_mlp")
    rebuild_schema()


def colour_table(path, rows: int = 240):
    """A warm colour (more red than blue) is `warm`; a noisy reading carries a little of the same signal."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(rows, 3))
    warm = rgb[:, 0] > rgb[:, 2]
    table = pd.DataFrame({
        "swatch": [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb],
        "reading": warm + rng.normal(0, 1.5, rows),
        "label": np.where(warm, "warm", "cool"),
        "split": rng.choice(["train", "validation", "test"], size=rows, p=[0.7, 0.15, 0.15]),
    })
    table.loc[3, "swatch"] = "teal"  # a bad cell, skipped under on_bad_sample: skip
    table.to_csv(path, index=False)
    return path


def colour_config(table, **train) -> dict:
    return {
        "name": "colours",
        "data": {"table": str(table), "on_bad_sample": "skip"},
        "inputs": [{"name": "swatch", "type": "colour", "column": "swatch", "encoder": {"width": 12}},
                   {"name": "reading", "type": "numeric", "column": "reading"}],
        "outputs": [{"name": "label", "type": "category", "column": "label"}],
        "train": {"epochs": 15, "batch_size": 16, "seed": 0, "threads": 1, "optimizer": {"lr": 0.01}, **train},
    }


def test_a_modality_defined_outside_src_trains_evaluates_and_reports(colour_modality, tmp_path):
    config = validate(colour_config(colour_table(tmp_path / "colours.csv")))
    assert config.inputs[0].encoder.name == "rgb_mlp" and config.inputs[0].encoder.width == 12  # its keys are schema keys
    run = api.train(config, run_dir=tmp_path / "run")

    assert api.evaluate(run, "test")["label.accuracy"] >= 0.85  # the rule lives in the colour alone
    ablation = api.ablate(run, "test")
    without_swatch = ablation.metrics["without swatch"]["label.accuracy"]
    assert without_swatch < ablation.metrics["fused"]["label.accuracy"] - 0.1  # the new modality carries the signal
    skipped = [json.loads(line) for line in (run / "skipped.jsonl").read_text().splitlines()]
    assert [record["reason"] for record in skipped] == ["not a #rrggbb colour: 'teal'"]
    assert '<span class="swatch" style="background:#' in (run / "report.html").read_text()  # its own preview

    rows = pd.DataFrame({"swatch": ["#ff0000", "#0000ff"], "reading": [0.5, 0.5]})
    rows.to_csv(tmp_path / "new.csv", index=False)
    result = run_cli_here("predict", run, "--input", tmp_path / "new.csv", "--output", tmp_path / "out.csv")
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(tmp_path / "out.csv")["label_pred"].tolist() == ["warm", "cool"]


def test_a_registered_modality_is_checked_like_plait_own(colour_modality, tmp_path):
    raw = colour_config(tmp_path / "colours.csv")
    raw["inputs"][0]["encoder"] = {"name": "rgb_mlp", "widht": 3}
    with pytest.raises(PlaitError, match="widht"):
        validate(raw)
    raw["inputs"][0] = {"name": "swatch", "type": "colours", "column": "swatch"}
    with pytest.raises(PlaitError, match="did you mean colour"):
        validate(raw)


def test_a_modality_whose_names_are_taken_is_refused_whole(colour_modality):
    from plait.modalities import add_modality
    from plait.registry import FEATURES

    class Shade(Colour):
        Settings = type("ShadeSettings", (ColourSettings,), {"__annotations__": {"type": Literal["shade"]}, "type": "shade"})

    with pytest.raises(ValueError, match="already registered: rgb_mlp"):
        add_modality(Shade, [RgbMlp])
    assert "shade" not in FEATURES  # nothing half-registered


def test_the_registration_is_undone_with_the_fixture():
    with pytest.raises(PlaitError, match="unknown value 'colour'"):
        validate(colour_config("colours.csv"))
