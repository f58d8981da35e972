import math

import numpy as np
import pytest
import torch

from plait.config import validate
from plait.data.features.category import Category
from plait.data.features.numeric import Numeric
from plait.errors import BadSample, PlaitError
from plait.tasks.category import CategoryTask
from plait.tasks.number import NumberTask


def spec(kind: str, section: str = "inputs", **keys):
    raw = {"data": {"table": "t.csv"}, "inputs": [{"name": "i", "type": "numeric", "column": "i"}],
           "outputs": [{"name": "o", "type": "category", "column": "o"}]}
    raw[section] = [{"name": "c", "type": kind, "column": "c", **keys}]
    config = validate(raw)
    return (config.inputs if section == "inputs" else config.outputs)[0]


def test_numeric_standardises_with_training_statistics():
    feature = Numeric(spec("numeric"))
    feature.fit(["1", "2", "3", "", "oops"])  # bad and empty cells do not distort the statistics
    assert feature.mean == pytest.approx(2.0) and feature.std == pytest.approx(math.sqrt(2 / 3))
    assert feature.encode("4").item() == pytest.approx(2 / math.sqrt(2 / 3), rel=1e-5)
    for bad in ["oops", "NaN", "inf"]:
        with pytest.raises(BadSample, match="not a"):
            feature.encode(bad)
    restored = Numeric(spec("numeric"))
    restored.load_state_dict(feature.state_dict())
    assert torch.equal(restored.encode("7"), feature.encode("7"))


def test_stack_masks_missing_rows_instead_of_inventing_zeros():
    feature = Numeric(spec("numeric"))
    feature.fit(["0", "2"])
    stacked = feature.stack([feature.encode("2"), None])
    assert stacked["present"].tolist() == [True, False]
    assert stacked["value"].shape == (2, 1)


def test_category_vocabulary_with_unknown_bucket():
    feature = Category(spec("category", min_count=2))
    feature.fit(["b", "a", "a", "b", "c"])
    assert feature.vocabulary == ["<unknown>", "a", "b"]  # c is too rare
    assert feature.encode("a").item() == 1 and feature.encode("c").item() == 0 and feature.encode("zzz").item() == 0
    limited = Category(spec("category", max_size=1))
    limited.fit(["x", "y", "y"])
    assert limited.vocabulary == ["<unknown>", "y"]


def test_category_cells_compare_as_text_across_formats():
    feature = Category(spec("category"))
    feature.fit([3.0, "4"])
    assert feature.encode("3").item() == feature.encode(3).item() != 0


def test_category_task_rejects_labels_unseen_in_training_and_weights_classes():
    task = CategoryTask(spec("category", "outputs", class_weights="balanced"))
    task.fit(["cat", "cat", "cat", "dog"])
    assert task.labels == ["cat", "dog"] and task.weights == pytest.approx([4 / 6, 2.0])
    with pytest.raises(BadSample, match="'bird' does not occur in the training split"):
        task.encode("bird")
    prediction = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0]])
    target = {"value": torch.tensor([0, 1, 1]), "present": torch.tensor([True, True, True])}
    metrics = task.metrics(prediction, target)
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    decoded = task.decode(prediction)
    assert decoded["c_pred"] == ["cat", "dog", "cat"] and decoded["c_prob_dog"][1] > 0.9


def test_a_category_output_with_one_class_in_training_is_refused_by_name():
    task = CategoryTask(spec("category", "outputs"))
    with pytest.raises(PlaitError, match=r"outputs\.c: the training split holds only the label 'cat'; .* at least two"):
        task.fit(["cat", "cat"])


def test_category_loss_ignores_rows_without_a_target():
    task = CategoryTask(spec("category", "outputs"))
    task.fit(["a", "b"])
    prediction = torch.tensor([[5.0, 0.0], [0.0, 0.0]])
    only_first = task.loss(prediction, {"value": torch.tensor([0, 1]), "present": torch.tensor([True, False])})
    assert only_first.item() == pytest.approx(torch.nn.functional.cross_entropy(prediction[:1], torch.tensor([0])).item())
    none = task.loss(prediction, {"value": torch.tensor([0, 1]), "present": torch.tensor([False, False])})
    assert none.item() == 0.0


def test_number_task_reports_metrics_in_original_units():
    task = NumberTask(spec("number", "outputs"))
    task.fit(["10", "20", "30"])
    truth = torch.stack([task.encode(v) for v in ["10", "20", "30", "40"]])
    target = {"value": truth, "present": torch.ones(4, dtype=torch.bool)}
    off_by_two = ((torch.tensor([12.0, 22.0, 32.0, 42.0]) - task.mean) / task.std).unsqueeze(-1)
    metrics = task.metrics(off_by_two, target)
    assert metrics["mae"] == pytest.approx(2.0) and metrics["rmse"] == pytest.approx(2.0)
    assert metrics["spearman"] == pytest.approx(1.0) and metrics["pearson"] == pytest.approx(1.0)
    assert task.decode(off_by_two)["c_pred"] == pytest.approx([12.0, 22.0, 32.0, 42.0])
    huber = NumberTask(spec("number", "outputs", loss="huber", huber_delta=0.5))
    huber.fit(["0", "1"])
    assert huber.loss(torch.tensor([[10.0]]), {"value": torch.tensor([0.0]), "present": torch.tensor([True])}).item() < 10


def test_number_pearson_in_original_units_and_where_it_is_undefined():
    task = NumberTask(spec("number", "outputs"))
    task.fit(["0", "10"])
    truth = torch.stack([task.encode(v) for v in ["0", "1", "2", "10"]])
    target = {"value": truth, "present": torch.ones(4, dtype=torch.bool)}
    guess = ((torch.tensor([0.0, 2.0, 1.0, 10.0]) - task.mean) / task.std).unsqueeze(-1)
    expected = np.corrcoef([0.0, 2.0, 1.0, 10.0], [0.0, 1.0, 2.0, 10.0])[0, 1]
    assert task.metrics(guess, target)["pearson"] == pytest.approx(expected)
    constant = task.metrics(torch.zeros(4, 1), target)
    assert constant["pearson"] == 0.0 == constant["spearman"]  # undefined: 0, like torchmetrics' Spearman
    assert "pearson" not in task.metrics(guess[:1], {"value": truth[:1], "present": torch.ones(1, dtype=torch.bool)})
