"""The embedding output: every loss and miner learns, the m-per-class sampler, and a run trained, indexed, searched
and embedded end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from plait import api
from plait.config import validate
from plait.errors import PlaitError
from plait.inference.retrieval import build_index, embed_file, search
from plait.registry import TASKS
from plait.training.sampler import epoch_order, m_per_class_order
from tests.conftest import run_cli, tabular_config


def clustered(rows: int = 48, classes: int = 4, width: int = 6, seed: int = 0):
    """Rows near one of `classes` random centres, and their class ids."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, width, generator=generator) * 2
    labels = torch.arange(rows) % classes
    return centres[labels] + 0.5 * torch.randn(rows, width, generator=generator), labels


def embedding_task(**settings):
    spec = validate({"data": {"table": "t.csv"}, "inputs": [{"name": "x", "type": "numeric", "column": "x"}],
                     "outputs": [{"name": "similar", "type": "embedding", "column": "label", "dim": 8, **settings}]}).outputs[0]
    task = TASKS["embedding"](spec)
    task.fit(["a", "b", "c", "d"])
    return task


def train_steps(task, steps: int = 40) -> tuple[float, float]:
    """(loss before, loss after) `steps` Adam steps of a head (and the loss's own weights) on clustered rows."""
    torch.manual_seed(0)
    features, labels = clustered()
    head, criterion = task.build_head(features.shape[1], {}), task.build_criterion()
    optimizer = torch.optim.Adam([*head.parameters(), *criterion.parameters()], lr=0.01)
    target = {"value": labels, "present": torch.ones(len(labels), dtype=torch.bool)}
    losses = []
    for _ in range(steps):
        loss = task.loss(head(features), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses[0], losses[-1]


@pytest.mark.parametrize("loss", ["triplet_margin", "contrastive", "multi_similarity", "arcface", "ntxent"])
def test_each_loss_learns(loss):
    before, after = train_steps(embedding_task(loss={"name": loss}))
    assert np.isfinite(after) and after < 0.8 * before


@pytest.mark.parametrize("loss, miner", [("triplet_margin", "batch_hard"), ("multi_similarity", "multi_similarity"),
                                         ("contrastive", "multi_similarity")])
def test_each_miner_learns(loss, miner):
    task = embedding_task(loss={"name": loss}, miner={"name": miner})
    before, after = train_steps(task)
    assert task.miner is not None and np.isfinite(after) and after < before


def test_wrong_loss_option_names_the_accepted_ones():
    with pytest.raises(PlaitError, match="margin"):
        embedding_task(loss={"name": "triplet_margin", "options": {"margn": 0.1}}).build_criterion()


def test_embeddings_are_unit_length_and_arcface_weights_are_model_parameters(tabular):
    task = embedding_task(loss={"name": "arcface"})
    head, criterion = task.build_head(5, {}), task.build_criterion()
    assert torch.allclose(head(torch.randn(7, 5)).norm(dim=-1), torch.ones(7), atol=1e-5)
    assert sum(p.numel() for p in criterion.parameters()) == 8 * 4  # a weight vector per class


def test_m_per_class_groups_rows_of_one_class_and_visits_each_row_once():
    labels = torch.tensor([0] * 9 + [1] * 8 + [2] * 3 + [-1] * 2)
    order = m_per_class_order(labels, 4, seed=3, epoch=1)
    assert sorted(order.tolist()) == list(range(len(labels)))
    full_groups = (9 // 4) + (8 // 4)
    for group in order[:4 * full_groups].view(-1, 4):
        assert len(set(labels[group].tolist())) == 1 and labels[group][0] >= 0
    assert torch.equal(order, m_per_class_order(labels, 4, seed=3, epoch=1))  # (seed, epoch) fix the order
    assert not torch.equal(order, m_per_class_order(labels, 4, seed=3, epoch=2))
    assert sorted(epoch_order(10, 0, 0).tolist()) == list(range(10))


def embedding_config(table, **outputs) -> dict:
    config = tabular_config(table, epochs=6, sampler={"name": "m_per_class", "m": 4})
    config["outputs"] = [{"name": "similar", "type": "embedding", "column": "label", "dim": 8, "gallery": "train",
                          "map": "pca", "loss": {"name": "triplet_margin", "options": {"margin": 0.2}}, **outputs}]
    config["train"]["monitor"] = "validation.similar.precision_at_1"
    return config


def test_m_per_class_needs_a_batch_size_it_divides(tabular, tmp_path):
    table, _ = tabular
    config = embedding_config(table)
    config["train"]["sampler"]["m"] = 5
    with pytest.raises(PlaitError, match="multiple of m"):
        api.train(validate(config), run_dir=tmp_path / "run")


@pytest.fixture(scope="module")
def embedding_run(tmp_path_factory):
    from tests.conftest import tabular_rows

    folder = tmp_path_factory.mktemp("embedding")
    table = folder / "table.csv"
    tabular_rows(240).to_csv(table, index=False)
    run_dir = api.train(validate(embedding_config(table)), run_dir=folder / "run")
    return table, run_dir


def test_trained_embeddings_retrieve_their_class(embedding_run):
    table, run_dir = embedding_run
    test = json.loads((run_dir / "evaluation" / "test.json").read_text())
    for key in ("similar.precision_at_1", "similar.recall_at_5", "similar.map_at_r", "similar.vs_train.precision_at_1"):
        assert key in test
    assert test["similar.vs_train.precision_at_1"] > 0.75  # two classes: chance is about 0.5
    assert (run_dir / "plots" / "embeddings_test.png").stat().st_size > 1000
    assert api.evaluate(run_dir, "test")["similar.vs_train.map_at_r"] == pytest.approx(test["similar.vs_train.map_at_r"])


def test_the_report_shows_the_map_and_each_samples_nearest_training_rows(embedding_run):
    import re

    from tests.test_report import section

    _, run_dir = embedding_run
    assert "embedding map (test)" in section(run_dir, "outputs")
    gallery = section(run_dir, "samples")
    assert gallery.count("nearest in train") == 12  # report.samples rows, each searched among the training rows
    for cell in gallery.split("nearest in train")[1:]:
        neighbours = cell.split("</td>")[0]
        scores = [float(score) for score in re.findall(r"<br>(-?[0-9.]+)</div>", neighbours)]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)  # report.neighbours, nearest first


def test_index_search_returns_the_row_itself_first(embedding_run, tmp_path):
    table, run_dir = embedding_run
    path = build_index(run_dir, "train", kind="flat")
    assert path.is_file() and path.name == "similar_train.faiss"
    rows = pd.read_csv(table)
    train_rows = np.flatnonzero(rows["split"] == "train")[:5]
    queries = tmp_path / "queries.csv"
    rows.iloc[train_rows].to_csv(queries, index=False)
    found = search(run_dir, str(queries), k=3)
    first = found[found["rank"] == 1]
    assert first["row"].tolist() == train_rows.tolist()  # each query's nearest indexed row is itself
    assert np.allclose(first["score"], 1.0, atol=1e-4)
    assert (found.groupby("query").size() == 3).all()
    assert set(found["label"]) <= {"yes", "no"} and "note" in found.columns


def test_embed_exports_every_vector(embedding_run, tmp_path):
    table, run_dir = embedding_run
    out = tmp_path / "features.parquet"
    result = embed_file(run_dir, str(table), str(out))
    saved = pd.read_parquet(out)
    assert list(saved.columns) == ["row", "x", "colour", "note", "fused", "similar"] and len(saved) == len(result) == 240
    assert len(saved["note"].iloc[0]) == 8 and len(saved["fused"].iloc[0]) == 32
    assert np.allclose(np.linalg.norm(np.stack(saved["similar"]), axis=1), 1.0, atol=1e-5)
    with pytest.raises(PlaitError, match="choose among"):
        embed_file(run_dir, str(table), str(out), only=["photo"])


def test_cli_index_search_and_embed(embedding_run, tmp_path):
    table, run_dir = embedding_run
    run_cli("index", run_dir, "--split", "train", "--kind", "ivf", "--nlist", "2", "--nprobe", "2")
    found = run_cli("search", run_dir, "--input", table, "--k", "2").stdout
    assert "rank" in found and "score" in found
    run_cli("embed", run_dir, "--input", table, "--output", tmp_path / "f.csv", "--only", "similar")
    assert [c for c in pd.read_csv(tmp_path / "f.csv").columns] == ["row"] + [f"similar_{i}" for i in range(8)]


def test_retrieval_metrics_are_maximised_when_monitored():
    from plait.tasks.embedding import EmbeddingTask
    from plait.training.trainer import resolve_monitor

    tasks = {"similar": EmbeddingTask}
    for metric in ("precision_at_1", "recall_at_5", "map_at_r"):
        assert resolve_monitor(f"validation.similar.{metric}", "auto", tasks, True)[1] == "max"
    assert resolve_monitor("validation.similar.loss", "auto", tasks, True)[1] == "min"
