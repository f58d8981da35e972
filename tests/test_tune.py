"""`plait tune`: the `tune:` space checked against the config, trials as run folders, the config's own values tried
first, pruning between epochs, the results, and a study resumed after its worker was killed (SQLite)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from plait import api
from plait.config import load_config, validate
from plait.runs import Run
from plait.tuning.study import open_study
from tests.browser import external_requests, find_chromium, render
from tests.conftest import run_cli_here, tabular_config, tabular_rows

SPACE = {"train.optimizer.lr": {"loguniform": [1.0e-4, 1.0e-1]}, "fusion.dropout": {"uniform": [0.0, 0.5]},
         "fusion.hidden": {"choice": [[32], [32, 16]]}}


def study_config(table: Path, epochs: int = 3, **tune) -> dict:
    config = tabular_config(table, epochs=epochs, monitor="validation.label.accuracy", optimizer={"name": "adam", "lr": 0.01})
    config["outputs"] = config["outputs"][:1]
    config.update(tracking=[], report={"write": False})
    config["tune"] = {"trials": 4, "sampler": "random", "startup_trials": 1, "space": SPACE, **tune}
    return config


@pytest.fixture
def table(tmp_path) -> Path:
    tabular_rows(240).to_csv(tmp_path / "table.csv", index=False)
    return tmp_path / "table.csv"


def write(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_wrong_path_or_value_in_the_space_is_named(table, tmp_path):
    config = study_config(table)
    config["tune"]["space"] = {"fusion.dropot": {"uniform": [0, 0.5]}, "inputs.nte.encoder.dim": {"int": [4, 16]},
                               "train.batch_size": {"int": [0, 8]}, "fusion.hidden": {"choice": [[16], "wide"]}}
    result = run_cli_here("validate", write(config, tmp_path / "c.yaml"))
    assert result.returncode == 1
    for line in ("tune.space.fusion.dropot: no key 'dropot' in fusion; did you mean fusion.dropout?",
                 "tune.space.inputs.nte.encoder.dim: no item named 'nte' in inputs; did you mean note?",
                 "tune.space.train.batch_size: with 0, train.batch_size: Input should be greater than or equal to 1",
                 "tune.space.fusion.hidden: with 'wide', fusion.hidden: Input should be a valid list"):
        assert line in result.stderr, result.stderr
    config["tune"]["space"] = {"train.epochs": {"normal": [1, 2]}}
    assert "expected one of {uniform: [low, high]}" in run_cli_here("validate", write(config, tmp_path / "d.yaml")).stderr
    config["tune"]["space"] = {"train.optimizer.lr": {"loguniform": [0, 1]}}
    assert "needs 0 < low < high" in run_cli_here("validate", write(config, tmp_path / "e.yaml")).stderr
    assert run_cli_here("validate", write(study_config(table), tmp_path / "f.yaml")).stdout.strip() == "OK"


def test_train_ignores_the_tune_section(table, tmp_path):
    run = api.train(validate(study_config(table, epochs=1)), run_dir=tmp_path / "run")
    assert load_config(run / "config.yaml").train.optimizer.lr == 0.01


def best_validation(run_dir: Path) -> float:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return max(record["validation.label.accuracy"] for record in records if "validation.label.accuracy" in record)


def test_a_study_trains_a_run_per_trial_starting_from_the_configs_own_values(table, tmp_path):
    study_dir = api.tune(validate(study_config(table)), tmp_path / "study")
    trials = pd.read_csv(study_dir / "trials.csv")
    assert len(trials) == 4 and set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    first = trials.iloc[0]  # the config's own lr and dropout; its hidden [32] is one of the choices too
    assert (first["param train.optimizer.lr"], first["param fusion.dropout"], first["param fusion.hidden"]) == (0.01, 0.1, "[32]")
    for _, trial in trials.iterrows():
        run = Run.load(trial["run_dir"])  # an ordinary run folder, trained with the trial's values
        assert run.config.train.optimizer.lr == pytest.approx(trial["param train.optimizer.lr"])
        assert run.config.fusion.dropout == pytest.approx(trial["param fusion.dropout"])
    completed = trials[trials["state"] == "COMPLETE"]
    best = completed.loc[completed["value"].idxmax()]
    assert best["value"] == pytest.approx(best_validation(Path(best["run_dir"])))  # the objective: the best validation
    assert first["state"] == "COMPLETE" and best["value"] >= first["value"]  # at least as good as the config as given
    best_config = load_config(study_dir / "best.yaml")
    assert best_config.train.optimizer.lr == pytest.approx(best["param train.optimizer.lr"]) and best_config.tune is None
    shown = run_cli_here("tune", "--show", study_dir)
    assert f"best: trial {int(best['number'])}" in shown.stdout and "COMPLETE" in shown.stdout


def test_a_trial_falling_behind_is_pruned_before_its_last_epoch(table, tmp_path):
    config = validate(study_config(table, epochs=4, trials=3, startup_trials=2))
    study = open_study(tmp_path / "study", config, None, None)
    for lr in (0.01, 0.02, 1.0e-4):  # two that learn, then one too slow to in 4 epochs
        study.enqueue_trial({"train.optimizer.lr": lr, "fusion.dropout": 0.1, "fusion.hidden": 0})
    (tmp_path / "study").mkdir(exist_ok=True)
    api.tune(config, tmp_path / "study")
    trials = pd.read_csv(tmp_path / "study" / "trials.csv")
    assert list(trials["state"]) == ["COMPLETE", "COMPLETE", "PRUNED"], trials
    assert trials.iloc[2]["epochs"] < 4  # it stopped early: fewer validations reported than epochs
    records = [json.loads(line) for line in (Path(trials.iloc[2]["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert max(record.get("epoch", 0) for record in records) < 4


def test_a_study_whose_worker_was_killed_resumes_and_makes_up_for_the_lost_trial(table, tmp_path):
    config = write(study_config(table, epochs=6, trials=3, pruner="none", stale_after="3s"), tmp_path / "c.yaml")
    study_dir = tmp_path / "study"
    worker = subprocess.Popen([sys.executable, "-m", "plait", "tune", str(config), "--study-dir", str(study_dir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (study_dir / "trial-0001" / "metrics.jsonl").is_file():  # killed in its second trial
        assert worker.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    time.sleep(4)  # past stale_after: the trial's heartbeat has stopped
    run_cli_here("tune", "--study-dir", study_dir)
    trials = pd.read_csv(study_dir / "trials.csv")
    assert list(trials["number"]) == [0, 1, 2, 3]
    assert list(trials["state"]) == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"], trials
    assert optuna.load_study(study_name="tabular", storage=f"sqlite:///{study_dir / 'study.db'}").best_trial.number in (0, 2, 3)


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (CI installs Debian's chromium)")
def test_the_study_page_opens_offline_and_sorts_its_trials(table, tmp_path):
    study_dir = api.tune(validate(study_config(table, trials=4, startup_trials=4)), tmp_path / "study")
    values = pd.read_csv(study_dir / "trials.csv").set_index("number")["value"]

    def sort_by_objective_ascending(tab) -> None:
        tab.evaluate("[...document.querySelectorAll('table.sortable th')].find(th => th.textContent === 'objective').click()")

    page = render(study_dir / "study.html", tmp_path / "study.png", act=sort_by_objective_ascending,
                  evaluate=["[...document.querySelectorAll('table.sortable tbody tr')].map(row => +row.cells[0].textContent)"])
    assert external_requests(page) == [] and page.console_errors == []
    assert page.headings[1:] == ["Best trial", "Optimisation history", "Parameter importance", "Trials"]
    assert [values[number] for number in page.values[0]] == sorted(values)  # lowest objective first after one click
    assert any(image["naturalWidth"] > 300 for image in page.images)  # the history plot
    assert "parameter" in page.text and "importance" in page.text


@pytest.mark.slow
def test_a_six_trial_study_of_the_demo_recipe_ends_at_least_as_good_as_the_recipe_itself(tmp_path):
    from plait.demo.synthetic import make_demo
    from tests.conftest import ROOT

    table = make_demo(tmp_path / "data", rows=300)
    overrides = [f"data.table={table}", "train.epochs=3", "train.checkpoint_every_steps=null", "report.write=false",
                 "tracking=[]", "tune.trials=6"]
    study_dir = api.tune(ROOT / "recipes" / "demo.yaml", tmp_path / "study", overrides)
    trials = pd.read_csv(study_dir / "trials.csv")
    recipe = load_config(ROOT / "recipes" / "demo.yaml")
    own = trials.iloc[0]  # the recipe's own values, trained as the recipe trains
    assert own["param train.optimizer.lr"] == recipe.train.optimizer.lr and own["param fusion.hidden"] == "[64]"
    assert own["state"] == "COMPLETE" and len(trials) == 6
    assert trials.loc[trials["state"] == "COMPLETE", "value"].max() >= own["value"]
    assert load_config(study_dir / "best.yaml").fusion.hidden in ([32], [64], [128, 64])


def test_a_grid_study_tries_every_combination_once_and_hyperband_can_be_its_pruner(table, tmp_path):
    config = study_config(table, epochs=2, trials=4, sampler="grid", pruner="hyperband")
    config["tune"]["space"] = {"fusion.hidden": {"choice": [[32], [32, 16]]}, "train.batch_size": {"int": [16, 32], "step": 16}}
    study_dir = api.tune(validate(config), tmp_path / "study")
    trials = pd.read_csv(study_dir / "trials.csv")
    combinations = sorted(zip(trials["param fusion.hidden"], trials["param train.batch_size"]))
    assert combinations == [("[32, 16]", 16), ("[32, 16]", 32), ("[32]", 16), ("[32]", 32)]
    assert isinstance(open_study(study_dir, validate(config), None, None).pruner, optuna.pruners.HyperbandPruner)


def test_opening_the_storage_is_retried_after_a_database_error_and_not_forever():
    from sqlalchemy.exc import IntegrityError

    from plait.tuning.study import retried

    calls = []

    def flaky(failures: int):
        def open_storage():
            calls.append(1)
            if len(calls) <= failures:
                raise IntegrityError("CREATE TABLE alembic_version", {}, Exception("duplicate key"))
            return "storage"
        return open_storage

    assert retried(flaky(2), attempts=3) == "storage" and len(calls) == 3
    calls.clear()
    with pytest.raises(IntegrityError):
        retried(flaky(5), attempts=2)
    assert len(calls) == 2


def test_a_worker_whose_trials_keep_failing_stops_and_says_why(table, tmp_path):
    config = study_config(tmp_path / "no-such-table.csv", trials=10)
    result = run_cli_here("tune", write(config, tmp_path / "c.yaml"), "--study-dir", tmp_path / "study")
    assert result.returncode == 1 and "3 trials in a row failed" in result.stderr and "no-such-table.csv" in result.stderr
    trials = pd.read_csv(tmp_path / "study" / "trials.csv")
    assert list(trials["state"]) == ["FAIL"] * 3 and trials["error"].str.contains("no-such-table.csv").all()
