"""Class imbalance: the focal loss of `category` outputs and the `balanced` sampler (each class equally often per
epoch, replayed exactly by a resumed run)."""

import json
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
import yaml

from plait import api
from plait.config import validate
from plait.errors import PlaitError
from plait.tasks.category import CategoryTask
from plait.training.checkpoint import checkpoint_folder
from plait.training import sampler
from plait.training.sampler import balanced_order, make_sampler
from plait.training.trainer import Trainer
from tests.conftest import run_cli_here, tabular_config, tabular_rows
from tests.test_resume import weights


def category_task(labels, **keys) -> CategoryTask:
    raw = {"data": {"table": "t.csv"}, "inputs": [{"name": "i", "type": "numeric", "column": "i"}],
           "outputs": [{"name": "o", "type": "category", "column": "o", **keys}]}
    task = CategoryTask(validate(raw).outputs[0])
    task.fit(labels)
    return task


LABELS = ["a"] * 6 + ["b"] * 3 + ["c"]  # imbalanced, so `balanced` weights differ per class


def logits_and_target():
    prediction = torch.randn(8, 3, generator=torch.Generator().manual_seed(0)) * 2
    target = {"value": torch.tensor([0, 1, 2, 0, 1, 0, 2, 0]),
              "present": torch.tensor([True, True, False, True, True, False, True, True])}
    return prediction, target


@pytest.mark.parametrize("class_weights", ["none", "balanced", {"a": 0.5, "c": 4.0}])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_focal_with_gamma_zero_is_the_cross_entropy(class_weights, label_smoothing):
    prediction, target = logits_and_target()
    focal = category_task(LABELS, loss="focal", gamma=0.0, class_weights=class_weights, label_smoothing=label_smoothing)
    plain = category_task(LABELS, class_weights=class_weights, label_smoothing=label_smoothing)
    assert plain.spec.loss == "cross_entropy"  # the default
    present = target["present"]
    weight = torch.tensor(plain.weights) if plain.weights else None
    expected = F.cross_entropy(prediction[present], target["value"][present], weight=weight, label_smoothing=label_smoothing)
    assert plain.loss(prediction, target).item() == pytest.approx(expected.item(), rel=1e-6)
    assert focal.loss(prediction, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_focal_is_the_weighted_mean_of_the_modulated_cross_entropy_over_present_rows():
    prediction, target = logits_and_target()
    task = category_task(LABELS, loss="focal", gamma=2.0, class_weights="balanced")
    assert task.spec.gamma == 2.0 and task.weights[0] != task.weights[2]
    present = target["present"]
    logits, truth = prediction[present], target["value"][present]
    alpha = torch.tensor(task.weights)[truth]
    p = logits.softmax(-1).gather(1, truth[:, None]).squeeze(1)
    expected = (alpha * (1 - p) ** 2 * -p.log()).sum() / alpha.sum()
    assert task.loss(prediction, target).item() == pytest.approx(expected.item(), rel=1e-5)
    other = prediction.clone()
    other[~present] = 50.0  # rows without a target change nothing
    assert task.loss(other, target).item() == pytest.approx(expected.item(), rel=1e-5)
    assert task.loss(prediction, {**target, "present": torch.zeros(8, dtype=torch.bool)}).item() == 0.0
    # evaluation reports the class-weighted cross-entropy, not the focal loss
    weighted = F.cross_entropy(logits, truth, weight=torch.tensor(task.weights))
    assert task.evaluation_loss(prediction, target).item() == pytest.approx(weighted.item(), rel=1e-6)


def test_focal_down_weights_rows_already_right():
    focal, plain = category_task(["a", "b"], loss="focal", gamma=2.0), category_task(["a", "b"])
    target = {"value": torch.tensor([0]), "present": torch.tensor([True])}
    easy, hard = torch.tensor([[4.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert focal.loss(easy, target) < 0.001 * plain.loss(easy, target)  # (1 - 0.98)^2
    assert focal.loss(hard, target) > 0.7 * plain.loss(hard, target)  # (1 - 0.12)^2
    both = {"value": torch.tensor([0, 0]), "present": torch.tensor([True, True])}
    rows = torch.cat([easy, hard])
    easy_share = lambda task: task.loss(easy, target) / (2 * task.loss(rows, both))  # noqa: E731
    assert easy_share(focal) < 0.01 * easy_share(plain)  # the confident right row's part of the batch's loss


def test_a_confident_row_pulls_less_on_the_weights_under_focal():
    logits = torch.tensor([[4.0, 0.0], [0.0, 2.0]], requires_grad=True)
    target = {"value": torch.tensor([0, 0]), "present": torch.tensor([True, True])}
    grads = {}
    for name, task in {"focal": category_task(["a", "b"], loss="focal", gamma=2.0), "plain": category_task(["a", "b"])}.items():
        logits.grad = None
        task.loss(logits, target).backward()
        grads[name] = logits.grad.norm(dim=1)
    assert grads["focal"][0] / grads["focal"][1] < 0.1 * grads["plain"][0] / grads["plain"][1]
    assert torch.isfinite(grads["focal"]).all()


def test_focal_with_small_gamma_has_a_finite_gradient_at_certainty():
    logits = torch.tensor([[200.0, 0.0]], requires_grad=True)
    task = category_task(["a", "b"], loss="focal", gamma=0.5)
    task.loss(logits, {"value": torch.tensor([0]), "present": torch.tensor([True])}).backward()
    assert torch.isfinite(logits.grad).all()


# ── the balanced sampler ─────────────────────────────────────────────────────────────────────────────

def test_balanced_order_visits_each_class_equally_often():
    labels = torch.tensor([0] * 50 + [1] * 7 + [2] * 3 + [-1] * 5)[torch.randperm(65, generator=torch.Generator().manual_seed(1))]
    order = balanced_order(labels, seed=3, epoch=0)
    assert len(order) == 65  # the epoch keeps its length
    visits = Counter(labels[order].tolist())
    assert visits == {0: 20, 1: 20, 2: 20, -1: 5}
    per_row = Counter(order.tolist())
    unlabelled = torch.nonzero(labels < 0).flatten().tolist()
    assert all(per_row[row] == 1 for row in unlabelled)  # rows without a label: once each
    rare = torch.nonzero(labels == 2).flatten().tolist()
    assert sorted(per_row[row] for row in rare) == [6, 7, 7]  # 20 visits over 3 rows, as evenly as possible
    middle = torch.nonzero(labels == 1).flatten().tolist()
    assert sorted(per_row[row] for row in middle) == [2, 3, 3, 3, 3, 3, 3]
    frequent = torch.nonzero(labels == 0).flatten().tolist()
    assert sum(per_row[row] == 1 for row in frequent) == 20 and max(per_row[row] for row in frequent) == 1
    assert torch.equal(order, balanced_order(labels, seed=3, epoch=0))  # (seed, epoch) fix the order
    assert not torch.equal(order, balanced_order(labels, seed=3, epoch=1))
    assert not torch.equal(order, balanced_order(labels, seed=4, epoch=0))
    chosen = [set(balanced_order(labels, 3, epoch).tolist()) & set(frequent) for epoch in range(4)]
    assert len({frozenset(c) for c in chosen}) == 4  # a different subsample of the frequent class each epoch


def test_balanced_order_spreads_the_remainder_over_classes():
    labels = torch.tensor([0] * 30 + [1] * 2 + [2] * 2)  # 34 places over 3 classes: 12, 11, 11 in some order
    counts = []
    for epoch in range(6):
        visits = Counter(labels[balanced_order(labels, 0, epoch)].tolist())
        assert sorted(visits.values()) == [11, 11, 12]
        counts.append(max(visits, key=visits.get))
    assert len(set(counts)) > 1  # the class with the extra visit is drawn, not always the first


def test_balanced_sampler_reads_the_first_category_or_binned_output():
    split = SimpleNamespace(targets={"n": {"value": torch.zeros(6), "present": torch.ones(6, dtype=torch.bool)},
                                     "b": {"value": torch.tensor([0, 0, 0, 0, 1, 1]), "present": torch.ones(6, dtype=torch.bool)},
                                     "c": {"value": torch.tensor([0, 1, 1, 1, 1, 1]), "present": torch.ones(6, dtype=torch.bool)}})
    tasks = {name: SimpleNamespace(spec=SimpleNamespace(type=kind)) for name, kind in [("n", "number"), ("b", "binned"), ("c", "category")]}
    config = validate({"data": {"table": "t.csv"}, "inputs": [{"name": "i", "type": "numeric", "column": "i"}],
                       "outputs": [{"name": "o", "type": "category", "column": "o"}],
                       "train": {"sampler": {"name": "balanced"}}}).train
    order = make_sampler(config.sampler, split, tasks, seed=0, batch_size=4)(0)
    assert Counter(split.targets["b"]["value"][order].tolist()) == {0: 3, 1: 3}
    order = make_sampler(config.sampler.model_copy(update={"output": "c"}), split, tasks, 0, 4)(0)
    assert Counter(split.targets["c"]["value"][order].tolist()) == {0: 3, 1: 3}
    with pytest.raises(PlaitError, match="'n' is not a category or binned output"):
        make_sampler(config.sampler.model_copy(update={"output": "n"}), split, tasks, 0, 4)


# ── end to end ───────────────────────────────────────────────────────────────────────────────────────

@pytest.fixture
def imbalanced(tmp_path):
    """A table whose `label` is about 85% `no`."""
    rows = tabular_rows(480)
    rows = rows[(rows["label"] == "no") | (rows.index % 6 == 0)]
    table = tmp_path / "imbalanced.csv"
    rows.to_csv(table, index=False)
    return table


def epoch_losses(run):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train.epoch_loss"] for r in records if "train.epoch_loss" in r]


def test_a_model_trains_with_focal_loss_on_an_imbalanced_table(imbalanced, tmp_path):
    runs = {}
    for loss in ("focal", "cross_entropy"):
        config = tabular_config(imbalanced, epochs=6)
        config["outputs"] = [{"name": "label", "type": "category", "column": "label", "loss": loss, "class_weights": "balanced"}]
        runs[loss] = api.train(validate(config), run_dir=tmp_path / loss)
    focal, plain = epoch_losses(runs["focal"]), epoch_losses(runs["cross_entropy"])
    assert len(focal) == 6 and focal[-1] < 0.7 * focal[0]
    assert focal[0] < 0.6 * plain[0]  # the focal factor at work: same start, a smaller loss
    resolved = yaml.safe_load((runs["focal"] / "config.yaml").read_text())
    assert resolved["outputs"][0]["loss"] == "focal" and resolved["outputs"][0]["gamma"] == 2.0


def test_a_balanced_run_interrupted_and_resumed_ends_with_the_same_weights(imbalanced, tmp_path, monkeypatch):
    config = tabular_config(imbalanced, epochs=3, checkpoint_every_steps=4, sampler={"name": "balanced"})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    epochs = []
    monkeypatch.setattr(sampler, "balanced_order", lambda labels, seed, epoch: epochs.append(epoch) or balanced_order(labels, seed, epoch))
    run_cli_here("train", path, "--run-dir", tmp_path / "whole")
    assert epochs == [0, 1, 2]  # the run drew its order from the balanced sampler

    save = Trainer.save

    def save_then_die(self, which):
        save(self, which)
        if which == "last" and self.progress.step == 16:  # in the second epoch, whose order differs from the first's
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        api.train(path, run_dir=tmp_path / "part")
    monkeypatch.setattr(Trainer, "save", save)
    state = torch.load(checkpoint_folder(tmp_path / "part" / "checkpoints" / "last") / "state.pt", weights_only=True)["progress"]
    assert state["epoch"] == 1 and state["batch_in_epoch"] > 0

    result = run_cli_here("train", "--resume", tmp_path / "part")
    assert result.returncode == 0, result.stderr
    whole, resumed = weights(tmp_path / "whole"), weights(tmp_path / "part")
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)


def test_evaluation_reports_the_loss_without_label_smoothing():
    from tests.test_binned import fitted

    prediction, target = logits_and_target()
    plain = F.cross_entropy(prediction[target["present"]], target["value"][target["present"]])
    smoothed = category_task(LABELS, label_smoothing=0.2)
    assert smoothed.loss(prediction, target).item() != pytest.approx(plain.item(), rel=1e-3)
    assert smoothed.evaluation_loss(prediction, target).item() == pytest.approx(plain.item(), rel=1e-6)
    binned = fitted(bins=3, label_smoothing=0.2)
    assert binned.loss(prediction, target).item() != pytest.approx(plain.item(), rel=1e-3)
    assert binned.evaluation_loss(prediction, target).item() == pytest.approx(plain.item(), rel=1e-6)
