"""The cache folder as a whole: where it is, how its keys are made, what it holds and how often it hit. Plain
files and JSON only (no torch), so `plait cache info` and `plait cache clear` answer at once."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

CACHE_ENV = "PLAIT_CACHE_DIR"


def cache_folder(configured: str | None = None) -> Path:
    """`data.cache_dir`, else $PLAIT_CACHE_DIR, else ~/.cache/plait."""
    return Path(configured or os.environ.get(CACHE_ENV) or "~/.cache/plait").expanduser()


def digest(*parts) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        hasher.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
        hasher.update(b"\0")
    return hasher.hexdigest()


def remove_abandoned(folder: Path, older_than_s: float = 3600) -> int:
    """Delete temporary shard folders left by killed writers, and encoded splits left by killed processes
    (`.encoded-*`, see plait.data.shared_split); only old ones: a young one may still be in use."""
    removed = 0
    for temporary in [*folder.glob("*/.tmp-shard-*"), *folder.glob(".encoded-*")]:
        if time.time() - temporary.stat().st_mtime > older_than_s:
            shutil.rmtree(temporary, ignore_errors=True)
            removed += 1
    return removed


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def summarise(folder: Path) -> list[dict]:
    """One row per namespace: what it holds, its size, and the hit rate over every recorded session."""
    totals: dict[str, dict[str, int]] = {}
    for stats_file in sorted((folder / "stats").glob("*.json")):
        for namespace, count in json.loads(stats_file.read_text(encoding="utf-8")).items():
            total = totals.setdefault(namespace, {"hits": 0, "misses": 0})
            total["hits"] += count["hits"]
            total["misses"] += count["misses"]
    rows = []
    for meta_file in sorted(folder.glob("*/meta.json")):
        namespace = meta_file.parent
        cells = sum(len(json.loads(k.read_text(encoding="utf-8"))["keys"]) for k in namespace.glob("shard-*/keys.json"))
        count = totals.get(namespace.name, {"hits": 0, "misses": 0})
        lookups = count["hits"] + count["misses"]
        rows.append({
            "namespace": namespace.name,
            "cells": cells,
            "shards": len(list(namespace.glob("shard-*"))),
            "bytes": folder_bytes(namespace),
            "hits": count["hits"],
            "misses": count["misses"],
            "hit_rate": count["hits"] / lookups if lookups else None,
            "abandoned": len(list(namespace.glob(".tmp-shard-*"))),
        })
    return rows
