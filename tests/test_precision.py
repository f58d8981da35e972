"""Mixed precision (bf16, fp16 with a gradient scaler) and torch.compile, on the CPU."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from plait import api
from plait.config import validate
from plait.training.checkpoint import load_state
from tests.conftest import tabular_config


def train(table, tmp_path, name, dropout=0.1, **settings):
    raw = tabular_config(table, epochs=2, log_every_steps=1, **settings)
    raw["fusion"]["dropout"] = dropout
    run_dir = api.train(validate(raw), run_dir=tmp_path / name)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return run_dir, [r["train.loss"] for r in records if "lr" in r]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_close_to_float32(tabular, tmp_path, precision):
    table, _ = tabular
    _, full = train(table, tmp_path, "fp32")
    run_dir, mixed = train(table, tmp_path, precision, precision=precision)
    assert len(mixed) == len(full) and all(math.isfinite(loss) for loss in mixed)
    assert mixed != full  # autocast really ran in lower precision...
    assert mixed[-1] == pytest.approx(full[-1], rel=0.05)  # ...and learned the same
    scaler = load_state(run_dir / "checkpoints" / "last")["scaler"]
    assert ("scale" in scaler) == (precision == "fp16")  # float16's loss scale is checkpointed for resume


def test_float32_steps_are_untouched_by_the_scaler(tabular, tmp_path):
    table, _ = tabular
    _, first = train(table, tmp_path, "a")
    _, second = train(table, tmp_path, "b", precision="fp32")
    assert first == second and load_state(tmp_path / "a" / "checkpoints" / "last")["scaler"] == {}


@pytest.mark.slow
def test_compiled_model_trains_like_the_eager_one(tabular, tmp_path):
    table, _ = tabular
    _, eager = train(table, tmp_path, "eager", dropout=0.0)  # a compiled graph draws its dropout masks its own way
    run_dir, compiled = train(table, tmp_path, "compiled", dropout=0.0, compile=True)
    assert compiled == pytest.approx(eager, rel=1e-3)
    saved = load_file(run_dir / "checkpoints" / "last" / "model.safetensors")
    assert saved and not any(key.startswith("_orig_mod") for key in saved)  # the plain model's names, loadable anywhere


def test_channels_last_reorders_convolutions_without_changing_their_output():
    from plait.training.precision import to_channels_last

    model = torch.nn.ModuleDict({"image": torch.nn.Conv2d(3, 4, 3), "video": torch.nn.Conv3d(3, 4, 3)})
    image, video = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 4, 8, 8)
    before = model["image"](image), model["video"](video)
    to_channels_last(model)
    assert model["image"].weight.is_contiguous(memory_format=torch.channels_last)
    assert model["video"].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.allclose(model["image"](image), before[0], atol=1e-6)
    assert torch.allclose(model["video"](video), before[1], atol=1e-6)
