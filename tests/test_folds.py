"""k-fold cross-validation: `plait train CONFIG --folds K [--stratify COL]` trains one run per fold under one folder
and writes folds.json (each metric's mean ± std); `plait report FOLDER` shows the folds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from plait import api
from plait.config import validate
from plait.data.places import RowPlaces
from plait.data.tables import Data
from plait.errors import PlaitError
from tests.conftest import run_cli_here, tabular_config, tabular_rows


@pytest.fixture(scope="module")
def cv(tmp_path_factory):
    """(folder, table) of a 3-fold cross-validation of the small tabular table (a `split` column), trained once
    through the CLI with --stratify."""
    root = tmp_path_factory.mktemp("folds")
    table = root / "table.csv"
    tabular_rows(150).to_csv(table, index=False)
    raw = tabular_config(table, epochs=1)
    raw["data"]["cache_dir"] = str(root / "cache")  # a module fixture: the autouse per-test cache is not set yet
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = run_cli_here("train", config, "--folds", "3", "--stratify", "label", "--run-dir", root / "cv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(str(root / "cv"))
    assert "3 folds: mean ± std" in result.stderr and "label.accuracy" in result.stderr
    return root / "cv", pd.read_csv(table)


def test_three_folds_write_three_runs_and_their_mean_and_std(cv):
    folder, _ = cv
    summary = json.loads((folder / "folds.json").read_text())
    assert [fold["folder"] for fold in summary["folds"]] == ["fold-1", "fold-2", "fold-3"]
    for fold in (1, 2, 3):
        run = folder / f"fold-{fold}"
        assert (run / "checkpoints/best/model.safetensors").is_file() and (run / "report.html").is_file()
        split = yaml.safe_load((run / "config.yaml").read_text())["data"]["split"]
        assert (split["folds"], split["fold"], split["stratify"]) == (3, fold, "label")
    for split in ("validation", "test"):
        per_fold = [json.loads((folder / f"fold-{fold}/evaluation/{split}.json").read_text()) for fold in (1, 2, 3)]
        assert {"loss", "label.accuracy", "target.rmse"} <= set(summary["metrics"][split])
        for key, entry in summary["metrics"][split].items():
            values = [metrics[key] for metrics in per_fold]
            assert entry["values"] == pytest.approx(values)
            assert entry["mean"] == pytest.approx(np.mean(values))
            assert entry["std"] == pytest.approx(np.std(values, ddof=1))
        assert [fold["metrics"][split] for fold in summary["folds"]] == per_fold


def test_every_row_outside_test_validates_in_exactly_one_fold_and_test_stays_the_same(cv):
    folder, table = cv
    summary = json.loads((folder / "folds.json").read_text())
    outside_test = set(np.flatnonzero(table["split"].to_numpy() != "test"))
    validated = [row for fold in summary["folds"] for row in fold["validation_rows"]]
    assert sorted(validated) == sorted(outside_test)  # each once: no repeats, none missing
    for fold in (1, 2, 3):
        splits = pd.read_csv(folder / f"fold-{fold}/splits.csv")
        assert (splits["split"] == "test").tolist() == (table["split"] == "test").tolist()
        assert set(splits.loc[splits["split"] == "validation", "row"]) == set(summary["folds"][fold - 1]["validation_rows"])
        assert summary["folds"][fold - 1]["rows"] == splits["split"].value_counts().reindex(
            ["train", "validation", "test"], fill_value=0).to_dict()


def test_a_fold_folder_reconstructs_its_split(cv):
    """`plait evaluate fold-2` reads the fold from its config.yaml: the same rows, so the same validation metrics."""
    folder, _ = cv
    summary = json.loads((folder / "folds.json").read_text())
    metrics = api.evaluate(folder / "fold-2", "validation")
    assert metrics == pytest.approx(summary["folds"][1]["metrics"]["validation"])


def test_report_of_the_folder_shows_each_fold_and_the_mean_and_std(cv):
    folder, _ = cv
    (folder / "folds.json").unlink()  # the report reads the folds again
    result = run_cli_here("report", folder)
    assert result.returncode == 0, result.stderr
    page = (folder / "report.html").read_text()
    summary = json.loads((folder / "folds.json").read_text())
    assert result.stdout.strip() == str(folder / "report.html")
    for fold in (1, 2, 3):
        assert f"fold {fold}</th>" in page and f'href="fold-{fold}/report.html"' in page
    accuracy = summary["metrics"]["validation"]["label.accuracy"]
    assert f"{accuracy['mean']:.4f} ± {accuracy['std']:.4f}" in page
    assert "Validation metrics over the folds" in page and "Test metrics over the folds" in page


# ── how the rows are divided (no training) ─────────────────────────────────────────────────────────
def divide(table: pd.DataFrame, folds: int, **split) -> list[pd.Series]:
    """The split of each row in each fold."""
    return [Data.of(table, validate({**tabular_config("t.csv"), "data": {"table": "t.csv", "split": {
        **split, "folds": folds, "fold": fold}}}).data.split, None, "t.csv", RowPlaces("t.csv")).split_of_row
        for fold in range(1, folds + 1)]


def imbalanced(rows: int = 120, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    table = tabular_rows(rows, seed)
    table["label"] = rng.choice(["a", "b", "c"], rows, p=[0.6, 0.3, 0.1])
    table["image_id"] = rng.integers(0, rows // 3, rows)
    return table


def test_stratify_keeps_each_folds_class_mix_within_one_row():
    table = imbalanced()
    pool = table["split"] != "test"
    totals = table.loc[pool, "label"].value_counts()
    for split_of_row in divide(table, 5, column="split", stratify="label"):
        counts = table.loc[split_of_row == "validation", "label"].value_counts().reindex(totals.index, fill_value=0)
        assert ((counts - totals / 5).abs() <= 1).all(), (counts.to_dict(), totals.to_dict())
    unstratified = divide(table, 5, column="split")  # the check above can tell: plain KFold misses the mix
    assert any(((table.loc[s == "validation", "label"].value_counts().reindex(totals.index, fill_value=0) - totals / 5).abs() > 1).any()
               for s in unstratified)


@pytest.mark.parametrize("stratify", [None, "label"])
def test_groups_stay_together_in_every_fold(stratify):
    table = imbalanced()
    table["label"] = table["image_id"].map(lambda group: "abc"[group % 3])  # one class per group
    # a `column` split checks groups against it, so divide by ratios: the test share is drawn first, by groups too
    folds = divide(table, 3, ratios=[0.7, 0.1, 0.2], seed=1, group="image_id", **({"stratify": stratify} if stratify else {}))
    validated = pd.Series(0, index=table.index)
    for split_of_row in folds:
        assert (pd.DataFrame({"group": table["image_id"], "split": split_of_row}).groupby("group")["split"].nunique() == 1).all()
        validated += split_of_row == "validation"
    assert set(validated[folds[0] != "test"]) == {1}


def test_ratios_hold_out_the_same_test_share_as_without_folds():
    table = tabular_rows(200)
    config = validate({**tabular_config("t.csv"), "data": {"table": "t.csv", "split": {"ratios": [0.6, 0.2, 0.2], "seed": 4}}})
    plain = Data.of(table, config.data.split, None, "t.csv", RowPlaces("t.csv")).split_of_row
    folds = divide(table, 4, ratios=[0.6, 0.2, 0.2], seed=4)
    for split_of_row in folds:
        assert ((split_of_row == "test") == (plain == "test")).all()
    validated = sum((split_of_row == "validation").astype(int) for split_of_row in folds)
    assert (validated[plain != "test"] == 1).all() and (validated[plain == "test"] == 0).all()


def test_refusals_name_what_to_do_instead(tabular):
    _, config = tabular
    result = run_cli_here("train", config, "--folds", "3", "--nproc", "2")
    assert result.returncode == 1 and "--nproc" in result.stderr and "data.split.fold=N" in result.stderr
    result = run_cli_here("train", "--resume", config.parent, "--folds", "3")
    assert result.returncode == 1 and "fold-N" in result.stderr
    result = run_cli_here("train", config, "--stratify", "label")
    assert result.returncode == 1 and "--folds" in result.stderr
    with pytest.raises(PlaitError, match="fold 4 needs folds of at least 4"):
        validate({**tabular_config("t.csv"), "data": {"table": "t.csv", "split": {"folds": 3, "fold": 4}}})
    with pytest.raises(PlaitError, match="only 2 rows"):
        divide(tabular_rows(4).assign(split=["train", "train", "test", "test"]), 3)
