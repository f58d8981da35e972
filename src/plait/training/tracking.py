"""Where metrics go: `metrics.jsonl` (one JSON object per logged step or epoch) and TensorBoard events."""

from __future__ import annotations

import json
import time
from pathlib import Path


class Tracker:
    def __init__(self, run_dir: Path, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        if resume_step is not None:
            self._forget_after(resume_step)
        from torch.utils.tensorboard import SummaryWriter  # slow import; only when a run starts

        purge = resume_step + 1 if resume_step is not None else None
        self.tensorboard = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=purge)
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
        for key, value in values.items():
            if isinstance(value, (int, float)):
                self.tensorboard.add_scalar(key, value, step)

    def close(self) -> None:
        self.file.close()
        self.tensorboard.close()


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
