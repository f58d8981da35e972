"""Predictions written to a table file (CSV, JSON lines or parquet), whole or a chunk at a time.

`plait predict` writes each chunk's predictions as a part file in a folder beside the output, named
`.OUTPUT.parts-XXXX`, which every process writes to; rank 0 then joins the parts in chunk order into the one
output, streaming part by part, under a temporary name renamed into place, and removes the folder. The rows
left out under `skip` are listed in the same folder as they are gathered, in input order, and copied to the
skipped list at the end.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from plait.data.dataset import SkippedRow
from plait.data.tables import table_format
from plait.errors import PlaitError
from plait.files import atomic_path
from plait.inference.ranks import together
from plait.distributed import World

WRITABLE = ("csv", "jsonl", "parquet")


def output_kind(path: str | Path) -> str:
    kind = table_format(str(path))
    if kind not in WRITABLE:
        raise PlaitError(f"{path}: cannot write {kind}; write .csv, .jsonl or .parquet")
    return kind


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """CSV, JSON lines or parquet by the file's extension; in a CSV, a column of vectors becomes a column per component
    (`NAME_0`, `NAME_1`, ...)."""
    kind = output_kind(path)
    with atomic_path(path) as temporary:
        write_frame(frame, temporary, kind)


def write_frame(frame: pd.DataFrame, path: Path, kind: str) -> None:
    if kind == "csv":
        spread_vectors(frame).to_csv(path, index=False)
    elif kind == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)


def spread_vectors(frame: pd.DataFrame) -> pd.DataFrame:
    """Each column whose cells are lists of numbers → one column per component."""
    columns = {}
    for name in frame.columns:
        values = frame[name]
        if len(values) and isinstance(values.iloc[0], (list, np.ndarray)):
            matrix = np.asarray(values.tolist())
            columns.update({f"{name}_{i}": matrix[:, i] for i in range(matrix.shape[1])})
        else:
            columns[name] = values
    return pd.DataFrame(columns, index=frame.index)


class Parts:
    """The part files of one output, one per chunk, in a folder beside it. Used as a context manager: the folder
    is removed when the block ends, whether the output was joined or not."""

    def __init__(self, output: Path, folder: Path, kind: str, world: World):
        self.output, self.folder, self.kind, self.world = output, folder, kind, world
        self.skipped_list = folder / "skipped.jsonl"

    @classmethod
    def beside(cls, output_path: str, world: World) -> Parts:
        """Rank 0 makes the folder; every rank gets its name. The output's folder must be one every process sees
        (on one machine it is; across machines, a shared filesystem)."""
        kind, output = output_kind(output_path), Path(output_path)

        def make() -> str | None:
            if not world.is_main:
                return None
            output.parent.mkdir(parents=True, exist_ok=True)
            return tempfile.mkdtemp(prefix=f".{output.name}.parts-", dir=output.parent)

        return cls(output, Path(together(make, world)[0]), kind, world)

    def __enter__(self) -> Parts:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        if self.world.is_main:
            shutil.rmtree(self.folder, ignore_errors=True)

    def part(self, index: int) -> Path:
        return self.folder / f"{index:08d}.{self.kind}"

    def write(self, index: int, frame: pd.DataFrame) -> None:
        if not self.folder.is_dir():
            raise PlaitError(f"{self.folder}: not found from this process; the output's folder must be on a filesystem "
                             "every process sees")
        write_frame(frame, self.part(index), self.kind)

    def add_skipped(self, rows: list[SkippedRow]) -> None:
        """Rank 0 lists rows left out, as training lists them in skipped.jsonl; called in input order."""
        if self.world.is_main and rows:
            with open(self.skipped_list, "a", encoding="utf-8") as listing:
                listing.writelines(json.dumps(row.to_json("predict")) + "\n" for row in rows)

    def finish(self, rows_per_chunk: list[int], skipped_path: Path) -> None:
        """Rank 0 joins the parts into the output and puts the list of skipped rows in `skipped_path` (removing an
        earlier list when none was skipped: it would speak of rows this one kept)."""
        if not self.world.is_main:
            return
        parts = [self.part(index) for index, rows in enumerate(rows_per_chunk) if rows]
        parts = parts or [self.part(0)]  # every row skipped: the first part's columns, no rows
        with atomic_path(self.output) as temporary:
            {"csv": join_csv, "jsonl": join_lines, "parquet": join_parquet}[self.kind](parts, temporary)
        if self.skipped_list.exists():
            with atomic_path(skipped_path) as temporary:
                shutil.copyfile(self.skipped_list, temporary)
        else:
            Path(skipped_path).unlink(missing_ok=True)


def join_csv(parts: list[Path], target: Path) -> None:
    """One header (every part has the same), then each part's rows."""
    header = first_line(parts[0])
    with open(target, "wb") as out:
        out.write(header)
        for part in parts:
            with open(part, "rb") as source:
                if source.readline() != header:
                    raise PlaitError(f"{part.name}: these predictions have other columns than {parts[0].name}'s")
                shutil.copyfileobj(source, out)


def first_line(path: Path) -> bytes:
    with open(path, "rb") as source:
        return source.readline()


def join_lines(parts: list[Path], target: Path) -> None:
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as source:
                shutil.copyfileobj(source, out)


def join_parquet(parts: list[Path], target: Path) -> None:
    """One parquet file, batch by batch, in a schema every part fits: a column that is all empty in one chunk
    (pyarrow's null type there) takes the type the other chunks give it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.unify_schemas([pq.read_schema(part) for part in parts], promote_options="permissive")
    with pq.ParquetWriter(target, schema) as writer:
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches():
                writer.write_table(pa.Table.from_batches([batch]).cast(schema))
