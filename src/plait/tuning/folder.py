"""Where a study keeps things: its config (`study.yaml`) and, unless a storage URL is given, its SQLite database."""

from __future__ import annotations

from pathlib import Path

STUDY_CONFIG = "study.yaml"


def storage_url(study_dir: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(Path(study_dir) / 'study.db').resolve()}"
