"""Arrays from files, local or at any fsspec URL: one array file for a cell (`load_array_file`), and the two array
table formats.

`npy`: a folder of `NAME.npy` files, one array per column, every array with one entry per row (the same first
dimension N); or one `.npz` file holding such arrays. A 1-D array gives a cell per row holding a number (or a
string); an array with more dimensions gives each row the view `array[i]` of a memory-mapped file, so nothing is
read until a cell is used and a dataset larger than memory stays on disk. A `split.npy` of strings is the split
column like any other; a `split.txt` (or `split`) text file with one split name per line works too.

`pickle`: one pickle file holding a list of dicts (one per row), a dict of equal-length lists or arrays (one per
column) or a dict of dicts (one row per key, the key in column `key`); or a folder (or `s3://` prefix) of pickle
files, one row per file, each holding a dict whose keys become columns, with the file's name in column `file`.
Arrays stay NumPy arrays in the table's cells. Pickles are read by the restricted unpickler (`plait.data.pickles`).

A remote file (`s3://...`) is downloaded once into the cache folder's `downloads/` (`plait.data.remote`) and
memory-mapped from there. A `.npz` member cannot be memory-mapped (it is a zip entry): it is read into memory.
"""

from __future__ import annotations

import mmap
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from plait.data import remote
from plait.data.pickles import safe_load_pickle
from plait.data.places import RowPlaces
from plait.errors import PlaitError

ARRAY_FILES = {".npy": "npy", ".npz": "npz", ".pkl": "pickle", ".pickle": "pickle"}
SPLIT_TEXT_FILES = ("split.txt", "split")
READERS = 16  # files of a folder read at once (network latency, not CPU, is what they wait on)


def suffix(url: str) -> str:
    return PurePosixPath(url.split("?")[0].rstrip("/")).suffix.lower()


def join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}"


RELEASE_EVERY_BYTES = 4 * 2**20
_read_since_release: dict[int, int] = {}


def release_pages(view: np.ndarray) -> None:
    """Call after reading a memory-mapped array (a row of an `npy` table). A map keeps every page it has read in
    the process's resident set until it is closed, so one pass over a dataset larger than memory would grow it to
    the dataset's size. After each 4 MiB read from one map, its pages are dropped (`MADV_DONTNEED`): they are
    clean file pages, so a later read faults them back in from the page cache. (4 MiB, not more: a fault maps the
    neighbouring pages too, so rows read in random order leave several times their own size resident.)"""
    mapping = getattr(view, "_mmap", None)
    if mapping is None:
        return
    read = _read_since_release.get(id(mapping), 0) + view.nbytes
    if read >= RELEASE_EVERY_BYTES:
        mapping.madvise(mmap.MADV_DONTNEED)
        read = 0
    _read_since_release[id(mapping)] = read


def load_array_file(path_or_url: str, mmap: bool = True):
    """One `.npy` file → an array (memory-mapped when local and `mmap`), one `.npz` → a dict of name → array,
    one `.pkl`/`.pickle` → what it holds (plain containers, numbers, strings, arrays). Never runs pickled code:
    `.npy`/`.npz` files holding Python objects are refused, and pickles go through the restricted unpickler."""
    kind = ARRAY_FILES.get(suffix(path_or_url))
    if kind is None:
        raise PlaitError(f"{path_or_url}: not an array file (.npy, .npz, .pkl or .pickle)")
    return load_kind(path_or_url, kind, mmap)


def load_kind(path_or_url: str, kind: str, mmap: bool = True):
    try:
        local = remote.open_cached(path_or_url)  # a remote file is downloaded once, then read (and mapped) from disk
        if os.path.getsize(local) == 0:
            raise PlaitError(f"{path_or_url}: empty file (0 bytes)")
        if kind == "pickle":
            with open(local, "rb") as handle:
                return safe_load_pickle(handle, path_or_url)
        if kind == "npy":
            return np.load(local, mmap_mode="r" if mmap else None, allow_pickle=False)
        with np.load(local, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except PlaitError:  # a refused pickle, or a remote file that cannot be fetched: already names the file
        raise
    except FileNotFoundError:
        raise PlaitError(f"{path_or_url}: file not found") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PlaitError(f"{path_or_url}: cannot read as {kind}: {reason}") from None


def folder_files(url: str, suffixes: tuple[str, ...]) -> list[str] | None:
    """The names (not paths) of the files in folder `url` ending in `suffixes`, sorted; None when `url` is not a
    folder."""
    filesystem, path = remote.filesystem(url)

    def listing() -> list[str] | None:
        if not filesystem.isdir(path):
            return None
        return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in filesystem.ls(path, detail=False)]

    names = remote.retrying(url, listing)  # a listing denied or failing for good is a RemoteError naming the URL
    return None if names is None else sorted(name for name in names if name.lower().endswith(suffixes))


def cells(array: np.ndarray) -> np.ndarray:
    """A column's cells: the values of a 1-D array, or one row view `array[i]` per row (no copy: a memory-mapped
    array stays on disk until a cell is used)."""
    if array.ndim == 1:
        return np.asarray(array)
    column = np.empty(len(array), dtype=object)
    for row in range(len(array)):
        column[row] = array[row]
    return column


def column_of(values: list) -> np.ndarray | list:
    """A list of cell values: kept as objects when any is an array or a list (pandas would try to unpack them)."""
    if any(isinstance(value, (np.ndarray, list, tuple)) for value in values):
        column = np.empty(len(values), dtype=object)
        for row, value in enumerate(values):
            column[row] = value
        return column
    return values


def columns_frame(columns: dict[str, object], files: dict[str, str]) -> pd.DataFrame:
    """Named columns (arrays with one entry per row, or lists) → a table; `files[name]` says where each came from."""
    rows, first = None, None
    for name, values in columns.items():
        if not isinstance(values, (np.ndarray, list, tuple)) or getattr(values, "ndim", 1) == 0:
            raise PlaitError(f"{files[name]}: holds a single {type(values).__name__}, not one value per row")
        if rows is None:
            rows, first = len(values), name
        elif len(values) != rows:
            raise PlaitError(f"{files[name]} has {len(values)} rows (first dimension) but {files[first]} has {rows}; "
                             "every column needs one entry per row")
    return pd.DataFrame({name: cells(v) if isinstance(v, np.ndarray) else column_of(list(v)) for name, v in columns.items()})


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    names = list(dict.fromkeys(key for row in rows for key in row))
    return pd.DataFrame({str(name): column_of([row.get(name) for row in rows]) for name in names})


def read_npy_table(url: str) -> pd.DataFrame:
    """`data.format: npy`: a folder of NAME.npy files or one .npz file (see the module's docstring)."""
    if suffix(url) == ".npz":
        arrays = load_kind(url, "npz")
        return columns_frame(arrays, {name: f"{url}, array {name!r}" for name in arrays})
    names = folder_files(url, (".npy",))
    if names is None:
        raise PlaitError(f"{url}: format npy wants a folder of NAME.npy files (one array per column) or a .npz file")
    if not names:
        raise PlaitError(f"{url}: no .npy files (format npy wants one NAME.npy file per column)")
    files = {name[: -len(".npy")]: join(url, name) for name in names}
    with ThreadPoolExecutor(READERS) as pool:
        columns = dict(zip(files, pool.map(lambda file: load_kind(file, "npy"), files.values())))
    if "split" not in columns:
        texts = folder_files(url, SPLIT_TEXT_FILES) or []
        for name in (n for n in SPLIT_TEXT_FILES if n in texts):
            files["split"] = join(url, name)
            lines = remote.read_bytes(files["split"]).decode("utf-8").splitlines()
            columns["split"] = [line.strip() for line in lines if line.strip()]
            break
    return columns_frame(columns, files)


def read_pickle_table(url: str) -> pd.DataFrame:
    """`data.format: pickle`: one pickle of rows or columns, or a folder of pickles, one row per file."""
    names = folder_files(url, (".pkl", ".pickle"))
    if names is None:
        return pickle_frame(load_kind(url, "pickle"), url)
    if not names:
        raise PlaitError(f"{url}: no .pkl or .pickle files (format pickle on a folder reads one row per file)")
    with ThreadPoolExecutor(READERS) as pool:
        contents = pool.map(lambda name: load_kind(join(url, name), "pickle"), names)
        rows = []
        for name, content in zip(names, contents):
            if not isinstance(content, dict):
                raise PlaitError(f"{join(url, name)}: holds a {type(content).__name__}; a folder of pickles needs one "
                                 "dict per file (its keys become columns)")
            rows.append({"file": name, **content})
    table = rows_frame(rows)
    table.attrs["places"] = RowPlaces.of_files(url, [join(url, name) for name in names])
    return table


def pickle_frame(content, source: str) -> pd.DataFrame:
    if isinstance(content, (list, tuple)):
        odd = next((row for row in content if not isinstance(row, dict)), None)
        if odd is not None:
            raise PlaitError(f"{source}: holds a list of {type(odd).__name__}; a pickled table is a list of dicts "
                             "(one per row) or a dict of columns")
        return rows_frame(list(content))
    if isinstance(content, dict):
        if content and all(isinstance(value, dict) for value in content.values()):
            return rows_frame([{"key": key, **row} for key, row in content.items()])
        return columns_frame({str(k): v for k, v in content.items()}, {str(k): f"{source}, key {k!r}" for k in content})
    raise PlaitError(f"{source}: holds a {type(content).__name__}; a pickled table is a list of dicts (one per row), "
                     "a dict of equal-length columns, or a dict of dicts (one per row)")
