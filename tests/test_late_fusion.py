"""Late fusion: a head per input for each output, combined by the output's task; missing inputs get no weight."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from plait import api
from plait.config import validate
from plait.errors import PlaitError
from plait.inference.predict import predict_file
from plait.models.late import LateHead
from plait.runs import Run
from plait.tasks.category import mean_of_probabilities
from tests.conftest import tabular_config


def test_mean_of_probabilities_is_a_log_probability_whose_softmax_is_the_weighted_mean():
    logits = torch.randn(5, 3, 4)
    weights = torch.tensor([[0.2, 0.3, 0.5]]).expand(5, -1)
    combined = mean_of_probabilities(logits, weights)
    expected = (weights[..., None] * logits.softmax(-1)).sum(1)
    assert torch.allclose(combined.exp(), expected, atol=1e-6)
    assert torch.allclose(combined.softmax(-1), expected, atol=1e-6)


class Numbers:
    """A stand-in task: a Linear head per input, combined by the weighted mean."""

    def build_head(self, width, widths):
        return torch.nn.Linear(width, 1)

    def combine(self, predictions, weights):
        return (weights[..., None] * predictions).sum(1)


def test_missing_inputs_get_no_weight_and_learned_weights_train():
    head = LateHead(Numbers(), {"a": 2, "b": 2, "c": 2}, "learned")
    present = {"a": torch.tensor([True, True, False]), "b": torch.tensor([True, False, False]),
               "c": torch.tensor([True, False, False])}
    weights = head.weights(present)
    assert torch.allclose(weights[0], torch.full((3,), 1 / 3))
    assert torch.equal(weights[1], torch.tensor([1.0, 0.0, 0.0]))  # only `a` is there
    assert torch.allclose(weights[2], torch.full((3,), 1 / 3))  # nothing is there: equal weights
    combined, parts = head({name: torch.randn(3, 2) for name in "abc"}, present)
    assert torch.allclose(combined[1], parts["a"][1])
    combined.sum().backward()
    assert head.scores.grad is not None


def late_config(table, **fusion) -> dict:
    config = tabular_config(table, epochs=8)
    config["fusion"] = {"name": "late", "hidden": [16], **fusion}
    return config


def test_late_fusion_trains_and_predicts(tabular, tmp_path):
    table, _ = tabular
    run_dir = api.train(validate(late_config(table, combine="learned")), run_dir=tmp_path / "run")
    test = json.loads((run_dir / "evaluation" / "test.json").read_text())
    # target = 2x + (colour is blue) + noise: x's head alone gets most of it, and the mean of the heads keeps the order
    assert test["target.spearman"] > 0.9 and test["target.r2"] > 0.5
    run = Run.load(run_dir)
    assert set(run.model.heads["label"].parts) == {"x", "colour", "note"}
    assert predict_file(run, str(table), str(tmp_path / "predictions.csv")).rows == 240
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert {"label_pred", "label_prob_yes", "target_pred"} <= set(predictions.columns) and len(predictions) == 240
    probabilities = predictions[["label_prob_no", "label_prob_yes"]].sum(axis=1)
    assert ((probabilities - 1).abs() < 1e-5).all()


def test_a_late_fusion_run_is_ablated_like_any_other(tabular, tmp_path):
    import json

    table, _ = tabular
    run_dir = api.train(validate(late_config(table)), run_dir=tmp_path / "run")
    ablation = json.loads((run_dir / "evaluation" / "ablation_test.json").read_text())
    assert list(ablation["variants"]) == ["fused", "without x", "without colour", "without note", "only x", "only colour", "only note"]
    assert '<section id="ablation">' in (run_dir / "report.html").read_text(encoding="utf-8")


def test_each_inputs_own_loss_is_added_while_training(tabular, tmp_path):
    from plait.data.dataset import load_batch, prepare_inputs
    from plait.training.trainer import Trainer

    table, _ = tabular
    run_dir = api.train(validate(late_config(table, input_loss=0.5)), run_dir=tmp_path / "run", overrides=())
    run = Run.load(run_dir)
    batch = pd.read_csv(table).head(16)

    encoded = run.preprocessor.encode(batch, "train", "t")
    data = load_batch(encoded, torch.arange(16), run.preprocessor.tasks, run.device)
    with torch.no_grad():
        outputs = run.model(prepare_inputs(run.preprocessor.features, data["inputs"], training=False), targets=data["targets"])
    assert {"label@x", "label@colour", "label@note", "target@x"} <= set(outputs)
    trainer = Trainer.__new__(Trainer)
    trainer.model, trainer.tasks = run.model, run.preprocessor.tasks
    with_inputs = float(trainer.total_loss(outputs, data["targets"]))
    run.model.fusion.input_loss = 0.0
    combined_only = float(trainer.total_loss(outputs, data["targets"]))
    parts = [float(task.loss(outputs[f"{name}@{i}"], data["targets"][name])) for name, task in run.preprocessor.tasks.items()
             for i in ("x", "colour", "note")]
    weighted = sum(parts[:3]) / 3 + 0.5 * sum(parts[3:]) / 3  # `target` has loss_weight 0.5
    assert with_inputs == pytest.approx(combined_only + 0.5 * weighted, rel=1e-5)


def test_late_fusion_cannot_write_captions():
    raw = {"data": {"table": "t.csv"}, "inputs": [{"name": "photo", "type": "image", "column": "image"}],
           "outputs": [{"name": "caption", "type": "caption", "column": "caption"}], "fusion": {"name": "late"}}
    with pytest.raises(PlaitError, match="late"):
        validate(raw)
