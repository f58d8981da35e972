"""The preprocessing cache: decoded, preprocessed cells (frames, spectrograms, resized images, token ids) stored
once on disk and read back through memory maps, so decoding is a one-time cost shared by every run.

Layout under the cache folder, one namespace per feature type + preprocessing settings (+ fitted state):

    video-3f2a…/meta.json                what the namespace holds (for `plait cache info`)
    video-3f2a…/shard-<id>/keys.json     cell keys (content fingerprints), in row order; written last
    video-3f2a…/shard-<id>/<field>.npy   every cell's values of one field, flattened and concatenated
    video-3f2a…/shard-<id>/<field>.shape.npy   [cells, ndim]: each cell's shape
    stats/<id>.json                      hits and misses of one session

A cell's key is the fingerprint of its content (the file's bytes, or the text), so an edited file misses while
its neighbours hit, and a change of settings starts a new namespace. A shard is written into a temporary
folder and renamed into place in one step, so a kill mid-write or two concurrent writers never leave a
half-written shard that a reader would see; a cell written twice by racing writers is harmless.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from plait.data.cache_folder import cache_folder, digest
from plait.data.division import ALONE, Division
from plait.errors import BadSample, MissingValue
from plait.files import write_atomic


SHARD_CELLS = 256  # cells per shard: bounds the memory held before a write and the work lost to a kill
SHARD_BYTES = 256 * 2**20


def as_fields(cell) -> dict[str, np.ndarray]:
    """A cell (a tensor, or a dict of tensors) → named arrays; a plain tensor is the field `value`."""
    tensors = cell if isinstance(cell, dict) else {"value": cell}
    return {name: tensor.numpy() for name, tensor in tensors.items()}


class Shard:
    """One finished shard: cell `row` of every field, as tensors.

    Cells are read with `pread` into fresh buffers rather than through a memory map: a map keeps every page it has
    read in the process's resident set, so an epoch over a dataset larger than memory would grow it without end."""

    def __init__(self, folder: Path, plain: bool):
        self.folder, self.plain = folder, plain
        self.keys: list[str] = json.loads((folder / "keys.json").read_text(encoding="utf-8"))["keys"]
        self._fields: dict[str, tuple[Path, np.dtype, int, np.ndarray, np.ndarray]] | None = None

    def fields(self):
        """name → (values file, dtype, byte offset of its data, shape per cell, element offset per cell)."""
        if self._fields is None:
            self._fields = {}
            for values_file in sorted(self.folder.glob("*.npy")):
                if values_file.name.endswith(".shape.npy"):
                    continue
                name = values_file.name[: -len(".npy")]
                shapes = np.load(self.folder / f"{name}.shape.npy")
                offsets = np.concatenate([[0], np.cumsum(np.prod(shapes, axis=1, dtype=np.int64))])
                header = np.load(values_file, mmap_mode="r")  # only to learn the dtype and where the data starts
                self._fields[name] = (values_file, header.dtype, header.offset, shapes, offsets)
                del header
        return self._fields

    def read(self, row: int):
        cell = {}
        for name, (values_file, dtype, start, shapes, offsets) in self.fields().items():
            values = np.empty(int(offsets[row + 1] - offsets[row]), dtype=dtype)
            with open(values_file, "rb", buffering=0) as handle:
                os.preadv(handle.fileno(), [values], start + int(offsets[row]) * dtype.itemsize)
            cell[name] = torch.from_numpy(values.reshape(shapes[row]))
        return cell["value"] if self.plain else cell


class ShardStore:
    """The shards of one namespace: look cells up by key, add new cells, read them back."""

    def __init__(self, folder: Path, meta: dict):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "meta.json").is_file():
            write_atomic(self.folder / "meta.json", json.dumps(meta, indent=2, default=str))
        self.shards: dict[str, Shard] = {}
        self.index: dict[str, tuple[str, int]] = {}
        self.pending: list[tuple[str, dict[str, np.ndarray]]] = []
        self.pending_keys: set[str] = set()
        self.pending_plain = False
        self.pending_bytes = 0
        self.refresh()

    def refresh(self) -> None:
        """Pick up shards written since (by this process or a concurrent one)."""
        for keys_file in sorted(self.folder.glob("shard-*/keys.json")):
            name = keys_file.parent.name
            if name in self.shards:
                continue
            plain = json.loads(keys_file.read_text(encoding="utf-8")).get("plain", False)
            shard = self.shards[name] = Shard(keys_file.parent, plain)
            for row, key in enumerate(shard.keys):
                self.index.setdefault(key, (name, row))

    def __contains__(self, key: str) -> bool:
        return key in self.index or key in self.pending_keys

    def settle(self, division: Division, failures: dict[str, Exception] | None = None) -> dict[str, Exception]:
        """Write this process's share, wait for the others of `division` to write theirs, and see their shards;
        the cells that failed anywhere in the group, with why."""
        self.flush()
        failed = division.settle(failures or {})
        if division.shared:
            self.refresh()
        return failed

    def add(self, key: str, cell) -> None:
        fields = as_fields(cell)
        self.pending.append((key, fields))
        self.pending_keys.add(key)
        self.pending_plain = not isinstance(cell, dict)
        self.pending_bytes += sum(array.nbytes for array in fields.values())
        if len(self.pending) >= SHARD_CELLS or self.pending_bytes >= SHARD_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the pending cells as one shard: into a temporary folder, then renamed into place."""
        if not self.pending:
            return
        name = f"shard-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:12]}"
        temporary = self.folder / f".tmp-{name}"
        temporary.mkdir()
        for field_name in self.pending[0][1]:
            arrays = [fields[field_name] for _, fields in self.pending]
            np.save(temporary / f"{field_name}.npy", np.concatenate([a.reshape(-1) for a in arrays]))
            np.save(temporary / f"{field_name}.shape.npy", np.array([a.shape for a in arrays], dtype=np.int64))
        keys = {"keys": [key for key, _ in self.pending], "plain": self.pending_plain}
        (temporary / "keys.json").write_text(json.dumps(keys), encoding="utf-8")
        os.rename(temporary, self.folder / name)  # one step: readers see the whole shard or none of it
        self.pending, self.pending_keys, self.pending_bytes = [], set(), 0
        self.refresh()

    def read(self, key: str):
        shard, row = self.index[key]
        return self.shards[shard].read(row)


@dataclass
class CachedCells:
    """One input of an encoded split whose cells live in the cache: a batch is read from the memory-mapped
    shards and stacked by the feature's own `stack`. `keys[i]` is None for a missing cell."""

    column: object
    store: ShardStore
    keys: list[str | None]

    def __len__(self) -> int:
        return len(self.keys)

    def select(self, indices) -> dict[str, torch.Tensor]:
        keys = [self.keys[i] for i in torch.as_tensor(indices).tolist()]
        return self.column.stack([None if key is None else self.store.read(key) for key in keys])

    def subset(self, positions: list[int]) -> CachedCells:
        return CachedCells(self.column, self.store, [self.keys[i] for i in positions])


@dataclass
class Stats:
    hits: int = 0
    misses: int = 0
    started: float = field(default_factory=time.time)


class CachedFeature:
    """Wraps a feature so that `encode` returns the cell's cache key (decoding only on a miss) and `stack`
    returns `CachedCells`. The dataset's bad-sample and missing-value handling work unchanged through it."""

    def __init__(self, column, store: ShardStore, stats: Stats):
        self.column, self.store, self.stats = column, store, stats
        self.spec = column.spec
        self.keys: dict[str, str] = {}  # cell → fingerprint, so a file is read for it once
        self.cell_keys: dict[int, tuple] = {}  # id(array cell) → (cell, fingerprint): hashed once per split, not twice
        self.prefetched: set[str] = set()  # keys decoded by `prefetch`: already counted as misses
        self.last_from_cache = False  # whether the last `encode` found its cell stored (else it decoded it)
        self.failed: dict[str, Exception] = {}  # keys `prefetch` (here or in another process) could not decode, and why

    def fingerprint(self, value) -> str:
        if not isinstance(value, str):  # an array cell: str() would summarise it ("[0. 1. ... 9.]"): memo by identity
            seen = self.cell_keys.get(id(value))
            if seen is None or seen[0] is not value:  # the cell is held, so its id cannot go to another object
                seen = self.cell_keys[id(value)] = (value, self.column.fingerprint(value))
            return seen[1]
        if str(value) not in self.keys:
            self.keys[str(value)] = self.column.fingerprint(value)
        return self.keys[str(value)]

    def encode(self, value) -> str:
        key = self.fingerprint(value)
        if key in self.failed:
            problem = self.failed[key]
            raise type(problem)(*problem.args)
        if key in self.prefetched:  # decoded moments ago by `prefetch`; a second row with the same cell is a hit
            self.prefetched.discard(key)
            self.last_from_cache = False
            return key
        self.last_from_cache = key in self.store
        if self.last_from_cache:
            self.stats.hits += 1
        else:
            self.store.add(key, self.column.encode(value))
            self.stats.misses += 1
        return key

    def prefetch(self, values: list, workers: int, division: Division = ALONE) -> None:
        """Fingerprint `values` and decode those not cached yet on `workers` threads (PyAV and Pillow do the work
        outside the GIL). With several processes filling the cache (`division`), this one decodes only its share of
        the missing cells and returns once every process has written its own. A cell that fails to decode is kept
        in `failed` with its problem, which `encode` reports with its row under the bad-sample policy (so no other
        process decodes it again to find out); a file that cannot even be fingerprinted is left for `encode`."""
        from concurrent.futures import ThreadPoolExecutor

        from plait.console import progress_bar

        def fingerprint(value):
            try:
                return self.fingerprint(value), value
            except (BadSample, MissingValue, OSError):
                return None

        def load(item):
            key, value = item
            try:
                return key, self.column.encode(value), None
            except (BadSample, MissingValue) as problem:
                return key, None, problem
            except OSError:
                return key, None, None

        def windows(function, items):  # a window at a time: results wait in memory only until taken
            window = workers * 8
            with ThreadPoolExecutor(workers) as pool:
                for start in range(0, len(items), window):
                    yield from pool.map(function, items[start:start + window])

        by_key = dict(item for item in progress_bar(windows(fingerprint, values),
                                                    f"reading {self.spec.name}", total=len(values)) if item is not None)
        missing = division.agree([key for key in by_key if key not in self.store])
        mine = [(key, by_key[key]) for key in division.mine(missing) if key in by_key]
        failures: dict[str, Exception] = {}
        threads = f"{workers} threads" + (f", share {division.index + 1} of {division.count}" if division.shared else "")
        for key, cell, problem in progress_bar(windows(load, mine), f"decoding {self.spec.name} ({threads})",
                                               total=len(mine)):
            if problem is not None:
                failures[key] = problem
            elif cell is not None and key not in self.store:
                self.store.add(key, cell)
                self.prefetched.add(key)
                self.stats.misses += 1
        self.failed.update(self.store.settle(division, failures))

    def stack(self, keys: list[str | None]) -> CachedCells:
        self.cell_keys = {}  # the split is encoded: let go of its cells
        self.store.flush()
        return CachedCells(self.column, self.store, list(keys))


class FeatureCache:
    """The cache folder: a store per feature namespace, and the session's hit/miss counts."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = cache_folder(str(folder) if folder else None)
        self.stores: dict[str, ShardStore] = {}
        self.stats: dict[str, Stats] = {}

    def namespace(self, column) -> str:
        settings = {key: getattr(column.spec, key) for key in column.cache_keys}
        identity = digest(column.name, column.cache_version, settings, column.state_dict())
        return f"{column.name}-{identity[:16]}"

    def store(self, namespace: str, meta: dict) -> ShardStore:
        if namespace not in self.stores:
            self.stores[namespace] = ShardStore(self.folder / namespace, meta)
            self.stats[namespace] = Stats()
        return self.stores[namespace]

    def wrap(self, column) -> CachedFeature:
        namespace = self.namespace(column)
        settings = {key: getattr(column.spec, key) for key in column.cache_keys}
        store = self.store(namespace, {"feature": column.name, "settings": settings})
        return CachedFeature(column, store, self.stats[namespace])

    def save_stats(self) -> None:
        """Record this session's hits and misses (one small file per session: no writer ever waits on another)."""
        counts = {ns: {"hits": s.hits, "misses": s.misses} for ns, s in self.stats.items() if s.hits or s.misses}
        if not counts:
            return
        folder = self.folder / "stats"
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}.json", json.dumps(counts))
        for stats in self.stats.values():
            stats.hits = stats.misses = 0
