"""Where metrics go: `metrics.jsonl` always (one JSON object per logged step or epoch), and each backend named in the
config's `tracking`, as a small sink with `log(step, values)`, `log_final(step, metrics, files, checkpoint)` (once,
after the final evaluation) and `close()`.

Adding a backend is adding one sink class to `SINKS` (and its name to `Config.tracking`); a backend's package is
imported only when a config names it, and a missing one is an error before anything else happens.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import secrets
import string
import time
from dataclasses import dataclass
from pathlib import Path

from plait.config import config_text, flatten
from plait.errors import PlaitError
from plait.files import write_atomic


@dataclass
class RunInfo:
    """What a sink may need to know about the run it logs."""

    folder: Path
    name: str  # the run folder's name
    config: dict  # the resolved config
    resume_step: int | None  # resuming from the checkpoint at this step: the steps after it are logged again
    logged_through: int | None  # resuming: the last step the earlier process logged (it may be past resume_step)

    def logged_earlier(self, step: int) -> bool:
        """Whether an earlier process of this (resumed) run already sent this step to the backends."""
        return self.logged_through is not None and step <= self.logged_through

    def kept_id(self, id_file: str) -> str | None:
        """Resuming: the backend's run id that an earlier process kept in `id_file` in the run folder."""
        path = self.folder / id_file
        if self.resume_step is None or not path.is_file():
            return None
        return path.read_text(encoding="utf-8").strip()


class TensorBoardSink:
    """TensorBoard event files in RUN/tensorboard: the metrics, the resolved config as text, and at the end the final
    metrics and the plots as images. No checkpoint is uploaded: the checkpoints sit beside the logs in the run folder."""

    package = "tensorboard"

    def __init__(self, run: RunInfo):
        from torch.utils.tensorboard import SummaryWriter  # slow import; only when a run starts

        purge = run.resume_step + 1 if run.resume_step is not None else None  # drop events the killed run wrote after its checkpoint
        self.writer = SummaryWriter(str(run.folder / "tensorboard"), purge_step=purge)
        if run.resume_step is None:  # a resumed run's events already hold it
            self.writer.add_text("config", f"```yaml\n{config_text(run.config)}```", 0)

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def log_final(self, step: int, metrics: dict[str, float], files: list[Path], checkpoint: Path | None) -> None:
        self.log(step, metrics)
        for path in filter(is_png, files):
            self.writer.add_image(f"plots/{path.stem}", png_pixels(path), step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    """Weights & Biases. WANDB_MODE, WANDB_PROJECT, WANDB_ENTITY, WANDB_DIR... come from the environment
    (WANDB_MODE=offline logs locally). The W&B run id is kept in the run folder, so `--resume` continues that W&B run."""

    package = "wandb"
    id_file = "wandb_run_id.txt"

    def __init__(self, run: RunInfo):
        import wandb

        run_id = run.kept_id(self.id_file)
        if run_id is None:  # a new run (or one that never reached a checkpoint, which starts over): a new W&B run
            run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
            write_atomic(run.folder / self.id_file, run_id + "\n")
        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or run.config.get("name"), name=run.name, id=run_id,
                                  resume="allow", dir=None if os.environ.get("WANDB_DIR") else str(run.folder),
                                  config=run.config, reinit="create_new")  # never finishes or takes over a run the caller has open
        except Exception as error:  # not logged in, no network, a bad WANDB_* setting
            raise PlaitError(f"tracking: wandb could not start a run: {error}\n"
                             "(run `wandb login`, set WANDB_MODE=offline to log locally, or remove wandb from tracking)") from None
        self.info = run

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.info.logged_earlier(step):  # W&B ignores a step lower than the last one it holds
            self.run.log(values, step=step)

    def log_final(self, step: int, metrics: dict[str, float], files: list[Path], checkpoint: Path | None) -> None:
        """The plots as images (at W&B's current step), other files saved with the run, the checkpoint as a "model"
        artifact, and the final metrics into the run summary (last, so no history row overwrites them)."""
        import wandb

        images = {f"plots/{path.stem}": wandb.Image(str(path)) for path in filter(is_png, files)}
        if images:
            self.run.log(images)
        for path in files:
            if not is_png(path):
                self.run.save(str(path), base_path=str(path.parent), policy="now")
        if checkpoint is not None:
            model = wandb.Artifact(f"model-{self.run.id}", type="model", metadata={"run_folder": self.info.name})
            model.add_dir(str(checkpoint))
            self.run.log_artifact(model, aliases=["best"])
        self.run.summary.update(metrics)

    def close(self) -> None:
        self.run.finish()  # flushes and stops W&B's background process


class MlflowSink:
    """MLflow, through an `MlflowClient` and explicit run ids: a run the caller has open (`mlflow.start_run`) is left
    alone. MLFLOW_TRACKING_URI names the server or database (unset: MLflow's default), MLFLOW_EXPERIMENT_NAME the
    experiment (unset: the config's `name`); the MLflow run is named after the run folder and its id is kept there,
    so `--resume` continues it. Logs the resolved config as params (dotted keys) and as `config.yaml`, the metrics per
    step, and at the end the final metrics, the plots (`plots/`), other files (`report.html`) and the best checkpoint
    (`checkpoint/`)."""

    package = "mlflow"
    id_file = "mlflow_run_id.txt"

    def __init__(self, run: RunInfo):
        from mlflow import MlflowClient

        self.info = run
        try:
            self.client = MlflowClient()  # MLFLOW_TRACKING_URI, else the caller's mlflow.set_tracking_uri, else the default
            self.run_id = self._open_run()
            self._log_config()
        except Exception as error:  # a bad or unreachable URI, a missing database driver, a deleted experiment
            raise PlaitError(f"tracking: mlflow could not start a run: {' '.join(str(error).split())}\n"
                             "(set MLFLOW_TRACKING_URI, e.g. sqlite:///mlflow.db or http://host:5000, or remove mlflow from tracking)") from None

    def _open_run(self) -> str:
        """The id of the MLflow run an earlier process of this run started (running again), or of a new one."""
        run_id = self.info.kept_id(self.id_file)
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or self.info.config.get("name") or "Default"
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        run_id = self.client.create_run(experiment_id, run_name=self.info.name,
                                        tags={"plait.run_folder": str(self.info.folder.resolve())}).info.run_id
        write_atomic(self.info.folder / self.id_file, run_id + "\n")
        return run_id

    def _log_config(self) -> None:
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        logged = self.client.get_run(self.run_id).data.params  # a resumed run holds them: MLflow refuses a changed value
        params = [Param(key, value[:MAX_PARAM_VAL_LENGTH]) for key, value in flat_params(self.info.config).items() if key not in logged]
        for start in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, params=params[start:start + MAX_PARAMS_TAGS_PER_BATCH])
        self.client.log_text(self.run_id, config_text(self.info.config), "config.yaml")

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.info.logged_earlier(step):  # MLflow would hold the step twice
            self._log_metrics(step, values)

    def _log_metrics(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.validation import MAX_METRICS_PER_BATCH

        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_key(key), float(value), now, step) for key, value in values.items()]
        for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + MAX_METRICS_PER_BATCH])

    def log_final(self, step: int, metrics: dict[str, float], files: list[Path], checkpoint: Path | None) -> None:
        """The final metrics at the last step (so they are what MLflow shows as each metric's value), the files and
        the checkpoint as artifacts."""
        self._log_metrics(step, metrics)
        for path in files:
            self.client.log_artifact(self.run_id, str(path), "plots" if is_png(path) else None)
        if checkpoint is not None:
            self.client.log_artifacts(self.run_id, str(checkpoint), "checkpoint")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)  # FINISHED


SINKS = {"tensorboard": TensorBoardSink, "wandb": WandbSink, "mlflow": MlflowSink}


class NullTracker:
    """What the ranks other than rank 0 log to: nothing (rank 0 logs the metrics, which are reduced over the ranks)."""

    def log(self, step: int, values: dict, **labels) -> None:
        pass

    def log_final(self, metrics: dict[str, float], files: list[Path], checkpoint: Path | None) -> None:
        pass

    def close(self) -> None:
        pass


class Tracker:
    """Rank 0's logger: appends each record to metrics.jsonl and passes its numbers to the configured sinks."""

    def __init__(self, run_dir: Path, resume_step: int | None = None, backends=("tensorboard",), config: dict | None = None,
                 name: str | None = None):
        run_dir = Path(run_dir)
        require_trackers(backends)
        self.path = run_dir / "metrics.jsonl"
        logged = [record["step"] for record in read_metrics(run_dir)] if resume_step is not None else []
        run = RunInfo(run_dir, name or run_dir.name, config or {}, resume_step, max(logged, default=None))
        self.sinks = []
        try:
            for backend in backends:
                self.sinks.append(SINKS[backend](run))
        except BaseException:
            for sink in self.sinks:
                sink.close()
            raise
        if resume_step is not None:
            self._forget_after(resume_step)
        self.file = open(self.path, "a", encoding="utf-8")
        self.last_step = resume_step or 0  # where log_final puts the final metrics

    def _forget_after(self, step: int) -> None:
        """A resumed run repeats the steps after its checkpoint; drop what the killed run logged for them."""
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line and json.loads(line).get("step", 0) <= step]
        write_atomic(self.path, "".join(line + "\n" for line in kept))

    def log(self, step: int, values: dict, **labels) -> None:
        record = {"step": step, **labels, **values, "time": round(time.time(), 3)}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        self.last_step = step
        numbers = _numbers(values)
        for sink in self.sinks:
            sink.log(step, numbers)

    def log_final(self, metrics: dict[str, float], files: list[Path], checkpoint: Path | None) -> None:
        """Once, after training: the final evaluation metrics (`test.label.accuracy`...), the files a run wrote
        (plots, report.html) and the best checkpoint's folder."""
        for sink in self.sinks:
            sink.log_final(self.last_step, _numbers(metrics), files, checkpoint)

    def close(self) -> None:
        self.file.close()
        for sink in self.sinks:
            sink.close()


def require_trackers(backends) -> None:
    """Fail at once, naming the package, when a configured backend's package is not installed."""
    for backend in backends:
        package = SINKS[backend].package
        try:
            importlib.import_module(package)
        except ImportError:
            raise PlaitError(f"tracking: {backend} needs the {package} package (pip install {package}), or remove it from tracking") from None


def _numbers(values: dict) -> dict[str, float]:
    """The values a backend can plot: numbers, not text."""
    return {key: value for key, value in values.items() if isinstance(value, (int, float))}


def flat_params(config: dict) -> dict[str, str]:
    """A resolved config as MLflow params: {"train.epochs": "3", "inputs.photo.encoder.name": "cnn", ...}."""
    return {mlflow_key(key): str(value) for key, value in flatten(config).items()}


def mlflow_key(key: str) -> str:
    """A metric or param name MLflow accepts on every platform: letters, digits, `_-. ` (anything else becomes `_`,
    slashes and colons included, so it never reads as a path), no leading dot, at most 250 characters."""
    key = re.sub(r"[^A-Za-z0-9_.\- ]", "_", key)
    return ("_" + key if key.startswith(".") or not key else key)[:250]


def is_png(path: Path) -> bool:
    return path.suffix.lower() == ".png"


def png_pixels(path: Path):
    """An image file as an RGB array, height x width x 3."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
