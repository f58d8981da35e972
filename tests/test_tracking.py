"""Where metrics go: metrics.jsonl always, TensorBoard by default, Weights & Biases (offline here) and MLflow (on a
sqlite database here) only when asked for."""

import json
import struct
import subprocess
import sys
import types

import pytest
import yaml

from plait import api
from plait.config import ConfigError, validate
from plait.errors import PlaitError
from plait.training.tracking import Tracker, flat_params, mlflow_key, read_metrics
from plait.training.trainer import Trainer
from tests.conftest import ROOT, tabular_config


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B in offline mode, every file it writes under tmp_path/wandb-home: no network, nothing in ~."""
    import wandb

    home = tmp_path / "wandb-home"
    for key, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off", "WANDB_DIR": home,
                       "WANDB_CONFIG_DIR": home / "config", "WANDB_CACHE_DIR": home / "cache", "WANDB_DATA_DIR": home / "data"}.items():
        monkeypatch.setenv(key, str(value))
    home.mkdir()
    yield home
    wandb.teardown()  # W&B reads its settings from the environment once per process: the next test's WANDB_DIR is another


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch) -> str:
    """MLflow on a sqlite database under tmp_path; its artifacts go to MLflow's default folder, under the working
    directory, which is tmp_path."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return uri


def fast_config(table, tracking: list[str], **train) -> dict:
    """A small tabular config with these trackers and no report.html (these tests read the trackers, not the report)."""
    config = tabular_config(table, **train)
    config["tracking"] = tracking
    config["report"] = {"write": False}
    return config


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


def summary(records) -> dict:
    """The run summary as W&B ends up with it: each summary record's updates, the later winning."""
    return {(item.key or ".".join(item.nested_key)): json.loads(item.value_json)
            for record in records if record.WhichOneof("record_type") == "summary" for item in record.summary.update}


def saved_files(records) -> set[str]:
    """The paths, relative to the W&B run's files folder, of every file the run saved (media included)."""
    return {file.path for record in records if record.WhichOneof("record_type") == "files" for file in record.files.files}


def evaluation(run) -> dict:
    """The final metrics of a run as `log_final` was given them: evaluation/SPLIT.json, keys prefixed `SPLIT.`."""
    return {f"{split}.{key}": value for split in ("validation", "test")
            for key, value in json.loads((run / "evaluation" / f"{split}.json").read_text()).items()}


def test_wandb_offline_run_holds_the_metrics_plots_and_model(tabular, tmp_path, offline_wandb):
    table, _ = tabular
    config = fast_config(table, ["tensorboard", "wandb"], epochs=2, log_every_steps=2)
    run = api.train(validate(config), run_dir=tmp_path / "run")
    import wandb

    wandb.teardown()  # run.finish() can return before W&B's writer process has flushed the log; teardown waits for it

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

    final = evaluation(run)
    assert "test.label.accuracy" in final and final.items() <= summary(records).items()
    assert rows[-1]["plots/loss._type"] == "image-file"  # logged once, with the last step's row
    assert sum("plots/loss.path" in row for row in rows) == 1
    assert rows[-1]["plots/loss.path"] in saved_files(records)
    models = [record.artifact for record in records if record.WhichOneof("record_type") == "artifact"]
    assert [(model.type, model.name) for model in models] == [("model", f"model-{run_id}")]
    assert {entry.path for entry in models[0].manifest.contents} == {p.name for p in (run / "checkpoints" / "best").iterdir()}


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


@pytest.mark.parametrize("backend", ["wandb", "mlflow"])
def test_a_missing_tracker_package_is_a_clear_error_before_any_work(tabular, tmp_path, monkeypatch, backend):
    table, _ = tabular
    monkeypatch.setitem(sys.modules, backend, None)  # `import wandb` (or mlflow) fails
    config = tabular_config(table, epochs=1)
    config["tracking"] = ["tensorboard", backend]
    with pytest.raises(PlaitError, match=rf"tracking: {backend} needs the {backend} package \(pip install {backend}\), or remove it from tracking"):
        api.train(validate(config), run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not (tmp_path / "run" / "tensorboard").exists() and not (tmp_path / "run" / "metrics.jsonl").exists()


def test_without_wandb_or_mlflow_in_tracking_nothing_imports_them(tabular, tmp_path):
    table, _ = tabular
    script = ("import json, sys; from plait import api; from plait.config import validate; "
              "api.train(validate(json.loads(sys.argv[1])), run_dir=sys.argv[2]); print('wandb' in sys.modules or 'mlflow' in sys.modules)")
    config = json.dumps(fast_config(table, ["tensorboard"], epochs=1))
    result = subprocess.run([sys.executable, "-c", script, config, str(tmp_path / "run")], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "run" / "tensorboard").is_dir()


def test_tracking_names_are_checked():
    minimal = tabular_config("t.csv")
    assert validate(minimal).tracking == ["tensorboard"]
    for tracking, line in [(["wandbb"], "tracking.0: unknown value 'wandbb'; did you mean wandb?"),
                           (["tensorboard", "nope"], "tracking.1: unknown value 'nope'; choose one of tensorboard, wandb, mlflow"),
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


def metric_history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of each point MLflow holds for a metric, in the order it was logged."""
    points = sorted(client.get_metric_history(run_id, key), key=lambda point: (point.step, point.timestamp))
    return [(point.step, point.value) for point in points]


def artifact_paths(client, run_id: str, folder: str | None = None) -> set[str]:
    """Every artifact file of an MLflow run, as paths from the artifact root."""
    paths = set()
    for info in client.list_artifacts(run_id, folder):
        paths |= artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return paths


def tensorboard_events(run_dir):
    """Everything in a run's TensorBoard folder, no event left out by sampling."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
    events.Reload()
    return events


def test_mlflow_and_tensorboard_hold_the_metrics_config_plots_and_model(tabular, tmp_path, mlflow_uri):
    from mlflow import MlflowClient

    table, _ = tabular
    config = fast_config(table, ["tensorboard", "mlflow"], epochs=2, log_every_steps=2)
    run = api.train(validate(config), run_dir=tmp_path / "run")

    client = MlflowClient(mlflow_uri)
    run_id = (run / "mlflow_run_id.txt").read_text().strip()
    logged = client.get_run(run_id)
    assert (logged.info.run_name, logged.info.status) == ("run", "FINISHED")
    assert client.get_experiment(logged.info.experiment_id).name == "tabular"
    records, final = read_metrics(run), evaluation(run)
    last_step = records[-1]["step"]
    train_loss = [(r["step"], r["train.loss"]) for r in records if "train.loss" in r]
    validation_loss = [(r["step"], r["validation.loss"]) for r in records if "validation.loss" in r]
    assert metric_history(client, run_id, "train.loss") == train_loss
    # the final evaluation (of the best checkpoint) comes last, at the last step: it is what MLflow shows as the value
    assert metric_history(client, run_id, "validation.loss") == validation_loss + [(last_step, final["validation.loss"])]
    assert "test.label.accuracy" in final and final.items() <= logged.data.metrics.items()
    params = logged.data.params
    assert (params["train.epochs"], params["inputs.x.type"], params["tracking"]) == ("2", "numeric", "['tensorboard', 'mlflow']")
    assert {"config.yaml", "plots/loss.png", "checkpoint/model.safetensors"} <= artifact_paths(client, run_id)
    config_copy = client.download_artifacts(run_id, "config.yaml", str(tmp_path))
    assert yaml.safe_load(open(config_copy)) == yaml.safe_load((run / "config.yaml").read_text())

    events = tensorboard_events(run)
    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.startswith("```yaml\n") and text.endswith("```")
    assert yaml.safe_load(text.removeprefix("```yaml\n").removesuffix("```")) == yaml.safe_load((run / "config.yaml").read_text())
    loss_plot = events.Images("plots/loss")
    assert len(loss_plot) == 1 and loss_plot[0].step == last_step and loss_plot[0].encoded_image_string.startswith(b"\x89PNG")
    assert events.Scalars("test.label.accuracy")[0].value == pytest.approx(final["test.label.accuracy"])


def test_a_resumed_run_continues_the_same_mlflow_run_without_repeating_steps(tabular, tmp_path, mlflow_uri, monkeypatch):
    from mlflow import MlflowClient

    table, _ = tabular
    config = validate(fast_config(table, ["mlflow"], epochs=2, log_every_steps=1, checkpoint_every_steps=4))
    step = Trainer.train_step

    def killed_after_six_steps(self, group, rows):
        if self.progress.step == 6:
            raise KeyboardInterrupt  # as if killed: the last checkpoint is step 4's, steps 5 and 6 are in MLflow
        return step(self, group, rows)

    monkeypatch.setattr(Trainer, "train_step", killed_after_six_steps)
    with pytest.raises(KeyboardInterrupt):
        api.train(config, run_dir=tmp_path / "run")
    client = MlflowClient(mlflow_uri)
    run_id = (tmp_path / "run" / "mlflow_run_id.txt").read_text().strip()
    assert [step for step, _ in metric_history(client, run_id, "train.loss")] == [1, 2, 3, 4, 5, 6]

    monkeypatch.setattr(Trainer, "train_step", step)
    run = api.train(resume=tmp_path / "run")
    assert (run / "mlflow_run_id.txt").read_text().strip() == run_id
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED" and len(client.search_runs([logged.info.experiment_id])) == 1
    # each step once: 5 and 6 as the killed process logged them, which resuming reproduces exactly
    assert metric_history(client, run_id, "train.loss") == [(r["step"], r["train.loss"]) for r in read_metrics(run) if "train.loss" in r]


def test_mlflow_params_are_flat_and_limited_and_a_callers_open_run_is_left_alone(tmp_path, mlflow_uri):
    import mlflow
    from mlflow import MlflowClient

    config = {"name": "exp", "train": {"epochs": 3, "scheduler": {"name": "cosine"}}, "inputs": [{"name": "x"}, {"name": "y"}],
              "tracking": [], "columns": {f"c{i}": i for i in range(150)}, "note": "x" * 7000}  # 157 params: two batches
    run_dir = tmp_path / "exp-1"
    run_dir.mkdir()
    client = MlflowClient()
    with mlflow.start_run(run_name="the caller's") as outer:
        tracker = Tracker(run_dir, backends=["mlflow"], config=config)
        tracker.log(1, {"recall@5/a:b": 0.5, "train.loss": 2.0})
        tracker.close()
        assert mlflow.active_run().info.run_id == outer.info.run_id
        assert client.get_run(outer.info.run_id).info.status == "RUNNING"

    run_id = (run_dir / "mlflow_run_id.txt").read_text().strip()
    logged = client.get_run(run_id)
    assert run_id != outer.info.run_id and logged.info.status == "FINISHED"
    assert client.get_experiment(logged.info.experiment_id).name == "exp"
    params = logged.data.params
    assert len(params) == 157 and params["columns.c149"] == "149" and params["note"] == "x" * 6000
    assert (params["train.scheduler.name"], params["inputs.y.name"], params["tracking"]) == ("cosine", "y", "[]")
    assert logged.data.metrics == {"recall_5_a_b": 0.5, "train.loss": 2.0}


def test_mlflow_keys_and_params_are_made_acceptable_deterministically():
    assert mlflow_key("test.recall@5/a:b") == "test.recall_5_a_b"
    assert mlflow_key("..hidden") == "_..hidden" and mlflow_key("") == "_" and mlflow_key("é") == "_"
    assert mlflow_key("k" * 300) == "k" * 250
    assert flat_params({"a": {}, "b": [1, 2], "c": [{"name": "x", "d": None}], "e": {"f": True}}) == {
        "a": "{}", "b": "[1, 2]", "c.x.name": "x", "c.x.d": "None", "e.f": "True"}  # named sections keyed by name


def test_mlflow_that_cannot_start_is_an_error_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nowhere://at-all")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    with pytest.raises(PlaitError) as caught:
        Tracker(tmp_path, backends=["tensorboard", "mlflow"], config={"name": "exp"})
    lines = str(caught.value).splitlines()
    assert len(lines) == 2 and lines[0].startswith("tracking: mlflow could not start a run: ") and "nowhere" in lines[0]
    assert lines[-1] == "(set MLFLOW_TRACKING_URI, e.g. sqlite:///mlflow.db or http://host:5000, or remove mlflow from tracking)"
    assert not (tmp_path / "mlflow_run_id.txt").exists()


def test_final_files_go_to_every_backend_plots_as_images_others_as_files(tmp_path, offline_wandb, mlflow_uri):
    import wandb
    from mlflow import MlflowClient
    from PIL import Image

    (tmp_path / "plots").mkdir()
    plot, report, checkpoint = tmp_path / "plots" / "loss.png", tmp_path / "report.html", tmp_path / "best"
    Image.new("RGB", (4, 3), "red").save(plot)
    report.write_text("<html></html>")
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    run_dir = tmp_path / "exp-1"
    run_dir.mkdir()
    tracker = Tracker(run_dir, backends=["tensorboard", "wandb", "mlflow"], config={"name": "exp"})
    tracker.log(3, {"train.loss": 0.5})
    tracker.log_final({"test.accuracy": 0.75, "test.queries": 12, "test.note": "not a number"}, [plot, report], checkpoint)
    tracker.close()

    client = MlflowClient()
    run_id = (run_dir / "mlflow_run_id.txt").read_text().strip()
    assert artifact_paths(client, run_id) == {"config.yaml", "plots/loss.png", "report.html", "checkpoint/model.safetensors"}
    assert metric_history(client, run_id, "test.accuracy") == [(3, 0.75)]
    assert "test.note" not in client.get_run(run_id).data.metrics

    wandb.teardown()  # waits for W&B's writer to flush the run log
    records = wandb_records(next((offline_wandb / "wandb").glob("offline-run-*/run-*.wandb")))
    assert "report.html" in saved_files(records)
    assert {"test.accuracy": 0.75, "test.queries": 12}.items() <= summary(records).items()

    events = tensorboard_events(run_dir)
    image = events.Images("plots/loss")[0]
    assert (image.step, image.width, image.height) == (3, 4, 3)
    assert [(point.step, point.value) for point in events.Scalars("test.accuracy")] == [(3, 0.75)]
