"""A FAISS index of embeddings: build it, save and load it with a table of what each position holds, search it.

Embeddings are L2-normalised, so the index ranks by inner product, which is the cosine. Small sets get an exact
flat index; from `IVF_FROM_ROWS` rows an inverted-file index searches only the `nprobe` nearest of its `nlist`
k-means cells, trading a little recall for speed.

A saved index is three files side by side in one folder:
`NAME.faiss` (the index, `faiss.write_index`), `NAME.parquet` (the metadata: one row per index position, such as
the dataset row, label and file) and `NAME.json` (kind, dim, count, nlist, nprobe and what the caller adds, such
as the split and output it was built from).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

from plait.errors import PlaitError
from plait.files import atomic_path, write_atomic

IVF_FROM_ROWS = 50_000  # `auto` builds a flat index below this many rows, an IVF index from it
POINTS_PER_CELL = 39  # FAISS's k-means warns with fewer training points than this per centroid
SUFFIXES = (".faiss", ".parquet", ".json")

# GNU OpenMP keeps its worker threads between parallel regions, and fork copies only the calling thread: a forked
# child (a multiprocessing worker) that searches after this process already did spins forever waiting for threads
# that do not exist. Children search on one thread instead, as PyTorch's DataLoader workers do for the same reason.
# (With torch imported first, FAISS's OpenMP calls can land in torch's libgomp, so this also sets the child's
# torch thread count to 1.)
os.register_at_fork(after_in_child=lambda: faiss.omp_set_num_threads(1))


def _matrix(embeddings: np.ndarray, what: str) -> np.ndarray:
    """A C-contiguous float32 [rows, dim] copy or view, which is what FAISS takes."""
    array = np.ascontiguousarray(embeddings, dtype=np.float32)
    if array.ndim != 2:
        raise PlaitError(f"{what} must be a [rows, dim] matrix, not shape {array.shape}")
    return array


def default_nlist(rows: int) -> int:
    """About 4·√rows cells, but at least `POINTS_PER_CELL` training points per cell and at least one cell."""
    return max(1, min(round(4 * math.sqrt(rows)), rows // POINTS_PER_CELL))


def build_index(embeddings: np.ndarray, kind: str = "auto", nlist: int | None = None, nprobe: int | None = None,
                seed: int = 0) -> faiss.Index:
    """An inner-product index holding `embeddings` [N, D] in row order (position i is row i).

    `kind` is "flat" (exact), "ivf" (`IndexIVFFlat`: k-means cells, trained on the embeddings themselves, with
    `seed` fixing the k-means so a rebuild gives the same index) or "auto" (flat below `IVF_FROM_ROWS` rows).
    `nlist` defaults to `default_nlist(N)` and `nprobe`, the cells searched per query, to max(1, nlist // 8).
    """
    array = _matrix(embeddings, "embeddings")
    rows, dim = array.shape
    if rows == 0:
        raise PlaitError("cannot build an index of no embeddings")
    if kind == "auto":
        kind = "flat" if rows < IVF_FROM_ROWS else "ivf"
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist = nlist or default_nlist(rows)
        if not 1 <= nlist <= rows:
            raise PlaitError(f"an IVF index of {rows} embeddings can have 1 to {rows} cells (nlist), not {nlist}")
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed  # k-means initialisation and subsampling; spherical k-means is already on for IP
        index.train(array)
        index.nprobe = min(nlist, nprobe or max(1, nlist // 8))
    else:
        raise PlaitError(f"unknown index kind {kind!r}: use auto, flat or ivf")
    index.add(array)
    return index


def describe(index: faiss.Index) -> dict:
    """kind, dim, count, nlist and nprobe of an index (nlist and nprobe are None for a flat one)."""
    ivf = faiss.try_extract_index_ivf(index)
    return {"kind": "ivf" if ivf is not None else "flat", "dim": index.d, "count": index.ntotal,
            "nlist": ivf.nlist if ivf is not None else None, "nprobe": ivf.nprobe if ivf is not None else None}


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores (inner products) [Q, k] and index positions [Q, k] of each query's k nearest, most similar first.

    k is capped at the index size. An IVF search that finds fewer than k items in its `nprobe` cells (FAISS
    pads those with position -1) is repeated for those queries over every cell, so every position is real.
    """
    queries = _matrix(queries, "queries")
    if queries.shape[1] != index.d:
        raise PlaitError(f"queries have {queries.shape[1]} dimensions but the index holds {index.d}")
    k = min(k, index.ntotal)
    if k < 1 or len(queries) == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    scores, positions = index.search(queries, k)
    short = np.flatnonzero((positions < 0).any(axis=1))
    ivf = faiss.try_extract_index_ivf(index)
    if len(short) and ivf is not None:
        # faiss.contrib.torch_utils (which pytorch-metric-learning imports) swaps `search` for one that takes no
        # `params`, keeping the original as `search_numpy`
        plain_search = getattr(index, "search_numpy", index.search)
        every_cell = faiss.SearchParametersIVF(nprobe=ivf.nlist)
        scores[short], positions[short] = plain_search(queries[short], k, params=every_cell)
    if (positions < 0).any():
        raise PlaitError(f"the index returned fewer than {k} neighbours for some queries although it holds {index.ntotal}")
    return scores, positions


def save_index(folder: str | os.PathLike, name: str, index: faiss.Index, metadata: pd.DataFrame, info: dict) -> Path:
    """Write `NAME.faiss`, `NAME.parquet` and `NAME.json` into `folder` and return the path of the JSON.

    `metadata` has one row per index position, in position order. The JSON holds `info` (anything
    JSON-serialisable, such as split and output) with kind, dim, count, nlist and nprobe, which describe the
    index and so must not be in `info`.
    """
    if len(metadata) != index.ntotal:
        raise PlaitError(f"index {name!r} holds {index.ntotal} embeddings but its metadata has {len(metadata)} rows")
    described = describe(index)
    clash = sorted(set(info) & set(described))
    if clash:
        raise PlaitError(f"index info cannot set {', '.join(clash)}: they are read from the index itself")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / f"{name}.faiss") as temporary:
        faiss.write_index(index, str(temporary))
    with atomic_path(folder / f"{name}.parquet") as temporary:
        metadata.reset_index(drop=True).to_parquet(temporary, index=False)
    # the JSON goes last: while it is missing, the index does not count as saved
    write_atomic(folder / f"{name}.json", json.dumps({**described, **info}, indent=2))
    return folder / f"{name}.json"


def saved_indexes(folder: str | os.PathLike) -> list[str]:
    """Names of the complete indexes (all three files) in `folder`, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.json")
                  if all(path.with_suffix(suffix).is_file() for suffix in SUFFIXES))


def load_index(folder: str | os.PathLike, name: str) -> tuple[faiss.Index, pd.DataFrame, dict]:
    """The index, its metadata and its info as `save_index` wrote them."""
    folder = Path(folder)
    missing = [f"{name}{suffix}" for suffix in SUFFIXES if not (folder / f"{name}{suffix}").is_file()]
    if missing:
        present = saved_indexes(folder)
        where = (f"{folder} does not exist" if not folder.is_dir() else
                 f"{folder} holds {', '.join(present)}" if present else f"{folder} holds no index")
        raise PlaitError(f"no index {name!r} ({', '.join(missing)} missing): {where}")
    index = faiss.read_index(str(folder / f"{name}.faiss"))
    metadata = pd.read_parquet(folder / f"{name}.parquet")
    info = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    if len(metadata) != index.ntotal:
        raise PlaitError(f"index {name!r} in {folder} holds {index.ntotal} embeddings but its metadata "
                         f"{len(metadata)} rows: the files do not belong together")
    return index, metadata, info


def neighbours_table(scores: np.ndarray, positions: np.ndarray, metadata: pd.DataFrame, query_ids) -> pd.DataFrame:
    """One row per query × neighbour: `query` (from `query_ids`), `rank` (1 = nearest), `score`, then the
    metadata columns of the neighbour; queries in the given order, each one's neighbours by rank."""
    scores, positions = np.asarray(scores), np.asarray(positions)
    query_ids = list(query_ids)
    if positions.shape != scores.shape or len(query_ids) != len(positions):
        raise PlaitError(f"{len(query_ids)} query ids for scores of shape {scores.shape} and positions of shape "
                         f"{positions.shape}: give one id per row of both")
    clash = sorted({"query", "rank", "score"} & set(metadata.columns))
    if clash:
        raise PlaitError(f"index metadata cannot have columns named {', '.join(clash)}: the neighbour table uses them")
    k = positions.shape[1] if positions.ndim == 2 else 0
    table = pd.DataFrame({
        "query": pd.Series(query_ids).repeat(k).to_numpy(),
        "rank": np.tile(np.arange(1, k + 1), len(query_ids)),
        "score": scores.reshape(-1),
    })
    neighbours = metadata.iloc[positions.reshape(-1)].reset_index(drop=True)
    return pd.concat([table, neighbours], axis=1)
