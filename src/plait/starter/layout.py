"""Which layout a table is in (a file's suffix, or what a folder holds) and a sample of its rows to decide from."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

from plait.data.captions import FLICKR_FILES
from plait.data.tables import read_table_at, resolve_root, table_format
from plait.errors import PlaitError

SAMPLE_ROWS = 5000  # rows whose values decide each column: enough for distinct counts and word lengths


@dataclass
class Sample:
    """A table to describe: a sample of its rows, how many it has, and how a config names it."""

    table: pd.DataFrame
    rows: int
    url: str
    format: str  # data.format to write: "auto" when the file's suffix says
    root: str  # where relative paths in cells resolve


def folder_format(folder: str) -> str:
    """The layout of a folder: MELD's CSVs, a Flickr captions file, COCO's annotations, .npy columns or pickles."""
    names = os.listdir(folder)
    if any(name.endswith("_sent_emo.csv") for name in names):
        return "meld"
    if any(name in FLICKR_FILES or name.endswith(".token") for name in names) or "flickr30k_images" in names:
        return "flickr30k"
    if os.path.isdir(os.path.join(folder, "annotations")):
        return "coco"
    if any(name.endswith(".npy") for name in names):
        return "npy"
    if any(name.endswith((".pkl", ".pickle")) for name in names):
        return "pickle"
    raise PlaitError(f"{folder}: a folder plait cannot read as a table (it reads MELD folders, Flickr30k and COCO "
                     "caption layouts, folders of .npy columns or of pickles); give a CSV, JSON lines or parquet file")


def file_format(path: str) -> str:
    """A file's layout: a Flickr captions file or one of MELD's CSVs by its name, else a table by its suffix."""
    name = os.path.basename(path)
    if name in FLICKR_FILES or name.endswith(".token"):
        return "flickr30k"
    if name.endswith("_sent_emo.csv"):
        return "meld"
    return table_format(path)


def read_sample(url: str) -> Sample:
    """The table at `url` (a file or a layout's folder), with up to SAMPLE_ROWS of its rows drawn evenly."""
    remote = "://" in url  # a table file anywhere fsspec reaches; a layout's folder must be local
    if not remote and not os.path.exists(url):
        raise PlaitError(f"{url}: no such file or folder")
    kind = folder_format(url) if not remote and os.path.isdir(url) else file_format(url)
    table, _ = read_table_at(url, kind)
    if table.empty:
        raise PlaitError(f"{url}: the table has no rows")
    sample = table.sample(n=SAMPLE_ROWS, random_state=0).sort_index() if len(table) > SAMPLE_ROWS else table
    written = "auto" if kind in ("csv", "jsonl", "parquet") and (remote or os.path.isfile(url)) else kind
    return Sample(sample.reset_index(drop=True), len(table), url, written, resolve_root(url, None))
