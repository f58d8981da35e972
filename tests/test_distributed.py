"""Several processes training one model: the launchers' variables, sharding, and torchrun runs on the CPU (gloo)
that follow the single-process loss curve."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from plait.distributed import World, shard, world_from_env
from tests.conftest import free_port, run_cli, tabular_config


@pytest.mark.parametrize("env, expected", [
    ({}, World(0, 1, 0)),
    ({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, World(1, 4, 1)),  # torchrun
    ({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}, World(3, 4, 1)),
    ({"PMI_RANK": "2", "PMI_SIZE": "3"}, World(2, 3, 0)),  # MPICH / Intel MPI
])
def test_the_launchers_variables_name_this_process(env, expected):
    assert world_from_env(env) == expected


def test_each_rank_takes_a_contiguous_share_of_the_global_batch():
    batch = torch.arange(7)
    shares = [shard(batch, World(rank, 3)) for rank in range(3)]
    assert [s.tolist() for s in shares] == [[0, 1, 2], [3, 4], [5, 6]]
    assert torch.equal(shard(batch, World()), batch)


def losses(run_dir) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train.loss"] for r in records if "train.loss" in r}


@pytest.fixture
def deterministic_config(tabular, tmp_path):
    """The tabular config without dropout (each process would draw its own masks), logging every step, a global
    batch of 16 whose last one in each epoch is shorter."""
    table, _ = tabular
    raw = tabular_config(table, epochs=2, log_every_steps=1, batch_size=16)
    raw["fusion"]["dropout"] = 0.0
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_two_processes_follow_the_loss_curve_of_one(deterministic_config, tmp_path):
    run_cli("train", deterministic_config, "--run-dir", tmp_path / "one")
    result = run_cli("train", deterministic_config, "--run-dir", tmp_path / "two", "--nproc", "2")
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "two")  # printed once, by rank 0
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) >= 20 and one.keys() == two.keys()
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-5)
    assert (tmp_path / "two" / "checkpoints" / "best" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "two" / "evaluation" / "test.json").read_text())["label.accuracy"] == pytest.approx(
        json.loads((tmp_path / "one" / "evaluation" / "test.json").read_text())["label.accuracy"], abs=1e-6)


def test_an_error_names_its_rank(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"table": str(tmp_path / "missing.csv")},
                                      "inputs": [{"name": "x", "type": "numeric", "column": "x"}],
                                      "outputs": [{"name": "y", "type": "number", "column": "y"}]}))
    result = run_cli("train", config, "--run-dir", tmp_path / "run", "--nproc", "2", check=False)
    assert result.returncode != 0
    assert "error (rank 0 of 2)" in result.stderr and "error (rank 1 of 2)" in result.stderr


@pytest.mark.slow
def test_two_processes_killed_and_resumed_equal_an_uninterrupted_pair(tabular, tmp_path):
    import signal
    import time

    from safetensors.torch import load_file

    from plait.training.checkpoint import checkpoint_folder

    table, _ = tabular
    raw = tabular_config(table, epochs=8, checkpoint_every_steps=3, batch_size=16)  # dropout on: each rank's own RNG
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    run_cli("train", config, "--run-dir", tmp_path / "whole", "--nproc", "2")
    part = tmp_path / "part"
    launcher = subprocess.Popen([sys.executable, "-m", "plait", "train", str(config), "--run-dir", str(part), "--nproc", "2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not (part / "checkpoints" / "last" / "state.pt").exists() and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.02)
    time.sleep(0.5)
    os.killpg(launcher.pid, signal.SIGKILL)  # torchrun and both ranks at once
    launcher.wait()
    killed_at = torch.load(checkpoint_folder(part / "checkpoints" / "last") / "state.pt", weights_only=True)["progress"]
    assert killed_at["epoch"] < 8, "the run finished before it could be killed"
    run_cli("train", "--resume", part, "--nproc", "2")
    whole = load_file(tmp_path / "whole" / "checkpoints" / "last" / "model.safetensors")
    resumed = load_file(part / "checkpoints" / "last" / "model.safetensors")
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert losses(tmp_path / "whole") == losses(part)


def trains_like_one_process(config, run_dir, tmp_path) -> None:
    run_cli("train", config, "--run-dir", tmp_path / "one")
    one, many = losses(tmp_path / "one"), losses(run_dir)
    assert one.keys() == many.keys() and all(many[step] == pytest.approx(one[step], rel=1e-5) for step in one)
    assert (run_dir / "evaluation" / "test.json").is_file()


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs Open MPI's mpirun (Debian: openmpi-bin; .ci/run installs it)")
def test_mpirun_starts_ranks_that_train_together(deterministic_config, tmp_path):
    env = {**os.environ, "MASTER_PORT": str(free_port()), "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    command = ["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none", "-x", "MASTER_PORT", "-x", "PLAIT_CACHE_DIR",
               sys.executable, "-m", "plait", "train", str(deterministic_config), "--run-dir", str(tmp_path / "mpi")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 processes" in result.stderr
    trains_like_one_process(deterministic_config, tmp_path / "mpi", tmp_path)


def test_two_nodes_on_loopback_rendezvous_and_train(deterministic_config, tmp_path):
    """torchrun's multi-node launch, each "node" a torchrun with one process, meeting at a c10d rendezvous."""
    endpoint = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
               f"--rdzv-endpoint={endpoint}", "--rdzv-id=plait-two-nodes", "-m", "plait", "train", str(deterministic_config),
               "--run-dir", str(tmp_path / "nodes")]
    nodes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(outputs)
    trains_like_one_process(deterministic_config, tmp_path / "nodes", tmp_path)
