"""`plait.Model`: DataFrames in and out, for notebooks.

    >>> model = plait.Model.from_table(train_df, target="label")   # or plait.Model("config.yaml")
    >>> model.fit(train_df, validation=val_df)                      # or one DataFrame with a split column
    >>> model.predict(test_df)                                      # a DataFrame, indexed as test_df
    >>> model.evaluate(test_df)                                     # {"label.accuracy": ..., ...}
    >>> model.save("runs/x"); plait.Model.load("runs/x")

A model is a run folder underneath, so every command works on a saved one (`plait report runs/x`, `plait serve
runs/x`). Media cells are file paths, or in-memory images (PIL images, or uint8 arrays [H, W, 3] or [H, W]): those
are written as PNG files to the model's work folder first, since the data path reads and caches files.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from plait.errors import PlaitError

SPLIT_COLUMN = "split"


class Model:
    """A multimodal model over DataFrames. `config`: a Config, a dict as a config file holds, or a YAML path; its
    `data.table` is replaced by the DataFrame `fit` is given."""

    def __init__(self, config, workdir: str | Path | None = None):
        from plait.config import Config, read_yaml

        if isinstance(config, Config):
            config = config.model_dump(mode="json")
        self.raw = dict(read_yaml(config) if isinstance(config, (str, Path)) else config)
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="plait-model-"))
        self.run_dir: Path | None = None
        self.inferred: str | None = None  # the commented config `from_table` decided
        self._run = None

    @classmethod
    def from_table(cls, table: pd.DataFrame, target: str | list[str], binned: list[str] = (),
                   workdir: str | Path | None = None) -> Model:
        """A model for `table` predicting `target`: the config `plait init` would write for it (see `self.inferred`)."""
        import yaml

        from plait.starter import describe_table

        model = cls({}, workdir)
        path = model._table_file(table, "sample")
        model.inferred = describe_table(str(path), [target] if isinstance(target, str) else list(target), list(binned))
        model.raw = yaml.safe_load(model.inferred)
        return model

    @classmethod
    def load(cls, run_dir: str | Path) -> Model:
        """A trained model from a run folder (`save` wrote it, or `plait train` did)."""
        from plait.config import read_yaml

        run_dir = Path(run_dir)
        if not (run_dir / "config.yaml").is_file():
            raise PlaitError(f"{run_dir}: not a run folder (it has no config.yaml)")
        model = cls(read_yaml(run_dir / "config.yaml"))
        model.run_dir = run_dir
        return model

    def fit(self, table: pd.DataFrame, validation: pd.DataFrame | None = None) -> Model:
        """Train on `table` (validating on `validation`; without it, on `table`'s own split column or the config's
        random split). Returns the model, trained."""
        from plait.config import validate
        from plait.runs import training

        raw = {**self.raw, "data": {**self.raw.get("data", {})}}
        if validation is not None:
            table = pd.concat([table.assign(**{SPLIT_COLUMN: "train"}), validation.assign(**{SPLIT_COLUMN: "validation"})],
                              ignore_index=True)
            raw["data"]["split"] = {"column": SPLIT_COLUMN}
        raw["data"].update(table=str(self._table_file(table, "fit")), format="auto")
        self.run_dir = training.train(validate(raw, "the model's config"), self._fresh("run"))
        self.raw, self._run = raw, None
        return self

    def predict(self, table: pd.DataFrame, **generation) -> pd.DataFrame:
        """Per row of `table`, what `plait predict` writes (`NAME_pred`, `NAME_prob_LABEL`, captions), indexed as
        `table`. `generation`: beam_size, length_penalty, max_length for captions."""
        from plait.inference.predict import predict_table

        result = predict_table(self._loaded(), self._with_files(table), "the DataFrame", **generation)
        return result.drop(columns="row").set_axis(table.index)

    def evaluate(self, table: pd.DataFrame) -> dict[str, float]:
        """Metrics of every output on `table` (which holds the targets)."""
        run = self._loaded()
        encoded = run.preprocessor.encode(self._with_files(table), "evaluate", "the DataFrame", run.config.data.on_bad_sample)
        metrics, _ = run.score(encoded)
        return metrics

    def save(self, path: str | Path) -> Path:
        """Copy the trained model's run folder to `path`; `Model.load(path)` reads it back."""
        path = Path(path)
        if path.exists():
            raise PlaitError(f"{path} exists; save into a new folder")
        shutil.copytree(self._trained(), path)
        return path

    # ── underneath ──────────────────────────────────────────────────────────────────────────────────────
    def _trained(self) -> Path:
        if self.run_dir is None:
            raise PlaitError("the model is not trained yet: call fit(table) first, or Model.load(run_dir)")
        return self.run_dir

    def _loaded(self):
        from plait.runs import Run

        if self._run is None:
            self._run = Run.load(self._trained())
        return self._run

    def _fresh(self, stem: str) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{stem}-", dir=self.workdir))

    def _table_file(self, table: pd.DataFrame, stem: str) -> Path:
        """`table` as a parquet file in a new folder of the work folder, in-memory images written beside it."""
        folder = self._fresh(stem)
        path = folder / "table.parquet"
        with_files(table, folder / "media").to_parquet(path)
        return path

    def _with_files(self, table: pd.DataFrame) -> pd.DataFrame:
        return with_files(table, self.workdir / f"media-{uuid.uuid4().hex[:12]}")  # made only when a cell is an image


def is_image(value) -> bool:
    from PIL import Image

    if isinstance(value, Image.Image):
        return True
    return isinstance(value, np.ndarray) and value.dtype == np.uint8 and (value.ndim == 2 or (value.ndim == 3 and value.shape[2] in (3, 4)))


def with_files(table: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """`table` with each column of in-memory images replaced by the paths of PNG files written to `folder`."""
    from PIL import Image

    table = table.copy()
    for column in table.columns:
        cells = table[column].tolist()
        if not cells or not any(is_image(cell) for cell in cells):
            continue
        (folder / str(column)).mkdir(parents=True, exist_ok=True)
        paths = []
        for row, cell in enumerate(cells):
            if not is_image(cell):
                paths.append(cell)
                continue
            path = folder / str(column) / f"{row}.png"
            (cell if isinstance(cell, Image.Image) else Image.fromarray(cell)).save(path)
            paths.append(str(path))
        table[column] = paths
    return table
