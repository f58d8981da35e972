"""Where metrics go: metrics.jsonl always, TensorBoard by default, Weights & Biases only when asked for (offline here)."""

import json
import struct
import subprocess
import sys
import types

import pytest

from plait import api
from plait.config import ConfigError, validate
from plait.errors import PlaitError
from plait.training.tracking import Tracker
from tests.conftest import ROOT, tabular_config


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B in offline mode, every file it writes under tmp_path/wandb-home: no network, nothing in ~."""
    home = tmp_path / "wandb-home"
    for key, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off", "WANDB_DIR": home,
                       "WANDB_CONFIG_DIR": home / "config", "WANDB_CACHE_DIR": home / "cache", "WANDB_DATA_DIR": home / "data"}.items():
        monkeypatch.setenv(key, str(value))
    home.mkdir()
    return home


def wandb_records(path) -> list:
    """The records of a `.wandb` run log, as `wandb_internal_pb2.Record`s. The file is a LevelDB-style log: a 7-byte
    header, then 32 KiB blocks of records, each crc32 (4 bytes), length (2), type (1: whole; 2, 3, 4: first, middle,
    last piece). W&B 0.31 writes `files/wandb-summary.json` only when it syncs, so this log is what an offline run has."""
    from wandb.proto import wandb_internal_pb2

    data, records = path.read_bytes(), []
    assert data[:4] == b":W&B", f"{path}: not a W&B run log"
    position, pending = 7, b""
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a record header is padding
            position += 32768 - position % 32768
            continue
        length, kind = struct.unpack_from("<HB", data, position + 4)
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(pending))
            pending = b""
    return records


def history(records) -> list[dict]:
    return [{(item.key or ".".join(item.nested_key)): json.loads(item.value_json) for item in record.history.item}
            for record in records if record.WhichOneof("record_type") == "history"]


def test_wandb_offline_run_holds_the_metrics(tabular, tmp_path, offline_wandb):
    table, _ = tabular
    config = tabular_config(table, epochs=2, log_every_steps=2)
    config["tracking"] = ["tensorboard", "wandb"]
    run = api.train(validate(config), run_dir=tmp_path / "run")

    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logs = list((offline_wandb / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 1 and not (run / "wandb").exists()  # WANDB_DIR wins over the run folder
    run_id = (run / "wandb_run_id.txt").read_text().strip()
    assert logs[0].name == f"run-{run_id}.wandb"
    records = wandb_records(logs[0])
    assert records[-1].WhichOneof("record_type") == "exit"  # the run was finished, its log flushed
    rows = history(records)
    steps = [row["_step"] for row in rows]
    assert steps == sorted(set(steps)) and steps[-1] == metrics[-1]["step"]
    logged = set().union(*rows)
    assert {"train.loss", "lr", "train.epoch_loss", "validation.loss", "validation.label.accuracy"} <= logged
    last = {k: v for r in metrics if r["step"] == steps[-1] for k, v in r.items()}
    assert rows[-1]["validation.loss"] == pytest.approx(last["validation.loss"])


class FakeWandb(types.ModuleType):
    """Stands in for the wandb package: records what `init` was given and what each run logged."""

    def __init__(self):
        super().__init__("wandb")
        self.inits, self.runs = [], []

    def init(self, **kwargs):
        self.inits.append(kwargs)
        run = types.SimpleNamespace(logged=[], finished=False)
        run.log = lambda values, step: run.logged.append((step, dict(values)))
        run.finish = lambda: setattr(run, "finished", True)
        self.runs.append(run)
        return run


def test_a_resumed_run_continues_the_same_wandb_run_without_repeating_steps(tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    run_dir = tmp_path / "exp-1"
    run_dir.mkdir()
    tracker = Tracker(run_dir, backends=["wandb"], config={"name": "exp", "train": {"epochs": 3}})
    for step in range(1, 7):  # killed after step 6; its last checkpoint was at step 4
        tracker.log(step, {"train.loss": 1 / step, "note": "text is not a metric"}, epoch=0)
    tracker.close()

    monkeypatch.setenv("WANDB_PROJECT", "elsewhere")
    resumed = Tracker(run_dir, resume_step=4, backends=["wandb"], config={"name": "exp"}, name="shown")
    for step in range(5, 9):
        resumed.log(step, {"train.loss": 1 / step})
    resumed.log(8, {"validation.loss": 0.5})
    resumed.close()

    first, second = fake.inits
    assert first["id"] == second["id"] == (run_dir / "wandb_run_id.txt").read_text().strip()
    assert (first["project"], first["name"], first["dir"], first["resume"]) == ("exp", "exp-1", str(run_dir), "allow")
    assert (second["project"], second["name"]) == ("elsewhere", "shown")
    assert first["config"] == {"name": "exp", "train": {"epochs": 3}}
    assert [step for step, _ in fake.runs[0].logged] == [1, 2, 3, 4, 5, 6]
    assert fake.runs[0].logged[0][1] == {"train.loss": 1.0}  # numbers only
    assert [step for step, _ in fake.runs[1].logged] == [7, 8, 8]  # 5 and 6 are already in W&B
    assert all(run.finished for run in fake.runs)
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8, 8]

    fresh = Tracker(run_dir, backends=["wandb"], config={"name": "exp"})  # not a resume: a new W&B run
    fresh.close()
    assert fake.inits[2]["id"] != first["id"]


def test_wandb_missing_is_a_clear_error_before_any_work(tabular, tmp_path, monkeypatch):
    table, _ = tabular
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` fails
    config = tabular_config(table, epochs=1)
    config["tracking"] = ["tensorboard", "wandb"]
    with pytest.raises(PlaitError, match=r"tracking: wandb needs the wandb package \(pip install wandb\), or remove it from tracking"):
        api.train(validate(config), run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not (tmp_path / "run" / "tensorboard").exists() and not (tmp_path / "run" / "metrics.jsonl").exists()


def test_without_wandb_in_tracking_nothing_imports_it(tabular, tmp_path):
    table, _ = tabular
    script = ("import json, sys; from plait import api; from plait.config import validate; "
              f"api.train(validate(json.loads(sys.argv[1])), run_dir=sys.argv[2]); print('wandb' in sys.modules)")
    config = json.dumps(tabular_config(table, epochs=1))
    result = subprocess.run([sys.executable, "-c", script, config, str(tmp_path / "run")], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "run" / "tensorboard").is_dir()


def test_tracking_names_are_checked():
    minimal = tabular_config("t.csv")
    assert validate(minimal).tracking == ["tensorboard"]
    for tracking, line in [(["wandbb"], "tracking.0: unknown value 'wandbb'; did you mean wandb?"),
                           (["tensorboard", "nope"], "tracking.1: unknown value 'nope'; choose one of tensorboard, wandb"),
                           (["wandb", "wandb"], "tracking: Value error, each tracker once; repeated: wandb")]:
        with pytest.raises(ConfigError) as caught:
            validate({**minimal, "tracking": tracking})
        assert caught.value.lines == [line]
    assert validate({**minimal, "tracking": []}).tracking == []


def test_wandb_sink_reads_project_and_folder_from_the_environment(tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    Tracker(tmp_path, backends=["wandb"], config={"name": "exp"}).close()
    assert fake.inits[0]["dir"] is None and fake.inits[0]["project"] == "exp"  # wandb.init reads WANDB_DIR itself
