"""Read a manifest (CSV, JSONL, Parquet, or a dataset layout such as MELD) from any fsspec URL into a DataFrame, and divide its rows into splits."""

from __future__ import annotations

from pathlib import PurePosixPath

import fsspec
import numpy as np
import pandas as pd

from plait.data.meld import read_meld
from plait.errors import PlaitError
from plait.schema import nearest

SPLIT_NAMES = {
    "train": "train", "training": "train",
    "validation": "validation", "val": "validation", "valid": "validation", "dev": "validation",
    "test": "test", "testing": "test",
}
SPLITS = ("train", "validation", "test")


def table_format(url: str, declared: str = "auto") -> str:
    if declared != "auto":
        return declared
    suffix = PurePosixPath(url.split("?")[0]).suffix.lower()
    formats = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
    if suffix not in formats:
        raise PlaitError(f"{url}: cannot tell the table format from {suffix or 'no extension'!r}; set data.format")
    return formats[suffix]


def read_table(url: str, declared_format: str = "auto", csv_separator: str = ",") -> pd.DataFrame:
    """Cells come back as they are written: CSV cells stay text (so `007` stays `007`), an empty cell is NaN."""
    kind = table_format(url, declared_format)
    if kind == "meld":
        return read_meld(url)
    try:
        with fsspec.open(url, "rb") as handle:
            if kind == "csv":
                return pd.read_csv(handle, sep=csv_separator, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
            if kind == "jsonl":
                return pd.read_json(handle, lines=True, dtype=False)
            return pd.read_parquet(handle)
    except FileNotFoundError:
        raise PlaitError(f"{url}: table not found") from None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise PlaitError(f"{url}: cannot read as {kind}: {str(error).splitlines()[0]}") from None


def require_columns(table: pd.DataFrame, wanted: dict[str, str], source: str) -> None:
    """`wanted` maps column → who needs it (`input photo`); a missing one is an error naming the nearest column."""
    for column, user in wanted.items():
        if column not in table.columns:
            hint = nearest(column, table.columns)
            suggestion = f"did you mean {hint!r}?" if hint else f"columns: {', '.join(map(str, table.columns))}"
            raise PlaitError(f"{source}: no column {column!r} (needed by {user}); {suggestion}")


def assign_splits(table: pd.DataFrame, split_config, source: str) -> pd.Series:
    """One of `train` / `validation` / `test` per row."""
    if split_config.column is not None:
        require_columns(table, {split_config.column: "data.split.column"}, source)
        names = []
        for row, value in enumerate(table[split_config.column]):
            name = SPLIT_NAMES.get(str(value).strip().lower())
            if name is None:
                raise PlaitError(f"{source}, row {row}, column {split_config.column!r}: unknown split {value!r}; use train, validation or test")
            names.append(name)
        return pd.Series(names, index=table.index)
    return random_split(table, split_config, source)


def random_split(table: pd.DataFrame, split_config, source: str) -> pd.Series:
    """Seeded shuffle; with `stratify`, each value of that column is divided in the same proportions."""
    rng = np.random.default_rng(split_config.seed)
    if split_config.stratify:
        require_columns(table, {split_config.stratify: "data.split.stratify"}, source)
        groups = [np.flatnonzero(table[split_config.stratify].astype(str).to_numpy() == value) for value in sorted(table[split_config.stratify].astype(str).unique())]
    else:
        groups = [np.arange(len(table))]
    names = np.empty(len(table), dtype=object)
    for rows in groups:
        rows = rng.permutation(rows)
        n_train = int(round(split_config.ratios[0] * len(rows)))
        n_validation = int(round(split_config.ratios[1] * len(rows)))
        names[rows[:n_train]] = "train"
        names[rows[n_train:n_train + n_validation]] = "validation"
        names[rows[n_train + n_validation:]] = "test"
    return pd.Series(names, index=table.index)


def resolve_root(table_url: str, root: str | None) -> str:
    """The folder relative file paths in cells resolve against."""
    if root:
        return root
    if "://" in table_url:
        return table_url.rsplit("/", 1)[0]
    return str(PurePosixPath(table_url).parent)
