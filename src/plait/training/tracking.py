"""Where metrics go: `metrics.jsonl` always (one JSON object per logged step or epoch), and each backend named in the
config's `tracking`, as a small sink with `log(step, values)` and `close()`.

Adding a backend is adding one sink class to `SINKS` (and its name to `Config.tracking`); a backend's package is
imported only when a config names it, and a missing one is an error before anything else happens.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import string
import time
from dataclasses import dataclass
from pathlib import Path

from plait.errors import PlaitError


@dataclass
class RunInfo:
    """What a sink may need to know about the run it logs."""

    folder: Path
    name: str  # the run folder's name
    config: dict  # the resolved config
    resume_step: int | None  # resuming from the checkpoint at this step: the steps after it are logged again
    logged_through: int | None  # resuming: the last step the earlier process logged (it may be past resume_step)


class TensorBoardSink:
    package = "tensorboard"

    def __init__(self, run: RunInfo):
        from torch.utils.tensorboard import SummaryWriter  # slow import; only when a run starts

        purge = run.resume_step + 1 if run.resume_step is not None else None  # drop events the killed run wrote after its checkpoint
        self.writer = SummaryWriter(str(run.folder / "tensorboard"), purge_step=purge)

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    """Weights & Biases. WANDB_MODE, WANDB_PROJECT, WANDB_ENTITY, WANDB_DIR... come from the environment
    (WANDB_MODE=offline logs locally). The W&B run id is kept in the run folder, so `--resume` continues that W&B run."""

    package = "wandb"
    id_file = "wandb_run_id.txt"

    def __init__(self, run: RunInfo):
        import wandb

        id_path = run.folder / self.id_file
        if run.resume_step is not None and id_path.is_file():
            run_id = id_path.read_text(encoding="utf-8").strip()
        else:  # a new run (or one that never reached a checkpoint, which starts over): a new W&B run
            run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
            _write_text(id_path, run_id + "\n")
        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or run.config.get("name"), name=run.name, id=run_id,
                                  resume="allow", dir=None if os.environ.get("WANDB_DIR") else str(run.folder),
                                  config=run.config, reinit="create_new")  # never finishes or takes over a run the caller has open
        except Exception as error:  # not logged in, no network, a bad WANDB_* setting
            raise PlaitError(f"tracking: wandb could not start a run: {error}\n"
                             "(run `wandb login`, set WANDB_MODE=offline to log locally, or remove wandb from tracking)") from None
        # W&B ignores a step lower than the last one it holds: skip the steps an earlier process of this run logged
        self.skip_through = run.logged_through if run.logged_through is not None else -1

    def log(self, step: int, values: dict[str, float]) -> None:
        if step > self.skip_through:
            self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()  # flushes and stops W&B's background process


SINKS = {"tensorboard": TensorBoardSink, "wandb": WandbSink}


class NullTracker:
    """What the ranks other than rank 0 log to: nothing (rank 0 logs the metrics, which are reduced over the ranks)."""

    def log(self, step: int, values: dict, **labels) -> None:
        pass

    def close(self) -> None:
        pass


class Tracker:
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

    def _forget_after(self, step: int) -> None:
        """A resumed run repeats the steps after its checkpoint; drop what the killed run logged for them."""
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def log(self, step: int, values: dict, **labels) -> None:
        record = {"step": step, **labels, **values, "time": round(time.time(), 3)}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        numbers = {key: value for key, value in values.items() if isinstance(value, (int, float))}
        for sink in self.sinks:
            sink.log(step, numbers)

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


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
