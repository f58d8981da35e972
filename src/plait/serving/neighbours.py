"""Nearest indexed rows in an answer: when the run folder holds a `plait index`, `POST /v1/predict?neighbours=K`
adds to each row the K training rows (or whichever split was indexed) nearest to its embedding, as `plait search`
lists them: rank, cosine score, the row, its label and its files or texts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from plait.inference import index as faiss_index
from plait.inference.retrieval import INDEX_FOLDER


class Neighbours:
    """The run's index (the first by name when it has several), read once."""

    def __init__(self, run_folder: Path, name: str):
        self.name = name
        self.index, self.metadata, self.info = faiss_index.load_index(run_folder / INDEX_FOLDER, name)

    @classmethod
    def of_run(cls, run_folder: Path) -> Neighbours | None:
        saved = faiss_index.saved_indexes(run_folder / INDEX_FOLDER)
        return cls(run_folder, saved[0]) if saved else None

    def describe(self) -> dict:
        return {"name": self.name, "output": self.info["output"], "rows": int(self.index.ntotal), "split": self.info.get("split")}

    def add_to(self, frame: pd.DataFrame, k: int) -> pd.DataFrame:
        """`frame` (an answer, one row per request row) with a `neighbours` column: per row a list of k records."""
        vectors = np.asarray(frame[f"{self.info['output']}_embedding"].tolist(), dtype=np.float32)
        scores, positions = faiss_index.search(self.index, vectors, k)
        table = faiss_index.neighbours_table(scores, positions, self.metadata, frame["row"].tolist())
        records = json.loads(table.to_json(orient="records"))  # plain JSON values, NaN as null
        found = {row: [] for row in frame["row"]}
        for record in records:
            found[record.pop("query")].append(record)
        return frame.assign(neighbours=[found[row] for row in frame["row"]])
