"""Shared fixtures: small generated tables in the layouts plait reads, and a way to run the real CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import plait.components  # noqa: F401  (tests build preprocessors and models directly, as plait.runs does)

ROOT = Path(__file__).resolve().parents[1]


if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2`: each worker process (and every `plait` it starts) keeps to one core, so two workers share
    # two cores instead of each spreading PyTorch's threads over both.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own preprocessing cache folder (subprocesses inherit it), never ~/.cache/plait."""
    monkeypatch.setenv("PLAIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The demo recipe (a photo, a note and a reading → one of 8 labels) trained for one epoch on 120 generated rows:
    a small real run with a media, a text and a number input, for the commands that read runs."""
    from plait.demo.synthetic import make_demo

    folder = tmp_path_factory.mktemp("demo-run")
    table = make_demo(folder / "data", rows=120)
    run_cli("train", ROOT / "recipes" / "demo.yaml", "--set", f"data.table={table}", "--set", "train.epochs=1",
            "--set", "train.checkpoint_every_steps=null", "--run-dir", folder / "run")
    return folder / "run"


@pytest.fixture(scope="session")
def indexed_run(tmp_path_factory) -> Path:
    """A tabular run with an embedding output, trained for one epoch, its training rows indexed (`plait index`)."""
    folder = tmp_path_factory.mktemp("indexed-run")
    tabular_rows(160).to_csv(folder / "table.csv", index=False)
    config = tabular_config(folder / "table.csv", epochs=1)
    config["outputs"] = [{"name": "kind", "type": "embedding", "column": "label", "dim": 8}]
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    run_cli("train", folder / "config.yaml", "--run-dir", folder / "run")
    run_cli("index", folder / "run")
    return folder / "run"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_cli(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`plait ARGS` in a fresh interpreter, as a user would run it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, "-m", "plait", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"plait {' '.join(map(str, args))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def run_cli_here(*args: str) -> subprocess.CompletedProcess:
    """`plait ARGS` through the same entry point (`plait.cli.main`: argument parsing, one-line errors, exit codes) but
    in this interpreter, without a new process's seconds of imports: for the commands whose work is quick."""
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO
    from unittest import mock

    from plait.cli import main

    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err), mock.patch.object(sys, "argv", ["plait", *map(str, args)]):
        try:
            main()
            code = 0
        except SystemExit as exit:
            code = exit.code or 0
    return subprocess.CompletedProcess(["plait", *map(str, args)], code, out.getvalue(), err.getvalue())


def tabular_rows(rows: int, seed: int = 0) -> pd.DataFrame:
    """A label that needs both a number and a category, plus a number output and a short text."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], rows)
    label = np.where((x > 0) ^ (colour == "red"), "yes", "no")
    words = np.where(label == "yes", "bright sunny", "dark cold")
    return pd.DataFrame({
        "x": np.round(x, 5),
        "colour": colour,
        "note": [f"a {w} day number {i % 7}" for i, w in enumerate(words)],
        "label": label,
        "target": np.round(2 * x + (colour == "blue") + rng.normal(0, 0.1, rows), 5),
        "split": rng.choice(["train", "validation", "test"], rows, p=[0.7, 0.15, 0.15]),
    })


def tabular_config(table: Path, **train) -> dict:
    return {
        "name": "tabular",
        "data": {"table": str(table)},
        "inputs": [
            {"name": "x", "type": "numeric", "column": "x"},
            {"name": "colour", "type": "category", "column": "colour"},
            {"name": "note", "type": "text", "column": "note", "encoder": {"name": "bag", "dim": 8}},
        ],
        "outputs": [
            {"name": "label", "type": "category", "column": "label"},
            {"name": "target", "type": "number", "column": "target", "loss_weight": 0.5},
        ],
        "fusion": {"name": "concat", "hidden": [32], "dropout": 0.1},
        "train": {"epochs": 3, "batch_size": 16, "seed": 0, "threads": 1, **train},
    }


@pytest.fixture
def tabular(tmp_path) -> tuple[Path, Path]:
    """(table path, config path) of a small tabular dataset."""
    table = tmp_path / "table.csv"
    tabular_rows(240).to_csv(table, index=False)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tabular_config(table)))
    return table, config
