"""A run killed with SIGKILL and resumed ends with the same weights, bit for bit, as an uninterrupted run (dropout
and modality dropout included)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from safetensors.torch import load_file

from plait.training.checkpoint import checkpoint_folder, save_checkpoint
from tests.conftest import run_cli, tabular_config


def resumable_config(tmp_path, table):
    config = tabular_config(table, epochs=25, checkpoint_every_steps=3, scheduler={"name": "cosine", "warmup_steps": 5},
                            modality_dropout=0.3)  # hidden inputs must replay exactly after a resume too
    config["inputs"][2]["encoder"] = {"name": "transformer", "dim": 16, "heads": 2, "layers": 1, "ff": 32, "dropout": 0.2}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def weights(run):
    return load_file(run / "checkpoints" / "last" / "model.safetensors")


@pytest.mark.parametrize("delay", [0.0, 0.7])
def test_sigkill_then_resume_is_bit_identical(tabular, tmp_path, delay):
    table, _ = tabular
    config = resumable_config(tmp_path, table)
    run_cli("train", config, "--run-dir", tmp_path / "whole")

    part = tmp_path / "part"
    process = subprocess.Popen([sys.executable, "-m", "plait", "train", str(config), "--run-dir", str(part)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (part / "checkpoints" / "last" / "state.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = torch.load(checkpoint_folder(part / "checkpoints" / "last") / "state.pt", weights_only=True)["progress"]
    assert killed_at["epoch"] < 25

    run_cli("train", "--resume", part)
    whole, resumed = weights(tmp_path / "whole"), weights(part)
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)
    steps = [r["step"] for r in map(json.loads, (part / "metrics.jsonl").read_text().splitlines()) if "train.loss" in r and "lr" in r]
    assert steps == sorted(set(steps)), "steps the killed run logged after its checkpoint must not appear twice"


def test_a_kill_between_the_two_renames_leaves_the_previous_checkpoint(tmp_path):
    model = torch.nn.Linear(2, 2)
    folder = tmp_path / "checkpoints" / "last"
    save_checkpoint(folder, model.state_dict(), {"progress": {"step": 1}}, {})
    os.replace(folder, folder.with_name(".last.previous"))  # as if killed right after moving the old one aside
    assert checkpoint_folder(folder) == folder.with_name(".last.previous")
    save_checkpoint(folder, model.state_dict(), {"progress": {"step": 2}}, {})
    assert torch.load(checkpoint_folder(folder) / "state.pt", weights_only=True)["progress"]["step"] == 2
    assert not folder.with_name(".last.previous").exists() and not folder.with_name(".last.writing").exists()


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_cleanly(tabular, tmp_path):
    table, _ = tabular
    config = tabular_config(table, epochs=2)
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_cli("train", config_path, "--run-dir", tmp_path / "whole")
    shutil.copytree(tmp_path / "whole", tmp_path / "early", ignore=shutil.ignore_patterns("checkpoints", "metrics.jsonl", "tensorboard"))
    run_cli("train", "--resume", tmp_path / "early")
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "early")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_background_writer_saves_the_state_at_the_moment_of_the_call(tmp_path):
    from plait.training.checkpoint import CheckpointWriter, load_state, load_weights

    model = torch.nn.Linear(3, 3)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    writer = CheckpointWriter()
    writer.save(tmp_path / "last", model, {"progress": {"step": 7}, "moments": model.weight.data}, {})
    with torch.no_grad():
        model.weight.add_(1.0)  # training goes on while the file is written
    writer.wait()
    fresh = torch.nn.Linear(3, 3)
    load_weights(tmp_path / "last", fresh)
    assert all(torch.equal(fresh.state_dict()[k], expected[k]) for k in expected)
    assert torch.equal(load_state(tmp_path / "last")["moments"], expected["weight"])
