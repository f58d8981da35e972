"""What every run sets up: torch (seeds, threads, device), its folder, its preprocessor, its table and its cache."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from plait.config import Config
from plait.data import remote
from plait.data.cache import FeatureCache
from plait.data.dataset import SKIP_HINT, EncodedSplit, Preprocessor
from plait.data.division import ALONE, Division
from plait.data.tables import SPLITS, Data, read_table_at, require_columns, resolve_root
from plait.errors import PlaitError
from plait.files import write_atomic
from plait.training.checkpoint import has_checkpoint


def new_run_dir(config: Config, parent: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = Path(parent) / f"{config.name}-{stamp}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = Path(parent) / f"{config.name}-{stamp}-{suffix}"
    return folder


def configure_torch(train_config) -> torch.device:
    """Seeds, threads and determinism; returns the device to train on."""
    torch.manual_seed(train_config.seed)
    np.random.seed(train_config.seed % 2**32)
    random.seed(train_config.seed)
    if train_config.threads:
        torch.set_num_threads(train_config.threads)
    if train_config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if train_config.device == "cuda" and not torch.cuda.is_available():
        raise PlaitError("train.device is cuda but no CUDA device is available")
    use_cuda = train_config.device == "cuda" or (train_config.device == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if use_cuda else "cpu")


def read_data(config: Config, preprocessor: Preprocessor) -> Data:
    source = config.data.table
    table, places = read_table_at(source, config.data.format, config.data.csv_separator)
    require_columns(table, preprocessor.required_columns(), source)
    return Data.of(table, config.data.split, config.data.filter, source, places)


def make_cache(config: Config) -> FeatureCache | None:
    return FeatureCache(config.data.cache_dir) if config.data.cache else None


def encode_split(data: Data, preprocessor: Preprocessor, split: str, config: Config,
                 cache: FeatureCache | None = None, skip_hint: str = SKIP_HINT, limit: int | None = None,
                 division: Division = ALONE, processes_here: int = 1) -> EncodedSplit:
    """One split (its first `limit` rows, when given), encoded; through `cache` (default: the config's own) when the
    config uses one, decoding this process's `division` of its misses. A bad cell's error ends with `skip_hint`, the
    way to skip such rows in the command that meets it. Decoding threads: data.workers, else this machine's cores
    shared among its `processes_here`."""
    rows = data.rows(split)[:limit]
    positions = np.flatnonzero((data.split_of_row == split).to_numpy())[:limit]
    cache = cache or make_cache(config)
    workers = config.data.workers or max(1, (os.cpu_count() or 1) // processes_here)
    return preprocessor.encode(rows, split, data.places, config.data.on_bad_sample, row_numbers=positions.tolist(),
                               cache=cache, workers=workers, skip_hint=skip_hint, division=division)


def make_preprocessor(config: Config) -> Preprocessor:
    """Also sets how this process reaches remote files: every verb builds its preprocessor before reading data."""
    remote.configure(config.data.storage, config.data.cache_dir)
    return Preprocessor(config, resolve_root(config.data.table, config.data.root))


def chosen_checkpoint(folder: Path, which: str) -> Path:
    """`checkpoints/WHICH`, or `checkpoints/last` when the run has no such checkpoint (e.g. no best yet)."""
    wanted = Path(folder) / "checkpoints" / which
    return wanted if has_checkpoint(wanted) else Path(folder) / "checkpoints" / "last"


def is_export(folder: Path) -> bool:
    """A folder written by `plait export`: the weights sit beside config.yaml, with no checkpoints/ folder."""
    return (folder / "model.safetensors").is_file() and not (folder / "checkpoints").is_dir()


def write_json(path: Path, value) -> None:
    write_atomic(path, json.dumps(value, indent=2))


def nonempty_splits(data: Data) -> list[str]:
    return [split for split in SPLITS if data.count(split)]
