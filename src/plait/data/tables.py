"""Read a manifest (CSV, JSONL, Parquet, arrays in .npy files or pickles, or a dataset layout such as MELD or an
image–caption layout) from any fsspec URL into a DataFrame, and divide its rows into splits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from plait.data.arrays import read_npy_table, read_pickle_table
from plait.data.captions import LAYOUTS as CAPTION_LAYOUTS, read_captions
from plait.data.meld import read_meld
from plait.data.places import RowPlaces
from plait.data.remote import open_cached
from plait.errors import PlaitError
from plait.schema import nearest

SPLIT_NAMES = {
    "train": "train", "training": "train",
    "validation": "validation", "val": "validation", "valid": "validation", "dev": "validation",
    "test": "test", "testing": "test",
}
SPLITS = ("train", "validation", "test")
FILTERED = "filtered"  # the split of a row data.filter drops: in no split, but listed in splits.csv


@dataclass
class Data:
    """A table as read, the split of each row, where each row came from (for messages), and the table's name."""

    table: pd.DataFrame
    split_of_row: pd.Series
    source: str
    places: RowPlaces  # the file and line each row came from, for messages and skipped.jsonl
    filter_note: str | None = None  # what data.filter kept, per split, to print at training start

    @classmethod
    def of(cls, table: pd.DataFrame, split_config, row_filter: str | None, source: str, places: RowPlaces) -> Data:
        """`table` divided into splits after `row_filter` (data.filter): the rows it drops are in split `filtered`,
        so they are in no split and splits.csv still lists them. A `column` split keeps each row's split; a random
        split (`ratios`) divides the kept rows only. With `folds`, the kept rows outside test are then re-divided
        into that fold's train and validation (`assign_fold`)."""
        if not row_filter:
            return cls(table, assign_fold(table, assign_splits(table, split_config, source), split_config, source), source, places)
        keep = filter_rows(table, row_filter, source)
        if split_config.column is not None:
            before = assign_splits(table, split_config, source)
        else:
            before = pd.Series(FILTERED, index=table.index, dtype=object)
            before[keep] = assign_splits(table[keep], split_config, source)
        split_of_row = assign_fold(table, before.where(keep, FILTERED), split_config, source)
        counts = [f"{split} {int((split_of_row == split).sum()):,}"
                  + (f"/{int((before == split).sum()):,}" if split_config.column is not None else "") for split in SPLITS]
        note = (f"data.filter kept {int(keep.sum()):,} of {len(table):,} rows"
                + ("" if split_config.column is not None else " (then split by data.split.ratios)") + ": " + ", ".join(counts))
        return cls(table, split_of_row, source, places, note)

    def rows(self, split: str) -> pd.DataFrame:
        return self.table[self.split_of_row == split]

    def count(self, split: str) -> int:
        """How many rows the table puts in `split`."""
        return int((self.split_of_row == split).sum())


def table_format(url: str, declared: str = "auto") -> str:
    if declared != "auto":
        return declared
    suffix = PurePosixPath(url.split("?")[0]).suffix.lower()
    formats = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet",
               ".json": "json", ".token": "flickr30k", ".pkl": "pickle", ".pickle": "pickle", ".npz": "npy"}
    if suffix not in formats:  # a folder (of .npy files, of pickles, MELD) is named by data.format, never guessed
        raise PlaitError(f"{url}: cannot tell the table format from {suffix or 'no extension'!r}; set data.format")
    return formats[suffix]


def read_table(url: str, declared_format: str = "auto", csv_separator: str = ",") -> pd.DataFrame:
    """Cells come back as they are written: CSV cells stay text (so `007` stays `007`), an empty cell is NaN.
    A remote table that cannot be fetched (no such object, access denied, failures beyond the retries) is a
    RemoteError naming the URL."""
    return read_table_at(url, declared_format, csv_separator)[0]


def read_table_at(url: str, declared_format: str = "auto", csv_separator: str = ",") -> tuple[pd.DataFrame, RowPlaces]:
    """The table, and where each of its rows is in the files the user has (a layout's reader says, in the table's
    `attrs["places"]`, when its rows come from several files)."""
    kind = table_format(url, declared_format)
    table = read_any(url, kind, csv_separator)
    places = table.attrs.pop("places", None)
    return table, places or RowPlaces.of_file(url, kind, csv_separator)


def read_any(url: str, kind: str, csv_separator: str) -> pd.DataFrame:
    if kind == "meld":
        return read_meld(url)
    if kind == "npy":
        return read_npy_table(url)
    if kind == "pickle":
        return read_pickle_table(url)
    if kind in CAPTION_LAYOUTS or kind == "json":  # a .json file's own content tells COCO from Karpathy
        return read_captions(url, "auto" if kind == "json" else kind)
    local = open_cached(url)  # a remote table is downloaded once per version of the object, then read from disk
    try:
        with open(local, "rb") as handle:
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
            raise PlaitError(f"{source}: no column {column!r} (needed by {user}); {column_hint(column, table)}")


def column_hint(name: str, table: pd.DataFrame) -> str:
    """`did you mean 'colour'?`, or the table's columns when none is near `name`."""
    hint = nearest(name, table.columns)
    return f"did you mean {hint!r}?" if hint else f"columns: {', '.join(map(str, table.columns))}"


def filter_rows(table: pd.DataFrame, query: str, source: str) -> pd.Series:
    """True for each row `query` (data.filter, a pandas query) keeps. Columns it names whose every cell is a number
    (or empty) are compared as numbers, as CSV cells are read as text; a query that does not parse, names an unknown
    column or is not true or false per row is an error."""
    view = table.copy(deep=False)
    for column in table.columns:
        if str(column) in query and (table[column].dtype == object or isinstance(table[column].dtype, pd.StringDtype)):
            try:
                numbers = pd.to_numeric(table[column])
            except (TypeError, ValueError):
                continue
            view[column] = numbers
    try:
        kept = view.eval(query, engine="python")
    except pd.errors.UndefinedVariableError as error:
        name = re.search(r"'(.+?)'", str(error))
        name = name.group(1) if name else str(error)
        raise PlaitError(f"data.filter {query!r}: {source} has no column {name!r}; {column_hint(name, table)}") from None
    except SyntaxError as error:
        raise PlaitError(f"data.filter {query!r} does not parse as a pandas query: {error.msg} "
                         f"(e.g. \"quality > 0.5 and site == 'A'\"; a column name with spaces goes in `backticks`)") from None
    except Exception as error:  # noqa: BLE001  (a comparison of text with a number, an unknown function, ...)
        raise PlaitError(f"data.filter {query!r} fails on {source}: {type(error).__name__}: {str(error).splitlines()[0]}") from None
    if not isinstance(kept, pd.Series) or len(kept) != len(table) or not pd.api.types.is_bool_dtype(kept.dtype):
        raise PlaitError(f"data.filter {query!r} must be a condition, true or false for each row, such as "
                         f"\"quality > 0.5\"; it gave {type(kept).__name__} {getattr(kept, 'dtype', '')}".rstrip())
    return kept.fillna(False).astype(bool).set_axis(table.index)


def assign_splits(table: pd.DataFrame, split_config, source: str) -> pd.Series:
    """One of `train` / `validation` / `test` per row. With `group`, all rows of a group share one split."""
    if split_config.group is not None:
        require_columns(table, {split_config.group: "data.split.group"}, source)
    if split_config.column is not None:
        require_columns(table, {split_config.column: "data.split.column"}, source)
        names = []
        for row, value in enumerate(table[split_config.column]):
            name = SPLIT_NAMES.get(str(value).strip().lower())
            if name is None:
                raise PlaitError(f"{source}, row {row}, column {split_config.column!r}: unknown split {value!r}; use train, validation or test")
            names.append(name)
        split_of_row = pd.Series(names, index=table.index)
        if split_config.group is not None:
            check_groups(table[split_config.group], split_of_row, source)
        return split_of_row
    return random_split(table, split_config, source)


def check_groups(group: pd.Series, split_of_row: pd.Series, source: str) -> None:
    """A group in two splits leaks (the captions of one image in train and in test): name the first such group."""
    frame = pd.DataFrame({"group": group.to_numpy(), "split": split_of_row.to_numpy()}).dropna(subset=["group"])
    counts = frame.groupby("group", sort=False)["split"].nunique()
    if (counts > 1).any():
        value = counts.index[(counts > 1).argmax()]
        rows = frame[frame["group"] == value].drop_duplicates("split")
        (row_a, split_a), (row_b, split_b) = list(rows["split"].items())[:2]
        raise PlaitError(f"{source}, column {group.name!r}: {value!r} is in two splits, {split_a} (row {row_a}) and "
                         f"{split_b} (row {row_b}); every row of a data.split.group must be in one split")


def split_units(table: pd.DataFrame, split_config) -> np.ndarray:
    """The unit a random split shuffles, per row: the row itself, or its `group` (a missing value is a group of
    its own)."""
    if split_config.group is None:
        return np.arange(len(table))
    codes, uniques = pd.factorize(table[split_config.group])
    alone = codes < 0
    codes[alone] = len(uniques) + np.arange(int(alone.sum()))
    return codes


def random_split(table: pd.DataFrame, split_config, source: str) -> pd.Series:
    """Seeded shuffle of rows, or of groups with `group` (the ratios then count groups); with `stratify`, each
    value of that column is divided in the same proportions (with `group`, every group needs one value)."""
    rng = np.random.default_rng(split_config.seed)
    unit_of_row = split_units(table, split_config)
    units = unit_of_row.max() + 1 if len(table) else 0
    if split_config.stratify:
        require_columns(table, {split_config.stratify: "data.split.stratify"}, source)
        values = table[split_config.stratify].astype(str).to_numpy()
        value_of_unit = np.empty(units, dtype=object)
        value_of_unit[unit_of_row] = values
        mixed = np.flatnonzero(value_of_unit[unit_of_row] != values)
        if mixed.size:
            row = int(mixed[0])
            raise PlaitError(f"{source}, row {row}: group {table[split_config.group].iloc[row]!r} has more than one "
                             f"value of {split_config.stratify!r}, so data.split.stratify cannot keep it whole")
        strata = [np.flatnonzero(value_of_unit == value) for value in sorted(set(values))]
    else:
        strata = [np.arange(units)]
    names = np.empty(units, dtype=object)
    for members in strata:
        members = rng.permutation(members)
        n_train = int(round(split_config.ratios[0] * len(members)))
        n_validation = int(round(split_config.ratios[1] * len(members)))
        names[members[:n_train]] = "train"
        names[members[n_train:n_train + n_validation]] = "validation"
        names[members[n_train + n_validation:]] = "test"
    return pd.Series(names[unit_of_row], index=table.index)


def fold_parts(table: pd.DataFrame, split_of_row: pd.Series, split_config, source: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """(the positions of the rows in train or validation, the positions of each of the `folds` parts among them):
    scikit-learn's KFold, StratifiedKFold (`stratify`), GroupKFold (`group`) or StratifiedGroupKFold (both),
    shuffled with the split's `seed`."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    pool = np.flatnonzero(split_of_row.isin(["train", "validation"]).to_numpy())
    rows = table.iloc[pool]
    k, seed = split_config.folds, split_config.seed
    labels = groups = None
    if split_config.stratify:
        require_columns(table, {split_config.stratify: "data.split.stratify"}, source)
        labels = rows[split_config.stratify].astype(str).to_numpy()
    if split_config.group is not None:
        require_columns(table, {split_config.group: "data.split.group"}, source)
        groups = split_units(rows, split_config)
    if groups is not None:
        splitter = (StratifiedGroupKFold if labels is not None else GroupKFold)(n_splits=k, shuffle=True, random_state=seed)
    else:
        splitter = (StratifiedKFold if labels is not None else KFold)(n_splits=k, shuffle=True, random_state=seed)
    units = len(np.unique(groups)) if groups is not None else len(pool)
    if units < k:
        raise PlaitError(f"{source}: data.split.folds is {k}, but only {units} {'groups' if groups is not None else 'rows'} "
                         f"are outside the test split")
    try:
        parts = [pool[validation] for _, validation in splitter.split(np.zeros(len(pool)), labels, groups)]
    except ValueError as error:
        raise PlaitError(f"{source}: cannot divide the rows into {k} folds: {error}") from None
    return pool, parts


def assign_fold(table: pd.DataFrame, split_of_row: pd.Series, split_config, source: str) -> pd.Series:
    """With `folds` and `fold`: the rows in train or validation re-divided, part `fold` (1-based) of `fold_parts`
    validating and the others training; test (and filtered) rows keep their split. Otherwise `split_of_row` as is."""
    if split_config.folds is None or split_config.fold is None:
        return split_of_row
    pool, parts = fold_parts(table, split_of_row, split_config, source)
    names = split_of_row.to_numpy(dtype=object).copy()
    names[pool] = "train"
    names[parts[split_config.fold - 1]] = "validation"
    return pd.Series(names, index=split_of_row.index)


def resolve_root(table_url: str, root: str | None) -> str:
    """The folder relative file paths in cells resolve against."""
    if root:
        return root
    if "://" in table_url:
        return table_url.rsplit("/", 1)[0]
    return str(PurePosixPath(table_url).parent)
