"""Training end to end on a small tabular table, through the real API and CLI."""

import json

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from plait import api
from plait.config import validate
from plait.errors import PlaitError
from tests.conftest import run_cli, run_cli_here, tabular_config


def train_with(table, tmp_path, name="run", **train):
    return api.train(validate(tabular_config(table, **train)), run_dir=tmp_path / name)


def test_run_folder_holds_everything_described(tabular, tmp_path):
    table, config = tabular
    result = run_cli("train", config, "--run-dir", tmp_path / "run", "--set", "train.epochs=2")
    run = tmp_path / "run"
    assert result.stdout.strip().endswith(str(run))
    for path in ["config.yaml", "metrics.jsonl", "checkpoints/best/model.safetensors", "checkpoints/best/state.pt",
                 "checkpoints/last/preprocessing.json", "plots/loss.png", "plots/label.accuracy.png",
                 "plots/confusion_label.png", "evaluation/test.json", "evaluation/validation.json"]:
        assert (run / path).is_file(), path
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 2  # resolved, overrides applied
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"validation.label.accuracy", "validation.target.rmse"} <= set().union(*records)
    assert "parameters" in result.stderr and "encoder note" in result.stderr
    torch.load(run / "checkpoints/last/state.pt", weights_only=True)  # no arbitrary pickle
    splits = pd.read_csv(run / "splits.csv")  # which row went where, and where to find it
    written = pd.read_csv(table)
    assert splits["row"].tolist() == list(range(len(written))) and set(splits["file"]) == {str(table)}
    assert splits["place"].tolist() == [f"line {row + 2}" for row in range(len(written))]  # line 1 is the header
    assert splits["split"].tolist() == written["split"].tolist()


def test_evaluate_json_and_predict_in_user_values(tabular, tmp_path):
    table, config = tabular
    run = tmp_path / "run"
    run_cli("train", config, "--run-dir", run, "--set", "train.epochs=2")
    metrics = json.loads(run_cli("evaluate", run, "--split", "test", "--json").stdout)
    assert 0 <= metrics["label.accuracy"] <= 1 and {"target.mae", "target.r2", "target.spearman", "label.weighted_f1"} <= set(metrics)
    floors = json.loads(run_cli_here("evaluate", run, "--split", "test", "--json", "--baseline", "--untrained").stdout)
    assert floors["trained"] == metrics  # the same split, the same weights
    rows = pd.read_csv(table)
    most_frequent = rows.query("split == 'train'")["label"].mode()[0]  # the baseline's one answer
    assert floors["baseline"]["label.accuracy"] == pytest.approx((rows.query("split == 'test'")["label"] == most_frequent).mean())
    assert floors["untrained"].keys() == metrics.keys()
    assert floors["untrained"]["loss"] != metrics["loss"]
    assert floors["shuffled_inputs"].keys() == metrics.keys() and floors["shuffled_inputs"]["loss"] != metrics["loss"]
    table_out = run_cli_here("evaluate", run, "--baseline").stdout
    assert "trained" in table_out and "baseline" in table_out and "untrained" not in table_out
    rows = pd.read_csv(table).drop(columns=["label", "target"]).head(20)
    rows.to_csv(tmp_path / "new.csv", index=False)
    run_cli("predict", run, "--input", tmp_path / "new.csv", "--output", tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 20 and set(out["label_pred"]) <= {"yes", "no"}
    assert (out["label_prob_yes"] + out["label_prob_no"]).round(5).eq(1).all()
    assert out["target_pred"].abs().max() < 20  # original units, not standardised


def test_training_learns_the_fused_rule(tabular, tmp_path):
    table, _ = tabular
    run = train_with(table, tmp_path, epochs=12, optimizer={"lr": 0.01})
    assert api.evaluate(run, "validation")["label.accuracy"] >= 0.85


@pytest.mark.parametrize("scheduler", [{"name": "step", "step_size": 1, "gamma": 0.5}, {"name": "plateau"}, {"name": "onecycle"},
                                       {"name": "linear_warmup", "warmup_steps": 3}, {"name": "cosine", "warmup_steps": 3}])
def test_each_scheduler_trains_and_moves_the_rate(tabular, tmp_path, scheduler):
    table, _ = tabular
    run = train_with(table, tmp_path, epochs=2, scheduler=scheduler, log_every_steps=1, optimizer={"name": "sgd", "lr": 0.1})
    rates = [r["lr"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "lr" in r]
    if scheduler["name"] == "plateau":
        assert rates[0] == pytest.approx(0.1)
    else:
        assert len(set(rates)) > 1


def test_gradient_accumulation_equals_one_big_batch(tabular, tmp_path):
    table, _ = tabular
    config = tabular_config(table, epochs=1, batch_size=32)
    config["fusion"]["dropout"] = 0.0
    big = api.train(validate(config), run_dir=tmp_path / "big")
    config["train"].update(batch_size=16, grad_accum_steps=2)
    small = api.train(validate(config), run_dir=tmp_path / "small")
    a, b = load_file(big / "checkpoints/last/model.safetensors"), load_file(small / "checkpoints/last/model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_early_stopping_stops_when_the_monitor_stalls(tabular, tmp_path):
    table, _ = tabular
    run = train_with(table, tmp_path, epochs=20, optimizer={"lr": 1e-9}, early_stopping_patience=2, monitor="validation.label.accuracy")
    state = torch.load(run / "checkpoints/last/state.pt", weights_only=True)
    assert state["progress"]["stopped_early"] and state["progress"]["epoch"] == 3


def test_unknown_monitor_is_a_clear_error(tabular, tmp_path):
    table, _ = tabular
    with pytest.raises(PlaitError, match="train.monitor"):
        train_with(table, tmp_path, monitor="validation.nothing.accuracy")


def test_frozen_encoder_is_counted_as_frozen_and_never_changes(tabular, tmp_path):
    from plait.models.model import parameter_table
    from plait.runs import Run

    table, _ = tabular
    config = tabular_config(table, epochs=2)
    config["inputs"][1]["encoder"] = {"name": "embedding", "dim": 4, "freeze": True}
    run = api.train(validate(config), run_dir=tmp_path / "run")
    rows = {row[0]: row[1:] for row in parameter_table(Run.load(run).model)}
    assert rows["encoder colour"] == [0, 4 * 4]  # 3 colours + the unknown bucket, 4 dims each
    assert rows["encoder x"][0] > 0 and rows["encoder x"][1] == 0
    torch.manual_seed(0)  # the same seed the run used: the embedding's initial weights are rebuilt
    from plait.data.dataset import Preprocessor
    from plait.models.model import MultimodalModel

    trained = load_file(run / "checkpoints/last/model.safetensors")["encoders.colour.embedding.weight"]
    preprocessor = Preprocessor(validate(config), ".")
    preprocessor.load_state_dict(json.loads((run / "checkpoints/last/preprocessing.json").read_text()))
    initial = MultimodalModel(validate(config), preprocessor.features, preprocessor.tasks).state_dict()["encoders.colour.embedding.weight"]
    assert torch.equal(trained, initial)


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_trains_from_jsonl_and_parquet_tables(tmp_path, suffix):
    from tests.conftest import tabular_rows

    frame = tabular_rows(160)
    table = tmp_path / f"table.{suffix}"
    frame.to_json(table, orient="records", lines=True) if suffix == "jsonl" else frame.to_parquet(table)
    run = api.train(validate(tabular_config(table, epochs=1)), run_dir=tmp_path / "run")
    metrics = json.loads((run / "evaluation" / "test.json").read_text())
    assert "label.accuracy" in metrics and "target.rmse" in metrics
