"""Where a run folder keeps its final metrics: `evaluation/SPLIT.json`, written by `Run.write_evaluation` and read by
the report and by compare."""

from __future__ import annotations

import json
from pathlib import Path


def evaluation_file(folder: Path, split: str) -> Path:
    return Path(folder) / "evaluation" / f"{split}.json"


def read_evaluation(folder: Path, split: str) -> dict | None:
    """The saved metrics of `split`, or None when the run has not evaluated it."""
    path = evaluation_file(folder, split)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
