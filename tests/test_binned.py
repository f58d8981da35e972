"""`binned` outputs: binning and decoding, state, loss over present rows, metrics in original units, and training
several binned heads end to end."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from plait import api
from plait.config import validate
from plait.errors import BadSample, PlaitError
from plait.tasks.binned import BinnedTask, bin_centre, bin_range, scale, to_bin, unscale
from tests.test_tabular_features import spec


def fitted(values=("0", "10"), **keys) -> BinnedTask:
    task = BinnedTask(spec("binned", "outputs", **keys))
    task.fit(list(values))
    return task


def test_centre_of_a_values_bin_is_within_half_a_bin_of_it():
    low, high, bins = -3.0, 7.0, 7
    for x in np.linspace(low, high, 101):
        index = int(to_bin(scale(x, low, high), bins))
        lower, upper = bin_range(index, bins, low, high)
        assert lower - 1e-9 <= x <= upper + 1e-9
        assert abs(bin_centre(index, bins, low, high) - x) <= (high - low) / bins / 2 + 1e-9
    assert unscale(scale(1.25, low, high), low, high) == pytest.approx(1.25)


def test_edges_minimum_maximum_and_values_outside_the_training_range():
    task = fitted(bins=4)
    assert [task.encode(v)["value"].item() for v in ["0", "2.49", "2.5", "9.99", "10"]] == [0, 0, 1, 3, 3]
    assert task.encode("-5")["value"].item() == 0 and task.encode("25")["value"].item() == 3  # clipped to the ends
    assert task.encode("25")["scaled"].item() == pytest.approx(2.5)  # the true value is kept for mae / rmse
    for bad in ["oops", "NaN", "inf"]:
        with pytest.raises(BadSample, match="not a"):
            task.encode(bad)


def test_state_round_trip_and_target_cells_stack_key_by_key():
    task = fitted(["2", "x", "6"], bins=5)  # a bad cell does not move the range
    assert task.state_dict() == {"min": 2.0, "max": 6.0, "bins": 5}
    restored = BinnedTask(spec("binned", "outputs"))  # bins: 10 in the spec; the saved state wins
    restored.load_state_dict(json.loads(json.dumps(task.state_dict())))
    assert restored.bins == 5 and restored.build_head(8, {}).out_features == 5
    stacked = restored.stack([restored.encode("5"), None])
    assert stacked["value"].tolist() == [3, 0] and stacked["present"].tolist() == [True, False]
    assert stacked["scaled"].dtype == torch.float32 and stacked["scaled"][0].item() == pytest.approx(0.75)
    assert restored.stack([None])["value"].dtype == torch.long  # `empty` matches `encode`


def test_constant_training_column_is_an_error_naming_the_output():
    with pytest.raises(PlaitError, match="output 'c'.*holds only 3 "):
        fitted(["3", "3.0"])


def test_loss_ignores_rows_without_a_target():
    task = fitted(bins=2, label_smoothing=0.0)
    prediction = torch.tensor([[4.0, 0.0], [0.0, 0.0]])
    target = {"value": torch.tensor([0, 1]), "scaled": torch.tensor([0.1, 0.9]), "present": torch.tensor([True, False])}
    expected = torch.nn.functional.cross_entropy(prediction[:1], torch.tensor([0]))
    assert task.loss(prediction, target).item() == pytest.approx(expected.item())
    assert task.loss(prediction, {**target, "present": torch.tensor([False, False])}).item() == 0.0


def test_metrics_score_bins_and_decoded_values_in_original_units():
    task = fitted(bins=5)  # bins of width 2 over [0, 10], centres 1, 3, 5, 7, 9
    truth = [task.encode(v) for v in ["1", "3.5", "7.5", "0"]]
    target = {"value": torch.stack([t["value"] for t in truth]), "scaled": torch.stack([t["scaled"] for t in truth]),
              "present": torch.tensor([True, True, True, False])}
    chosen = torch.tensor([0, 2, 4, 4])  # right, one bin off, one bin off, (no target)
    prediction = torch.nn.functional.one_hot(chosen, 5).float() * 5
    metrics = task.metrics(prediction, target)
    assert metrics["accuracy"] == pytest.approx(1 / 3) and metrics["within_one"] == pytest.approx(1.0)
    assert metrics["mae"] == pytest.approx((0 + 1.5 + 1.5) / 3)  # |1-1|, |5-3.5|, |9-7.5|: centres against true values
    assert metrics["rmse"] == pytest.approx(((0 + 1.5**2 + 1.5**2) / 3) ** 0.5)
    assert task.metrics(prediction, {**target, "present": torch.zeros(4, dtype=torch.bool)}) == {}


def test_decode_gives_the_bin_its_range_centre_and_probability():
    task = fitted(bins=5)
    decoded = task.decode(torch.tensor([[0.0, 0.0, 0.0, 9.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]]))
    assert decoded["c_bin"] == [3, 0] and decoded["c_pred"] == pytest.approx([7.0, 1.0])
    assert decoded["c_low"] == pytest.approx([6.0, 0.0]) and decoded["c_high"] == pytest.approx([8.0, 2.0])
    assert decoded["c_prob"][0] > 0.99 and 0.2 < decoded["c_prob"][1] < 0.5


def test_several_binned_outputs_learn_functions_of_one_input(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 400)
    table = tmp_path / "table.csv"
    pd.DataFrame({"x": x.round(5), "linear": (3 * x).round(5), "square": (x**2).round(5), "wave": np.sin(2 * x).round(5),
                  "split": rng.choice(["train", "validation"], 400, p=[0.75, 0.25])}).to_csv(table, index=False)
    outputs = [{"name": name, "type": "binned", "column": name, "bins": 4} for name in ["linear", "square", "wave"]]
    config = validate({"name": "binned", "data": {"table": str(table)}, "inputs": [{"name": "x", "type": "numeric", "column": "x"}],
                       "outputs": outputs, "fusion": {"name": "concat", "hidden": [32], "dropout": 0.0},
                       "train": {"epochs": 25, "batch_size": 16, "seed": 0, "threads": 1, "optimizer": {"lr": 0.01}}})
    run = api.train(config, run_dir=tmp_path / "run")
    metrics = api.evaluate(run, "validation")
    frame = pd.read_csv(table)
    for name in ["linear", "square", "wave"]:
        train = frame[frame.split == "train"][name]
        bins = np.digitize(scale(frame[frame.split == "validation"][name], train.min(), train.max()), [0.25, 0.5, 0.75])
        majority = np.bincount(bins).max() / len(bins)
        assert metrics[f"{name}.accuracy"] >= max(0.8, majority + 0.3), (name, metrics[f"{name}.accuracy"], majority)
        assert metrics[f"{name}.within_one"] >= metrics[f"{name}.accuracy"]
    assert (run / "plots" / "confusion_wave.png").is_file()
    report = (run / "report.html").read_text(encoding="utf-8")  # shows validation: the table has no test split
    assert report.count('<tr><td class="left">[') == 3 * 4  # a per-class row per bin of each output, named by its range
    assert "confusion matrix (validation)" in report and '<section id="ablation">' not in report  # one input
