"""The rows to predict, read a chunk at a time, so that a table larger than memory predicts with flat memory.

A CSV, JSON lines or parquet table (local, or an s3:// or other fsspec URL, downloaded once to the cache as
`read_table_at` does) is read `chunk_rows` rows at a time; a folder of files is one row per file, chunked over
its sorted file list; other layouts (pickles, caption JSON, MELD) are read whole, as training reads them, and
handed out in chunks. Each chunk knows its offset, the position of its first row in the whole input, and the
input's `RowPlaces` answer for positions in the whole input, so a bad row in any chunk is named by its real
line.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from plait.data.features.base import FileFeature
from plait.data.places import RowPlaces
from plait.data.remote import open_cached
from plait.data.tables import read_table_at, resolve_root, table_format
from plait.errors import PlaitError

STREAMED = ("csv", "jsonl", "parquet")


@dataclass
class Chunk:
    index: int  # 0, 1, 2, ... in input order
    offset: int  # the position of its first row in the whole input
    table: pd.DataFrame


def read_chunks(run, input_path: str, chunk_rows: int) -> tuple[Iterator[Chunk], RowPlaces]:
    """The input's chunks, in order, read lazily, and where each row of the whole input is."""
    frames, places = read_frames(run, input_path, chunk_rows)
    return numbered(frames, input_path), places


def read_frames(run, input_path: str, chunk_rows: int) -> tuple[Iterator[pd.DataFrame], RowPlaces]:
    if os.path.isdir(input_path):
        paths = folder_files(input_path)
        frames = (files_table(run, paths[start:start + chunk_rows]) for start in range(0, len(paths), chunk_rows))
        return frames, RowPlaces.of_files(input_path, paths)
    for feature in run.features.values():  # file paths in the table's cells resolve against the table's own folder
        feature.base_dir = resolve_root(input_path, None)
    kind = table_format(input_path)
    if kind not in STREAMED:
        table, places = read_table_at(input_path)
        return (table.iloc[start:start + chunk_rows] for start in range(0, len(table), chunk_rows)), places
    local = local_copy(input_path)
    if kind == "parquet":
        return read_parquet(local, chunk_rows, input_path), RowPlaces.of_file(input_path, kind)
    return read_text_table(local, kind, chunk_rows, input_path), LinePlaces(input_path, local, kind, chunk_rows)


def numbered(frames: Iterator[pd.DataFrame], source: str) -> Iterator[Chunk]:
    """The frames that have rows, as chunks in order; an input without any row is an error."""
    index = offset = 0
    for frame in frames:
        if len(frame):
            yield Chunk(index, offset, frame.reset_index(drop=True))
            index, offset = index + 1, offset + len(frame)
    if not index:
        raise PlaitError(f"{source}: no rows to predict")


def local_copy(url: str) -> str:
    """A local path to read the table from (a remote one is downloaded once into plait's cache)."""
    local = open_cached(url)
    if not os.path.isfile(local):
        raise PlaitError(f"{url}: table not found")
    return local


def read_text_table(local: str, kind: str, chunk_rows: int, url: str) -> Iterator[pd.DataFrame]:
    """A CSV's or JSON lines file's rows, `chunk_rows` at a time; cells as `read_table` gives them (CSV cells stay
    text, an empty cell is NaN)."""
    with open(local, "rb") as handle:
        if kind == "csv":
            reader = pd.read_csv(handle, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8",
                                 chunksize=chunk_rows)
        else:
            reader = pd.read_json(handle, lines=True, dtype=False, chunksize=chunk_rows)
        yield from readable(reader, url, kind)


def read_parquet(local: str, chunk_rows: int, url: str) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(local).iter_batches(batch_size=chunk_rows)
    except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid is a ValueError, its IO errors OSErrors
        raise PlaitError(f"{url}: cannot read as parquet: {str(error).splitlines()[0]}") from None
    yield from readable((batch.to_pandas() for batch in batches), url, "parquet")


def readable(frames, url: str, kind: str) -> Iterator[pd.DataFrame]:
    """`frames`, with a parse error met in a later chunk said the way `read_table` says it."""
    try:
        yield from frames
    except (ValueError, UnicodeDecodeError, OSError, pd.errors.ParserError) as error:
        raise PlaitError(f"{url}: cannot read as {kind}: {str(error).splitlines()[0]}") from None


class LinePlaces(RowPlaces):
    """`line N` of each row of a CSV or JSON lines file, counted by reading the file a second time alongside the
    chunks, only as far as a row that is asked about (a bad one), and keeping the lines of one chunk at a time:
    `RowPlaces.of_file` would hold the whole file's text and every line number."""

    def __init__(self, url: str, local: str, kind: str, chunk_rows: int):
        super().__init__(url)
        self.local, self.kind, self.chunk_rows = local, kind, chunk_rows
        self.starts: Iterator[int] | None = None  # the line each record starts on, from the top of the file
        self.counted = 0  # records taken from `starts`
        self.base, self.lines = 0, []  # lines[i]: the line of record base + i, for the chunk last asked about

    def place(self, position: int) -> tuple[str, str]:
        try:
            line = self.line(position)
        except Exception:  # noqa: BLE001  (naming a bad row must never fail in its turn; the row number stays true)
            line = None
        return self.source, f"line {line}" if line is not None else f"row {position}"

    def line(self, position: int) -> int | None:
        chunk_start = position - position % self.chunk_rows
        if self.starts is None or chunk_start < self.base:
            self.starts, self.counted, self.base, self.lines = record_lines(self.local, self.kind), 0, chunk_start, []
        elif chunk_start > self.base:  # a later chunk: the earlier one's lines are not asked about again
            self.lines = self.lines[chunk_start - self.base:]
            self.base = chunk_start
        while self.counted <= position:
            start = next(self.starts, None)
            if start is None:
                return None
            if self.counted >= self.base:
                self.lines.append(start)
            self.counted += 1
        return self.lines[position - self.base]


def record_lines(local: str, kind: str) -> Iterator[int]:
    """The line each data record starts on (1-based), as `plait.data.places.csv_lines` and `jsonl_lines` count
    them, read as a stream."""
    if kind == "jsonl":  # lines end at \n alone (U+2028 and the like may sit inside a JSON string)
        with open(local, encoding="utf-8-sig", errors="replace", newline="\n") as handle:
            yield from (number for number, line in enumerate(handle, start=1) if line.strip())
        return
    with open(local, encoding="utf-8-sig", errors="replace", newline=None) as handle:  # a lone \r ends a line
        reader = csv.reader(handle)
        before, header = 0, True
        while True:
            limit = csv.field_size_limit(2**31 - 1)  # pandas reads cells of any size; so must the count
            try:
                record = next(reader, None)
            finally:
                csv.field_size_limit(limit)
            if record is None:
                return
            if record and not (len(record) == 1 and not record[0].strip()):  # pandas skips blank and all-space lines
                if not header:
                    yield before + 1
                header = False
            before = reader.line_num


def file_input(run) -> FileFeature:
    """The run's one file input (image, video, audio), which a folder or a list of paths fills."""
    files = [feature for feature in run.features.values() if isinstance(feature, FileFeature)]
    if len(files) != 1:
        names = ", ".join(f"{f.spec.name} ({f.name})" for f in run.features.values())
        raise PlaitError(f"a folder or list of files needs a run with exactly one file input; this run reads {names}: "
                         "give a table instead")
    return files[0]


def files_table(run, paths: list[str]) -> pd.DataFrame:
    """One row per path: the file input's column holds it, every other input is empty (its `missing` policy applies)."""
    feature = file_input(run)
    table = pd.DataFrame({feature.spec.column: [str(Path(path).resolve()) for path in paths]})
    for other in run.features.values():
        if other is not feature:
            table[other.spec.column] = np.nan
    return table


def folder_files(folder: str) -> list[str]:
    paths = sorted(str(path) for path in Path(folder).iterdir() if path.is_file() and not path.name.startswith("."))
    if not paths:
        raise PlaitError(f"{folder}: no files in this folder")
    return paths
