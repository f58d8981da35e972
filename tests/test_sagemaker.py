"""The SageMaker entry point run on this machine with the SM_* variables a training job sets, and the job
definition `plait sagemaker train` builds, its source folder holding plait's wheel (without AWS, without the SDK)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from importlib import metadata
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
from plait.wheel import plait_wheel
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
    """What SageMaker runs: the entry script `plait sagemaker train` uploads, with the hyperparameters appended as arguments."""
    code = job["config"].parent
    definition = job_definition(job["config"], "arn:aws:iam::1:role/r", "ml.m5.large", code, inputs={"train": "s3://b/data/"})
    assert definition["source_dir"] == str(code)
    wheel = next(code.glob("plait-*-py3-none-any.whl"))  # the job installs the plait that launched it, from this file
    assert (code / "requirements.txt").read_text() == f"./{wheel.name}\n"
    assert sorted(definition["source_files"]) == sorted([ENTRY_POINT, "config.yaml", "requirements.txt", wheel.name])
    env = {**os.environ, **job["env"], "TMPDIR": str(job["root"]), "PYTHONUNBUFFERED": "1",
           "SM_HPS": json.dumps({"train.epochs": "1", "train.optimizer.name": "\"sgd\"", "sagemaker_program": ENTRY_POINT})}
    result = subprocess.run([sys.executable, ENTRY_POINT, "--train.epochs", "1"], cwd=code, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    model = Path(job["env"]["SM_MODEL_DIR"])
    assert (model / "model.safetensors").is_file() and (model / "config.yaml").is_file()
    assert {"inference.py", "requirements.txt", wheel.name} <= {path.name for path in (model / "code").iterdir()}

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


def test_dry_run_prints_the_job_definition_and_keeps_its_source_folder(job, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    result = run_cli("sagemaker", "train", job["config"], "--role", "arn:aws:iam::1:role/r", "--instance-type", "ml.g5.xlarge",
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
    source = Path(definition["source_dir"])
    assert source.parent == tmp_path / "tmp"
    assert estimator["entry_point"] == ENTRY_POINT and "plait train" in (source / ENTRY_POINT).read_text()
    assert yaml.safe_load((source / "config.yaml").read_text())["data"]["table"] == "data/table.csv"
    wheel = next(source.glob("plait-*-py3-none-any.whl"))
    assert (source / "requirements.txt").read_text() == f"./{wheel.name}\n"
    with zipfile.ZipFile(wheel) as archive:
        assert {"plait/sagemaker.py", "plait/cli/__init__.py"} <= set(archive.namelist())


def test_job_definition_refuses_what_cannot_run(job, tmp_path):
    source = tmp_path / "source"
    with pytest.raises(PlaitError, match="--spot needs --output"):
        job_definition(job["config"], "r", "ml.g5.xlarge", source, inputs={"train": "s3://b/d/"}, spot=True)
    with pytest.raises(PlaitError, match="is local"):
        job_definition(job["config"], "r", "ml.g5.xlarge", source)
    with pytest.raises(PlaitError, match="train.epochs"):
        job_definition(job["config"], "r", "ml.g5.xlarge", source, inputs={"train": "s3://b/d/"}, overrides=["train.epochs=0"])
    assert not source.exists()  # refused before anything is built


def test_launching_without_the_sdk_says_how_to_install_it(job, monkeypatch):
    monkeypatch.setitem(sys.modules, "sagemaker", None)  # `import sagemaker` now fails, installed or not
    result = CliRunner().invoke(app, ["sagemaker", "train", str(job["config"]), "--role", "r", "--instance-type", "ml.g5.xlarge",
                                      "--input", "train=s3://b/d/"])
    assert isinstance(result.exception, PlaitError)
    assert "pip install sagemaker" in str(result.exception)


def installed(site: Path, direct_url: dict | None = None) -> metadata.Distribution:
    """A distribution `toy 1.0` installed into `site` as pip installs a wheel: its files, a dist-info, and a console
    script outside `site`."""
    (site / "toy").mkdir(parents=True)
    (site / "toy" / "__init__.py").write_text("VALUE = 1\n")
    (site / "toy" / "__pycache__").mkdir()
    (site / "toy" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\x00")
    info = site / "toy-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy\nVersion: 1.0\n")
    (info / "WHEEL").write_text("Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    (info / "INSTALLER").write_text("pip\n")
    files = ["toy/__init__.py", "toy/__pycache__/__init__.cpython-311.pyc", "toy-1.0.dist-info/METADATA",
             "toy-1.0.dist-info/WHEEL", "toy-1.0.dist-info/INSTALLER", "toy-1.0.dist-info/RECORD", "../../bin/toy"]
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
        files.append("toy-1.0.dist-info/direct_url.json")
    (info / "RECORD").write_text("".join(f"{name},,\n" for name in files))
    return metadata.Distribution.at(info)


def test_a_plait_installed_from_an_index_or_a_wheel_file_ships_as_a_wheel(tmp_path):
    """(A source install is built by its backend: the dry run and the entry point tests above ship that wheel.)"""
    wheel = plait_wheel(tmp_path / "out", installed(tmp_path / "site"))
    assert wheel.name == "toy-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        assert sorted(archive.namelist()) == ["toy-1.0.dist-info/METADATA", "toy-1.0.dist-info/RECORD",
                                              "toy-1.0.dist-info/WHEEL", "toy/__init__.py"]
        assert archive.read("toy/__init__.py") == b"VALUE = 1\n"
        record = [line.split(",") for line in archive.read("toy-1.0.dist-info/RECORD").decode().splitlines()]
        assert record[-1] == ["toy-1.0.dist-info/RECORD", "", ""]
        for name, digest, size in record[:-1]:
            data = archive.read(name)
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert int(size) == len(data)
    target = tmp_path / "target"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target",
                           str(target), str(wheel)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (target / "toy" / "__init__.py").read_text() == "VALUE = 1\n"

    shipped = tmp_path / "shipped" / "toy-1.0-py3-none-any.whl"
    shipped.parent.mkdir()
    shipped.write_bytes(b"the wheel it was installed from")
    from_file = installed(tmp_path / "site2", {"url": shipped.as_uri(), "archive_info": {}})
    assert plait_wheel(tmp_path / "out2", from_file).read_bytes() == b"the wheel it was installed from"
