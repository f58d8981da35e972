"""`plait compare`: two tiny runs that differ in learning rate and hidden width, compared through the API and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plait import api
from plait.report.compare import compare_metrics, compare_runs, higher_is_better, run_names
from plait.config import flatten, validate
from plait.errors import PlaitError
from plait.tasks.binned import BinnedTask
from plait.tasks.caption import CaptionTask
from plait.tasks.category import CategoryTask
from plait.tasks.embedding import EmbeddingTask
from plait.tasks.number import NumberTask
from plait.training.tracking import read_metrics
from tests.conftest import run_cli_here, tabular_config, tabular_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_run(table: Path, run_dir: Path, lr: float, hidden: list[int]) -> Path:
    config = tabular_config(table, epochs=2, optimizer={"lr": lr})
    config["fusion"]["hidden"] = hidden
    config["report"] = {"write": False}
    return api.train(validate(config), run_dir=run_dir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("compare")
    table = folder / "table.csv"
    tabular_rows(240).to_csv(table, index=False)
    with pytest.MonkeyPatch.context() as patch:  # the autouse private cache is per test; this fixture outlives one
        patch.setenv("PLAIT_CACHE_DIR", str(folder / "cache"))
        return [tiny_run(table, folder / "slow", 1e-3, [32]), tiny_run(table, folder / "fast", 5e-3, [16])]


@pytest.fixture(scope="module")
def compared(runs, tmp_path_factory) -> dict:
    return compare_runs(runs, output=tmp_path_factory.mktemp("plots"))


def test_config_differences_are_exactly_the_changed_keys(compared):
    differences = compared["config_differences"]
    assert differences == {"fusion.hidden": {"slow": [32], "fast": [16]},
                           "train.optimizer.lr": {"slow": 1e-3, "fast": 5e-3}}
    assert "data.table" not in differences and "inputs.note.encoder.dim" not in differences


def test_metrics_are_the_runs_final_test_metrics_with_the_best_marked(runs, compared):
    finals = {run.name: json.loads((run / "evaluation" / "test.json").read_text()) for run in runs}
    metrics = compared["metrics"]
    assert set(metrics) == set(finals["slow"]) | set(finals["fast"])
    for key, compared_metric in metrics.items():
        assert compared_metric["values"] == {name: final[key] for name, final in finals.items()}
    for key, pick in (("loss", min), ("label.accuracy", max), ("target.mae", min), ("target.r2", max)):
        best_value = pick(final[key] for final in finals.values())
        assert metrics[key]["best"] == [name for name, final in finals.items() if final[key] == best_value]
    assert [run["split"] for run in compared["runs"]] == ["test", "test"]


def test_best_is_the_lowest_loss_and_the_highest_accuracy():
    compared = compare_metrics({"a": {"loss": 0.5, "label.accuracy": 0.9, "similar.precision_at_1": 0.2, "note": "x"},
                                "b": {"loss": 0.3, "label.accuracy": 0.8, "similar.precision_at_1": 0.4}},
                               {"label": CategoryTask, "similar": EmbeddingTask})
    assert compared["loss"]["best"] == ["b"] and not compared["loss"]["higher_is_better"]
    assert compared["label.accuracy"]["best"] == ["a"] and compared["label.accuracy"]["higher_is_better"]
    assert compared["similar.precision_at_1"]["best"] == ["b"]
    assert compared["note"] == {"values": {"a": "x"}, "higher_is_better": False, "best": []}


def test_each_task_type_says_which_way_its_metrics_are_better():
    tasks = {"label": CategoryTask, "level": BinnedTask, "target": NumberTask, "similar": EmbeddingTask, "caption": CaptionTask}
    higher = ["label.accuracy", "label.macro_f1", "label.weighted_f1", "level.accuracy", "level.within_one", "target.r2",
              "target.spearman", "target.pearson", "validation.similar.precision_at_1", "similar.recall_at_5",
              "similar.vs_train.map_at_r", "test.caption.bleu4", "caption.cider"]
    lower = ["loss", "test.loss", "label.loss", "level.mae", "level.rmse", "target.mae", "target.rmse",
             "similar.loss", "caption.perplexity", "caption.loss", "note"]
    assert [key for key in higher if not higher_is_better(key, tasks)] == []
    assert [key for key in lower if higher_is_better(key, tasks)] == []


def test_run_summaries_come_from_the_metrics_history(runs, compared):
    for run, summary in zip(runs, compared["runs"]):
        history = read_metrics(run)
        assert summary["epochs"] == 2 and summary["monitor"] == "validation.loss"
        assert summary["best_monitored"] == min(r["validation.loss"] for r in history if "validation.loss" in r)
        assert summary["wall_time_s"] == pytest.approx(history[-1]["time"] - history[0]["time"], abs=1e-3)


def test_plots_are_written(compared):
    paths = [Path(path) for path in compared["plots"]]
    assert {path.name for path in paths} >= {"loss.png", "label.accuracy.png", "target.r2.png"}
    assert not any(path.name.endswith("loss.png") and path.name != "loss.png" for path in paths)
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000


def test_names_are_unique_and_lists_of_named_sections_are_keyed_by_name():
    assert run_names([Path("a/run"), Path("b/run"), Path("c/other")]) == ["a/run", "b/run", "other"]
    flat = flatten({"inputs": [{"name": "note", "encoder": {"dim": 8}}], "fusion": {"hidden": [32, 16]}})
    assert flat == {"inputs.note.name": "note", "inputs.note.encoder.dim": 8, "fusion.hidden": [32, 16]}


def test_a_missing_split_falls_back_to_validation_and_a_run_matches_itself(runs, capsys):
    from plait.cli.compare import print_config_differences

    compared = compare_runs([runs[0], runs[0]], split="train")
    first = f"{runs[0].resolve().parent.name}/slow"  # the same folder twice: the parent's name does not tell them apart
    assert [run["name"] for run in compared["runs"]] == [first, f"{first} (2)"]
    assert [run["split"] for run in compared["runs"]] == ["validation", "validation"]
    validation = json.loads((runs[0] / "evaluation" / "validation.json").read_text())
    assert compared["metrics"]["loss"]["values"] == {first: validation["loss"], f"{first} (2)": validation["loss"]}
    assert compared["config_differences"] == {} and compared["plots"] == []
    print_config_differences({}, ["slow", "slow (2)"])
    assert "settings are the same" in capsys.readouterr().out


def test_needs_two_run_folders(runs, tmp_path):
    with pytest.raises(PlaitError, match="at least two"):
        compare_runs(runs[:1])
    with pytest.raises(PlaitError, match="not a run folder"):
        compare_runs([runs[0], tmp_path])


def test_cli_prints_tables_json_and_a_one_line_error(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: no cell cut short
    printed = run_cli_here("compare", *runs, "--output", tmp_path / "plots").stdout
    assert "config differences" in printed and "train.optimizer.lr" in printed and "0.005" in printed
    assert "final metrics" in printed and "slow (test)" in printed and "label.accuracy" in printed
    assert (tmp_path / "plots" / "loss.png").is_file() and str(tmp_path / "plots") in printed
    parsed = json.loads(run_cli_here("compare", *runs, "--output", tmp_path / "plots", "--json").stdout)
    assert set(parsed) >= {"config_differences", "metrics", "runs"} and parsed["runs"][1]["name"] == "fast"
    failed = run_cli_here("compare", runs[0], tmp_path / "plots")
    assert failed.returncode == 1
    assert failed.stderr.strip() == f"error: {tmp_path / 'plots'}: not a run folder (no config.yaml)"
