"""Several `plait tune` workers sharing one study in a real PostgreSQL (Debian's package, started on a loopback port
in a temporary folder, stopped by its PID): every trial is run once, and a worker killed mid-trial leaves a FAIL
that the other makes up for."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from tests.postgres import Postgres, postgres_bin
from tests.test_tune import study_config, write

pytestmark = [pytest.mark.slow, pytest.mark.skipif(postgres_bin() is None, reason="needs PostgreSQL (CI installs Debian's postgresql)")]


@pytest.fixture
def server():
    with Postgres() as running:
        yield running


def worker(config: Path, study_dir: Path, storage: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "plait", "tune", str(config), "--study-dir", str(study_dir),
                             "--storage", storage], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def trial_folders(*study_dirs: Path) -> list[str]:
    return sorted(path.name for folder in study_dirs for path in folder.glob("trial-*"))


def test_two_workers_share_one_study_and_run_every_trial_once(server, tmp_path):
    from tests.conftest import tabular_rows

    tabular_rows(240).to_csv(tmp_path / "table.csv", index=False)
    config = write(study_config(tmp_path / "table.csv", epochs=2, trials=6, pruner="none"), tmp_path / "c.yaml")
    workers = [worker(config, tmp_path / f"machine-{name}", server.url) for name in "ab"]
    for process in workers:
        _, errors = process.communicate(timeout=600)
        assert process.returncode == 0, errors
    study = optuna.load_study(study_name="tabular", storage=server.url)
    numbers = [trial.number for trial in study.trials]
    assert numbers == list(range(len(numbers))) and len(numbers) >= 6  # each number once (a last one may overlap the end)
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.trials)
    runs = [Path(trial.user_attrs["run_dir"]) for trial in study.trials]
    assert {run.parent.name for run in runs} == {"machine-a", "machine-b"}  # both workers took trials
    assert trial_folders(tmp_path / "machine-a", tmp_path / "machine-b") == sorted(run.name for run in runs)


def test_a_worker_killed_mid_trial_leaves_a_failed_trial_and_the_other_finishes_the_study(server, tmp_path):
    from tests.conftest import tabular_rows

    tabular_rows(240).to_csv(tmp_path / "table.csv", index=False)
    config = write(study_config(tmp_path / "table.csv", epochs=8, trials=4, pruner="none", stale_after="3s"), tmp_path / "c.yaml")
    doomed, survivor = (worker(config, tmp_path / f"machine-{name}", server.url) for name in "ab")
    deadline = time.monotonic() + 300
    while not list((tmp_path / "machine-a").glob("trial-*/metrics.jsonl")):  # killed in its first trial
        assert doomed.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    _, errors = survivor.communicate(timeout=600)  # it marks the killed trial FAIL once its heartbeat is stale_after old
    assert survivor.returncode == 0, errors
    states = [trial.state.name for trial in optuna.load_study(study_name="tabular", storage=server.url).trials]
    assert states.count("FAIL") == 1 and states.count("COMPLETE") == 4, states
    assert yaml.safe_load((tmp_path / "machine-b" / "best.yaml").read_text())["name"] == "tabular"


def test_workers_starting_together_on_an_empty_database_all_open_the_study(server, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from plait.config import validate
    from plait.tuning.study import open_study

    config = validate(study_config(tmp_path / "table.csv"))
    with ThreadPoolExecutor(6) as pool:  # each creates Optuna's tables if it finds none: they race
        studies = list(pool.map(lambda n: open_study(tmp_path / f"machine-{n}", config, server.url, "race"), range(6)))
    assert {study._study_id for study in studies} == {studies[0]._study_id}
