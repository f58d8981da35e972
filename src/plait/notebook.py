"""`plait.Model`: DataFrames in and out, for notebooks.

    >>> model = plait.Model.from_table(train_df, target="label")   # or plait.Model("config.yaml")
    >>> model.fit(train_df, validation=val_df)                      # or one DataFrame with a split column
    >>> model.predict(test_df)                                      # a DataFrame, indexed as test_df
    >>> model.evaluate(test_df)                                     # {"label.accuracy": ..., ...}
    >>> model.save("runs/x"); plait.Model.load("runs/x")

A model is a run folder underneath, so every command works on a saved one (`plait report runs/x`, `plait serve
runs/x`). Media cells are file paths, or media in memory: PIL images and uint8 arrays (images [H, W(, C)], clips
[T, H, W, 3]), and float arrays of samples in audio columns. Those are written as files to the model's work folder
first (`plait.media_cells`), since the data path reads and caches files.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pandas as pd

from plait.errors import PlaitError
from plait.media_cells import with_files

SPLIT_COLUMN = "split"


class Model:
    """A multimodal model over DataFrames: fit, predict, evaluate, save and load.

    Args:
        config: A `Config`, a dict as a config file holds, or the path of a YAML config. Its `data.table` is
            replaced by the DataFrame `fit` is given. `Model.from_table` writes one for you.
        workdir: Where the model keeps its tables, media files and runs (default: a new temporary folder).

    Examples:
        >>> import plait
        >>> model = plait.Model.from_table(train_df, target="label")
        >>> model.fit(train_df, validation=val_df)
        >>> model.predict(test_df)[["label_pred"]]
        >>> model.evaluate(test_df)["label.accuracy"]
        0.975
        >>> model.save("runs/churn")

        From a config instead, with images in memory (PIL images or uint8 arrays) in the `photo` column:

        >>> model = plait.Model({"name": "shapes", "data": {"table": "unused.csv", "split": {"column": "split"}},
        ...                      "inputs": [{"name": "photo", "type": "image", "column": "photo", "size": 32}],
        ...                      "outputs": [{"name": "label", "type": "category", "column": "label"}]})
        >>> model.fit(df_with_split_column)
    """

    def __init__(self, config, workdir: str | Path | None = None):
        from plait.config import Config, read_yaml

        if isinstance(config, Config):
            config = config.model_dump(mode="json")
        self.raw = dict(read_yaml(config) if isinstance(config, (str, Path)) else config)
        # absolute: media cells hold paths, which the data path would read relative to the table's folder
        self.workdir = Path(workdir).resolve() if workdir else Path(tempfile.mkdtemp(prefix="plait-model-"))
        self.run_dir: Path | None = None
        self.inferred: str | None = None  # the commented config `from_table` decided
        self._run = None

    @classmethod
    def from_table(cls, table: pd.DataFrame, target: str | list[str], binned: list[str] = (),
                   workdir: str | Path | None = None) -> Model:
        """A model for `table` predicting `target`: the config `plait init` would write for it.

        Each column's type is decided from its values, as `plait init` does; `model.inferred` holds the decided
        config with the evidence for each decision as comments, and `model.raw` the config itself.

        Args:
            table: The training rows (a sample is read), the target column among them.
            target: The column to predict, or several.
            binned: Number targets to predict as bins rather than values.
            workdir: Where the model keeps its files (default: a new temporary folder).

        Examples:
            >>> model = plait.Model.from_table(train_df, target="label")
            >>> print(model.inferred)
            # note: 230 distinct values, 7 words per cell on average → text
            ...
        """
        import yaml

        from plait.starter import describe_table

        model = cls({}, workdir)
        path = model._table_file(table, "sample")
        model.inferred = describe_table(str(path), [target] if isinstance(target, str) else list(target), list(binned))
        model.raw = yaml.safe_load(model.inferred)
        return model

    @classmethod
    def load(cls, run_dir: str | Path) -> Model:
        """A trained model from a run folder: one `save` wrote, or any `plait train` run.

        Examples:
            >>> model = plait.Model.load("runs/churn")
            >>> model.predict(new_rows)
        """
        from plait.config import read_yaml

        run_dir = Path(run_dir)
        if not (run_dir / "config.yaml").is_file():
            raise PlaitError(f"{run_dir}: not a run folder (it has no config.yaml)")
        model = cls(read_yaml(run_dir / "config.yaml"))
        model.run_dir = run_dir
        return model

    def fit(self, table: pd.DataFrame, validation: pd.DataFrame | None = None) -> Model:
        """Train on `table`; progress shows in the terminal or the notebook. Returns the model, trained.

        Args:
            table: Training rows. Without `validation`, its own split column (`data.split.column`) or the
                config's random split divides it.
            validation: Rows to validate on (each epoch, and to pick the best checkpoint).

        Examples:
            >>> model.fit(train_df, validation=val_df)
            >>> model.run_dir              # the run folder: plait report / serve / predict work on it
            PosixPath('/tmp/plait-model-.../run-...')
        """
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
        """Predictions per row of `table`, as `plait predict` writes them, in a DataFrame indexed as `table`.

        Columns: `NAME_pred` per output (a label, a number, a caption), `NAME_prob_LABEL` per class of a category
        output, `NAME_embedding` for an embedding output, `attention_INPUT` under attention fusion.

        Args:
            table: Rows with the model's input columns (targets are not needed).
            **generation: For caption outputs: `beam_size`, `length_penalty`, `max_length`.

        Examples:
            >>> model.predict(test_df)[["label_pred", "label_prob_cat"]]
            >>> model.predict(photos_df, beam_size=3)["caption_pred"]
        """
        from plait.inference.predict import predict_table

        result = predict_table(self._loaded(), self._with_files(table), "the DataFrame", **generation)
        return result.drop(columns="row").set_axis(table.index)

    def evaluate(self, table: pd.DataFrame) -> dict[str, float]:
        """Metrics of every output on `table`, which holds the targets, as `plait evaluate` computes them.

        Examples:
            >>> model.evaluate(test_df)
            {'label.accuracy': 0.975, 'label.macro_f1': 0.974, 'label.weighted_f1': 0.975, 'label.loss': 0.08, ...}
        """
        run = self._loaded()
        encoded = run.preprocessor.encode(self._with_files(table), "evaluate", "the DataFrame", run.config.data.on_bad_sample)
        metrics, _ = run.score(encoded)
        return metrics

    def save(self, path: str | Path) -> Path:
        """Copy the trained model's run folder to `path`, a new folder; `Model.load(path)` reads it back.

        Examples:
            >>> model.save("runs/churn")
            >>> plait.Model.load("runs/churn").predict(test_df)
        """
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
        self._with_files(table, folder / "media").to_parquet(path)
        return path

    def _with_files(self, table: pd.DataFrame, folder: Path | None = None) -> pd.DataFrame:
        """`table` with in-memory media written as files; the folder is made only when a cell needs it."""
        kinds, rates = {}, {}
        for spec in self.raw.get("inputs") or []:
            kinds.setdefault(spec.get("column"), spec.get("type"))
            rates[spec.get("column")] = spec.get("sample_rate", 16000)
        for spec in self.raw.get("inputs") or []:
            if spec.get("source") == "video_column":  # a clip's sound track: frames in memory have none
                kinds[spec.get("column")] = "sound of video"
        return with_files(table, folder or self.workdir / f"media-{uuid.uuid4().hex[:12]}", kinds, rates)
