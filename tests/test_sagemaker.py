"""The SageMaker entry point run on this machine with the SM_* variables a training job sets, and the job
definition `plait sagemaker` builds (without AWS, without the SDK)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from plait.cli import app
from plait.config import load_config
from plait.errors import PlaitError
from plait.sagemaker import (ENTRY_POINT, channel_folder, channel_table, hyperparameters, job_definition,
                             sagemaker_overrides, sagemaker_run_dir, train_in_sagemaker)
from plait.training.tracking import read_metrics
from tests.conftest import run_cli, tabular_config, tabular_rows


@pytest.fixture
def job(tmp_path) -> dict:
    """A config whose data.table (data/table.csv) exists only in the channel folder, and a job's folders."""
    channel = tmp_path / "input" / "data" / "train"
    channel.mkdir(parents=True)
    tabular_rows(240).to_csv(channel / "table.csv", index=False)
    config = tmp_path / "code" / "config.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(tabular_config(Path("data/table.csv"), epochs=3)))
    env = {"SM_CHANNEL_TRAIN": str(channel), "SM_MODEL_DIR": str(tmp_path / "model"),
           "SM_OUTPUT_DATA_DIR": str(tmp_path / "output" / "data"), "SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-1"}
    (tmp_path / "model").mkdir()
    return {"config": config, "channel": channel, "env": env, "root": tmp_path}


def test_entry_point_trains_from_the_channel_and_hyperparameters_and_writes_the_model(job):
    """What SageMaker runs: the entry script `plait sagemaker` uploads, with the hyperparameters appended as arguments."""
    code = job["config"].parent
    definition = job_definition(job["config"], "arn:aws:iam::1:role/r", "ml.m5.large", inputs={"train": "s3://b/data/"})
    for name, text in definition["source_files"].items():
        (code / name).write_text(text)
    env = {**os.environ, **job["env"], "TMPDIR": str(job["root"]), "PYTHONUNBUFFERED": "1",
           "SM_HPS": json.dumps({"train.epochs": "1", "train.optimizer.name": "\"sgd\"", "sagemaker_program": ENTRY_POINT})}
    result = subprocess.run([sys.executable, ENTRY_POINT, "--train.epochs", "1"], cwd=code, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    model = Path(job["env"]["SM_MODEL_DIR"])
    assert (model / "model.safetensors").is_file() and (model / "config.yaml").is_file()

    from plait.runs import Run

    run = Run.load(model)
    assert run.config.train.epochs == 1 and run.config.train.optimizer.name == "sgd"
    assert run.config.data.table == str(job["channel"] / "table.csv")
    outputs = Path(job["env"]["SM_OUTPUT_DATA_DIR"])
    assert {"config.yaml", "metrics.jsonl", "report.html", "evaluation", "plots"} <= {path.name for path in outputs.iterdir()}
    assert (outputs / "evaluation" / "test.json").is_file()
    assert max(record["epoch"] for record in read_metrics(outputs)) == 1
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    assert run_dir.parent == job["root"]  # no /opt/ml/checkpoints here: a temporary run folder


def test_a_job_restarted_with_its_checkpoints_resumes(job, tmp_path, capsys):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    file = tmp_path / "hyperparameters.json"  # no SM_HPS: the file, every value JSON-encoded
    file.write_text(json.dumps({"train.epochs": "1", "sagemaker_region": "\"eu-west-1\""}))
    first = train_in_sagemaker(job["config"], [], job["env"], checkpoint_root=checkpoints, file=file)
    assert first == checkpoints / "tabular"
    steps_per_epoch = max(record["step"] for record in read_metrics(first))
    assert sagemaker_run_dir(job["env"], "tabular", checkpoints) == (first, True)

    capsys.readouterr()
    more = {**job["env"], "SM_HPS": json.dumps({"train.epochs": 2})}
    (Path(job["env"]["SM_MODEL_DIR"]) / "model.safetensors").unlink()
    assert train_in_sagemaker(job["config"], [], more, checkpoint_root=checkpoints, file=file) == first
    log = capsys.readouterr().err
    assert "resuming" in log and "epoch 1/2" not in log  # epoch 1 came from the checkpoint, not trained again
    epochs = [record["epoch"] for record in read_metrics(first) if "train.epoch_loss" in record]
    assert epochs == [1, 2]
    assert max(record["step"] for record in read_metrics(first)) == 2 * steps_per_epoch
    assert load_config(first / "config.yaml").train.epochs == 2
    assert (Path(job["env"]["SM_MODEL_DIR"]) / "model.safetensors").is_file()

    changed = {**job["env"], "SM_HPS": json.dumps({"train.epochs": 3, "fusion.dropout": 0.3})}
    with pytest.raises(PlaitError, match="other fusion settings"):
        train_in_sagemaker(job["config"], [], changed, checkpoint_root=checkpoints, file=file)


def test_hyperparameters_are_decoded_and_sagemaker_keys_dropped(job, tmp_path):
    file = tmp_path / "hyperparameters.json"
    file.write_text(json.dumps({"train.epochs": "4", "train.optimizer.name": "\"sgd\"", "train.optimizer.lr": "0.05",
                                "fusion.hidden": "[8, 4]", "name": "plain", "sagemaker_program": "\"plait_entry.py\"",
                                "sagemaker_submit_directory": "\"s3://b/code.tar.gz\""}))
    assert hyperparameters({}, file) == {"train.epochs": 4, "train.optimizer.name": "sgd", "train.optimizer.lr": 0.05,
                                         "fusion.hidden": [8, 4], "name": "plain"}
    config = load_config(job["config"], sagemaker_overrides({}, job["config"], file))
    assert (config.train.epochs, config.train.optimizer.name, config.train.optimizer.lr) == (4, "sgd", 0.05)
    assert (config.fusion.hidden, config.name) == ([8, 4], "plain")

    decoded = {"SM_HPS": json.dumps({"train.optimizer.lr": 1e-05, "train.grad_clip": "2.5", "train.epochs": 2})}
    config = load_config(job["config"], sagemaker_overrides(decoded, job["config"], file))  # SM_HPS wins over the file
    assert (config.train.optimizer.lr, config.train.grad_clip, config.train.epochs, config.name) == (1e-05, 2.5, 2, "tabular")


def test_the_channel_becomes_data_table_unless_a_hyperparameter_names_one(job, tmp_path):
    channel = job["channel"]
    assert channel_table(channel, "data/table.csv") == channel / "table.csv"
    assert channel_table(channel, "s3://bucket/other.csv") == channel / "table.csv"  # the channel's only file
    assert channel_table(channel, "s3://bucket/meld/") == channel  # a folder table: the channel itself
    (channel / "more.csv").write_text("x\n1\n")
    with pytest.raises(PlaitError, match="no such file"):
        channel_table(channel, "other.csv")

    assert channel_folder({"SM_CHANNEL_SPECTRA": "/d/spectra"}) == Path("/d/spectra")  # the only channel
    assert channel_folder({"SM_CHANNEL_TRAIN": "/d/t", "SM_CHANNEL_MEDIA": "/d/m"}) == Path("/d/t")
    with pytest.raises(PlaitError, match="media, spectra"):
        channel_folder({"SM_CHANNEL_SPECTRA": "/d/s", "SM_CHANNEL_MEDIA": "/d/m"})

    env = {"SM_CHANNEL_TRAIN": str(channel), "SM_HPS": json.dumps({"data.table": "/elsewhere/rows.csv"})}
    assert load_config(job["config"], sagemaker_overrides(env, job["config"])).data.table == "/elsewhere/rows.csv"
    without = sagemaker_overrides({"SM_CHANNEL_TRAIN": str(channel)}, job["config"])
    assert load_config(job["config"], without).data.table == str(channel / "table.csv")


def test_dry_run_prints_the_job_definition(job):
    result = run_cli("sagemaker", job["config"], "--role", "arn:aws:iam::1:role/r", "--instance-type", "ml.g5.xlarge",
                     "--instance-count", "2", "--output", "s3://bucket/jobs/", "--input", "train=s3://bucket/data/",
                     "--spot", "--set", "train.epochs=3", "--set", "train.optimizer.name=sgd", "--dry-run")
    definition = json.loads(result.stdout)
    estimator = definition["estimator"]
    assert (estimator["role"], estimator["instance_type"], estimator["instance_count"]) == ("arn:aws:iam::1:role/r", "ml.g5.xlarge", 2)
    assert estimator["hyperparameters"] == {"train.epochs": 3, "train.optimizer.name": "sgd"}
    assert estimator["use_spot_instances"] is True and estimator["max_wait"] >= estimator["max_run"]
    assert estimator["checkpoint_s3_uri"] == f"s3://bucket/jobs/{definition['job_name']}/checkpoints"
    assert estimator["output_path"] == "s3://bucket/jobs" and estimator["framework_version"].startswith("2.")
    assert definition["job_name"].startswith("tabular-") and definition["inputs"] == {"train": "s3://bucket/data/"}
    assert estimator["entry_point"] == ENTRY_POINT and "plait train" in definition["source_files"][ENTRY_POINT]
    assert yaml.safe_load(definition["source_files"]["config.yaml"])["data"]["table"] == "data/table.csv"


def test_job_definition_refuses_what_cannot_run(job):
    with pytest.raises(PlaitError, match="--spot needs --output"):
        job_definition(job["config"], "r", "ml.g5.xlarge", inputs={"train": "s3://b/d/"}, spot=True)
    with pytest.raises(PlaitError, match="is local"):
        job_definition(job["config"], "r", "ml.g5.xlarge")
    with pytest.raises(PlaitError, match="train.epochs"):
        job_definition(job["config"], "r", "ml.g5.xlarge", inputs={"train": "s3://b/d/"}, overrides=["train.epochs=0"])


def test_launching_without_the_sdk_says_how_to_install_it(job, monkeypatch):
    monkeypatch.setitem(sys.modules, "sagemaker", None)  # `import sagemaker` now fails, installed or not
    result = CliRunner().invoke(app, ["sagemaker", str(job["config"]), "--role", "r", "--instance-type", "ml.g5.xlarge",
                                      "--input", "train=s3://b/d/"])
    assert isinstance(result.exception, PlaitError)
    assert "pip install sagemaker" in str(result.exception)
