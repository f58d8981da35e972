"""Resume with changed train settings (`--resume DIR --set train.epochs=N`), from a chosen checkpoint
(`--checkpoint best`), and warm starts from another run's weights (`--init-from`)."""

import json
import shutil
from unittest import mock

import torch
import yaml
from safetensors.torch import load_file

from plait.training.checkpoint import load_state
from tests.conftest import run_cli, run_cli_here, tabular_config


def write_config(tmp_path, table, name="config.yaml", **train):
    config = tabular_config(table, epochs=2, **train)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path, config


def said(result):
    """What a command printed: progress and notes go to stderr, the run folder to stdout."""
    return result.stdout + result.stderr


def epoch_records(run):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "train.epoch_loss" in r]


def weights(run, which="last"):
    return load_file(run / "checkpoints" / which / "model.safetensors")


def test_more_epochs_on_resume_train_on_the_curve_continues_and_best_resumes_from_best(tabular, tmp_path):
    table, _ = tabular
    config, _ = write_config(tmp_path, table, scheduler={"name": "cosine", "warmup_steps": 3})
    run = tmp_path / "run"
    run_cli("train", config, "--run-dir", run)
    before = (run / "metrics.jsonl").read_text().splitlines()
    assert [r["epoch"] for r in epoch_records(run)] == [1, 2]
    shutil.copytree(run / "checkpoints" / "last", tmp_path / "epoch2")

    out = said(run_cli("train", "--resume", run, "--set", "train.epochs=4"))
    assert "train.epochs 2 → 4; config.yaml updated" in out
    assert "the cosine schedule now spans 4 epochs instead of 2" in out  # the horizon moves: said, not hidden
    assert load_state(run / "checkpoints" / "last")["progress"]["epoch"] == 4
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 4
    assert [r["epoch"] for r in epoch_records(run)] == [1, 2, 3, 4]  # the curve goes on, no epoch twice
    assert (run / "metrics.jsonl").read_text().splitlines()[:len(before)] == before
    record = json.loads((run / "resumes.json").read_text())[-1]
    assert record["changed"] == {"train.epochs": [2, 4]} and record["epoch"] == 2
    trained = weights(run)

    # a run whose best checkpoint is at epoch 2 resumes from there (not from its last, at epoch 4) and, with the same
    # settings, ends with the same weights as the resume above, bit for bit
    shutil.rmtree(run / "checkpoints" / "best")
    shutil.copytree(tmp_path / "epoch2", run / "checkpoints" / "best")
    out = said(run_cli("train", "--resume", run, "--checkpoint", "best"))
    assert "resuming from checkpoints/best (epoch 2, step" in out
    assert "epoch 3/4" in out and "epoch 4/4" in out
    again = weights(run)
    assert all(torch.equal(trained[name], again[name]) for name in trained)
    assert [r["epoch"] for r in epoch_records(run)] == [1, 2, 3, 4]


def test_resume_refuses_other_keys_by_name_and_a_stopped_run_trains_its_extra_epochs(tabular, tmp_path):
    table, _ = tabular
    config, _ = write_config(tmp_path, table, early_stopping_patience=2)
    run = tmp_path / "run"
    run_cli("train", config, "--run-dir", run)
    saved = (run / "config.yaml").read_text()

    for key in ("fusion.dropout=0.3", "inputs.note.encoder.dim=12", "train.batch_size=8", "train.seed=3"):
        result = run_cli_here("train", "--resume", run, "--set", key)
        assert result.returncode != 0, key
        assert f"--set {key.split('=')[0]}:" in result.stderr + result.stdout
    assert (run / "config.yaml").read_text() == saved
    result = run_cli_here("train", config, "--checkpoint", "best")
    assert result.returncode != 0 and "--resume" in result.stderr + result.stdout

    # as if early stopping had ended it: asked for more epochs, it trains them, patience counting afresh
    last = run / "checkpoints" / "last"
    state = load_state(last)
    state["progress"].update(stopped_early=True, validations_without_improvement=2)
    torch.save(state, last / "state.pt")
    out = said(run_cli("train", "--resume", run, "--set", "train.epochs=3"))
    assert "it had stopped early after epoch 2" in out and "epoch 3/3" in out
    assert load_state(last)["progress"]["epoch"] == 3
    assert [r["epoch"] for r in epoch_records(run)] == [1, 2, 3]


def test_init_from_loads_matching_tensors_and_reports_new_and_mismatched_ones(tabular, tmp_path):
    table, _ = tabular
    config, raw = write_config(tmp_path, table)
    source = tmp_path / "source"
    run_cli("train", config, "--run-dir", source, "--set", "train.epochs=1")

    raw["inputs"][2]["encoder"]["dim"] = 12  # the note's embedding (and the fusion's first layer) change shape
    raw["outputs"].append({"name": "again", "type": "number", "column": "target"})  # a head the source lacks
    raw["train"].update(epochs=1, optimizer={"name": "sgd", "lr": 1e-30, "momentum": 0.0})  # a step leaves weights as they are
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    out = said(run_cli("train", changed, "--run-dir", run, "--init-from", source))

    theirs, ours = weights(source, "best"), weights(run)
    matching = [name for name in ours if name in theirs and ours[name].shape == theirs[name].shape]
    assert f"{len(matching)} tensors loaded, 2 new (not in the source), 3 dropped for a shape mismatch" in out
    assert "new: heads.again.weight" in out
    assert "shape mismatch: encoders.note.embedding.weight" in out and "(16, 12) here" in out
    for name in ("encoders.colour.embedding.weight", "heads.label.weight", "fusion.mlp.0.bias"):
        assert torch.equal(ours[name], theirs[name]), name
    assert not torch.equal(ours["fusion.mlp.0.weight"][:, :8], theirs["fusion.mlp.0.weight"][:, :8])  # not loaded
    record = json.loads((run / "init_from.json").read_text())
    assert record["loaded"] == len(matching) and record["source"].endswith("checkpoints/best")
    assert ["encoders.note.embedding.weight", [16, 12], [16, 8]] in record["mismatched"]


def test_the_new_flags_pass_through_to_torchrun(tmp_path):
    with mock.patch("plait.training.launch.run_torchrun", return_value=0) as launch:
        assert run_cli_here("train", "--resume", tmp_path, "--checkpoint", "best", "--set", "train.epochs=9",
                            "--nproc", "2").returncode == 0
        assert run_cli_here("train", tmp_path / "c.yaml", "--init-from", tmp_path / "old", "--nproc", "2").returncode == 0
    resumed, started = (call.args[1] for call in launch.call_args_list)
    assert {"--checkpoint=best", "--set=train.epochs=9", f"--resume={tmp_path}"} <= set(resumed)
    assert f"--init-from={tmp_path / 'old'}" in started
