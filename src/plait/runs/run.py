"""`Run`: one run held in memory. It owns the run's folder, config, device, process group, fitted preprocessing and
model, and reads its table and opens its feature cache on first use; its methods encode, predict, evaluate and
write. Loaded once (`Run.load`), it answers many calls: the verbs, inference and the report all take one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import torch

import plait.components  # noqa: F401  (registers the feature types, encoders, tasks and fusions a run builds)
from plait.config import Config, load_config
from plait.console import console
from plait.data.cache import FeatureCache
from plait.data.columns import is_missing
from plait.data.dataset import SKIP_HINT, EncodedSplit
from plait.data.division import ALONE, Division
from plait.data.features.base import FileFeature
from plait.data.tables import Data
from plait.errors import PlaitError
from plait.files import atomic_path
from plait.evaluation.ablation import Ablation, ablate
from plait.evaluation.baseline import baseline_metrics
from plait.evaluation.captions import write_samples
from plait.evaluation.evaluate import evaluate_split, predict_split, search_gallery, uses_gallery
from plait.evaluation.nearest import encoder_vectors, has_pixels, nearest_caption_metrics, pixel_vectors
from plait.evaluation.saved import evaluation_file
from plait.evaluation.shuffled import with_shuffled_inputs
from plait.models.frozen import embed_frozen_inputs
from plait.models.model import MultimodalModel
from plait.runs.setup import (chosen_checkpoint, configure_torch, encode_split, is_export, make_cache, make_preprocessor,
                              nonempty_splits, read_data, write_json)
import plait.distributed as distributed
from plait.training.checkpoint import load_preprocessing, load_weights


@dataclass
class Evaluation:
    """A split's metrics and predictions, and the other splits its outputs searched as galleries."""

    split: EncodedSplit
    metrics: dict[str, float]
    predictions: dict
    galleries: dict[str, tuple] = field(default_factory=dict)  # split name → (split, predictions)


class Run:
    """One run: `folder` (None for a run kept in memory only, e.g. while building the cache), `config`, `device`,
    `world` (the processes training together), `preprocessor`, `model` (None until built or loaded) and
    `checkpoint` (the folder its weights came from)."""

    def __init__(self, folder: Path | None, config: Config, device: torch.device, preprocessor,
                 model: MultimodalModel | None = None, checkpoint: Path | None = None,
                 world: distributed.World | None = None):
        self.folder = Path(folder) if folder is not None else None
        self.config, self.device, self.preprocessor = config, device, preprocessor
        self.model, self.checkpoint = model, checkpoint
        self.world = world or distributed.World()
        self._data: Data | None = None
        self._cache: FeatureCache | None = None
        self._division: Division | None = None

    @classmethod
    def start(cls, config: Config, folder: Path | None = None, join_processes: bool = False) -> Run:
        """A new run of `config` in this process (seeded), before its preprocessing is fitted or its model built.
        `join_processes`: first join the processes a launcher started, so that only the first one speaks."""
        run = cls(folder, config, configure_torch(config.train), preprocessor=None)
        if join_processes:
            run.join_processes()
        run.preprocessor = make_preprocessor(config)
        return run

    @classmethod
    def load(cls, folder: str | Path, which: str = "best", join_processes: bool = False) -> Run:
        """A trained run folder (its `which` checkpoint, or `last` when it has none), or a `plait export` folder.
        `join_processes`: first join the processes a launcher started (see `start`)."""
        folder = Path(folder)
        config, checkpoint = cls.locate(folder, which)
        run = cls.start(config, folder, join_processes)
        run.checkpoint = checkpoint
        run.preprocessor.load_state_dict(load_preprocessing(run.checkpoint))
        run.build_model()
        load_weights(run.checkpoint, run.model)
        run.model.eval()
        return run

    @staticmethod
    def locate(folder: Path, which: str = "best") -> tuple[Config, Path]:
        """The config of a run or export folder and the checkpoint `load` would read, without building anything:
        the same errors as `load`, in a fraction of the time."""
        if not (folder / "config.yaml").is_file():
            raise PlaitError(f"{folder}: not a plait run folder (no config.yaml)")
        return load_config(folder / "config.yaml"), folder if is_export(folder) else chosen_checkpoint(folder, which)

    def join_processes(self) -> None:
        """Join the processes a launcher (torchrun, mpirun) started beside this one (a world of one without one);
        from here on only the first process prints. `distributed.stop` and `console.quiet = False` undo it."""
        train = self.config.train
        self.world = distributed.start(address=train.master_address, port=train.master_port,
                                       use_cuda=self.device.type == "cuda")
        if self.device.type == "cuda" and self.world.is_distributed:
            self.device = torch.device("cuda", self.world.local_rank)
        console.quiet = not self.world.is_main

    def leave_processes(self) -> None:
        """Leave the process group `join_processes` joined (nothing without one); this process speaks again."""
        console.quiet = False
        distributed.stop()
        self.world, self._division = distributed.World(), None

    # ── what the run is made of ──────────────────────────────────────────────────────────────────────
    @property
    def features(self) -> dict:
        return self.preprocessor.features

    @property
    def tasks(self) -> dict:
        return self.preprocessor.tasks

    @property
    def data(self) -> Data:
        """The run's table and the split of each row, read on first use."""
        if self._data is None:
            self._data = read_data(self.config, self.preprocessor)
        return self._data

    @data.setter
    def data(self, data: Data) -> None:
        self._data = data

    @property
    def cache(self) -> FeatureCache | None:
        """The feature cache (None when the config keeps none): one per run, so its stores index the shards once."""
        if self._cache is None and self.config.data.cache:
            self._cache = make_cache(self.config)
        return self._cache

    def division(self) -> Division:
        """How this process shares decoding with the others filling the same cache (every process asks together)."""
        if not self.world.is_distributed or self.cache is None:
            return ALONE
        if self._division is None:
            self._division = distributed.cache_division(self.cache.folder, self.world)
        return self._division

    def build_model(self) -> MultimodalModel:
        """A model with fresh weights (drawn from torch's current random state) for the fitted preprocessing."""
        self.model = MultimodalModel(self.config, self.features, self.tasks).to(self.device)
        return self.model

    def reset_weights(self) -> None:
        """Fresh random weights drawn with the run's seed: the untrained floor. Pretrained encoders load theirs again."""
        torch.manual_seed(self.config.train.seed)
        self.build_model()

    # ── encoding ─────────────────────────────────────────────────────────────────────────────────────
    def splits(self) -> list[str]:
        """The splits of the table that hold rows, in order (train, validation, test)."""
        return nonempty_splits(self.data)

    def require_split(self, name: str) -> None:
        if not self.data.count(name):
            raise PlaitError(f"{self.data.source}: no rows in split {name!r}")

    def encode(self, names: list[str], skip_hint: str = SKIP_HINT) -> dict[str, EncodedSplit]:
        """Splits of the table, encoded with the run's preprocessing (through its cache), and with the frozen
        encoders' embeddings in place when the model is built. A bad cell's error ends with `skip_hint`."""
        for name in names:
            self.require_split(name)
        splits = {name: encode_split(self.data, self.preprocessor, name, self.config, self.cache, skip_hint,
                                     division=self.division(), processes_here=self.world.local_size)
                  for name in dict.fromkeys(names)}
        if self.model is not None:
            self.embed_frozen(splits)
        return splits

    def embed_frozen(self, splits: dict[str, EncodedSplit]) -> None:
        """Each frozen, cached encoder's input in every split replaced by its embedding (in place)."""
        embed_frozen_inputs(self.model, self.features, self.config, splits, self.cache, self.device, self.division())

    def with_galleries(self, name: str) -> list[str]:
        """`name`, then every other split the run's outputs search as a gallery."""
        return [name, *sorted(uses_gallery(self.config.outputs) - {name})]

    # ── predicting and evaluating ────────────────────────────────────────────────────────────────────
    # `together`: every process of the run's world calls it, each predicting a share of the batches; else this
    # process works alone.
    def predict(self, split: EncodedSplit, together: bool = False) -> dict:
        """The model's raw predictions per output for every row of an encoded split."""
        return predict_split(self.model, self.features, self.tasks, split, self.config.train.evaluation_batch_size,
                             self.device, world=self._sharing(together))

    def score(self, split: EncodedSplit, drop=frozenset(), together: bool = False) -> tuple[dict[str, float], dict]:
        """Metrics of every output on an encoded split (the inputs in `drop` left out), and the predictions."""
        return evaluate_split(self.model, self.features, self.tasks, split, self.config.train.evaluation_batch_size,
                              self.device, drop, world=self._sharing(together))

    def _sharing(self, together: bool) -> distributed.World | None:
        return self.world if together else None

    def gallery(self, split: EncodedSplit, real_rows: int | None = None, together: bool = False) -> tuple:
        """A split searched as a gallery, and its predictions. Rows from `real_rows` on were generated
        (data.augment): their targets count as absent, so they are never found."""
        predictions = self.predict(split, together)
        if real_rows is not None:
            real = torch.tensor(split.rows) < real_rows
            targets = {name: {**target, "present": target["present"] & real} for name, target in split.targets.items()}
            split = SimpleNamespace(name=split.name, targets=targets, rows=split.rows)
        return split, predictions

    def evaluate(self, splits: dict[str, EncodedSplit], name: str, galleries: dict | None = None,
                 together: bool = False) -> Evaluation:
        """Split `name` of the encoded `splits`, searched among `galleries` (default: every other split given)."""
        metrics, predictions = self.score(splits[name], together=together)
        if galleries is None:
            galleries = {other: self.gallery(splits[other], together=together) for other in splits if other != name}
        for gallery, gallery_predictions in galleries.values():
            metrics.update(search_gallery(self.tasks, predictions, splits[name], gallery, gallery_predictions))
        return Evaluation(splits[name], metrics, predictions, galleries)

    def evaluate_split(self, name: str, together: bool = False) -> Evaluation:
        """Split `name` of the table encoded and evaluated, with its outputs' gallery searches."""
        return self.evaluate(self.encode(self.with_galleries(name)), name, together=together)

    def baseline(self, split: str) -> dict[str, float]:
        """Metrics on `split` of predicting from the training targets alone (most frequent class, mean)."""
        return baseline_metrics(self.tasks, self.data.rows("train"), self.data.rows(split))

    def score_shuffled(self, split: EncodedSplit) -> dict[str, float]:
        """Metrics on `split` with each row given another row's inputs (another image's, for a caption output's
        rows): how far the model's scores rest on its inputs rather than on the targets' own regularities."""
        captions = [name for name, task in self.tasks.items() if task.generates]
        groups = split.row_info[captions[0]]["group"] if captions else None
        return self.score(with_shuffled_inputs(split, groups))[0]

    def nearest_captions(self, train: EncodedSplit, split: EncodedSplit, by: str) -> dict[str, float]:
        """Each caption output's metrics on `split` of writing the caption of the nearest training image, `by`
        `pixels` (thumbnails of the first image input) or `features` (that input's encoder, as the model now is);
        {} when the run has no caption output or no image input (or, by pixels, keeps only cached vectors of it)."""
        images = [name for name, feature in self.features.items() if feature.spec.type == "image"]
        if not images or not any(task.generates for task in self.tasks.values()):
            return {}
        if by == "pixels":
            if not has_pixels(split, images[0]):
                return {}
            vector_of = pixel_vectors(images[0])
        else:
            self.model.eval()
            vector_of = encoder_vectors(self.model, self.features, images[0], self.device)
        return nearest_caption_metrics(self.tasks, train, split, vector_of, self.config.train.evaluation_batch_size)

    def ablate(self, split: EncodedSplit, fused: dict | None = None) -> Ablation:
        """Metrics with every input, each input left out, and each kept alone (three inputs or more). `fused`: the
        metrics with every input, when already known."""
        return ablate(lambda drop: self.score(split, drop)[0], list(self.features), self.tasks, split.name, fused)

    # ── writing ──────────────────────────────────────────────────────────────────────────────────────
    def path(self, relative: str = "") -> Path:
        """A path in the run folder; a run kept in memory only has none to write to."""
        if self.folder is None:
            raise PlaitError(f"{self.config.name}: this run is held in memory only, with no folder to write to")
        return self.folder / relative

    def write_json(self, relative: str, value) -> None:
        write_json(self.path(relative), value)

    def write_evaluation(self, evaluation: Evaluation) -> None:
        """`evaluation/SPLIT.json`, and for each generating output a sample of what it wrote next to the references
        (`evaluation/SPLIT_OUTPUT_samples.json`)."""
        split = evaluation.split.name
        write_json(evaluation_file(self.path(), split), evaluation.metrics)
        for name, task in self.tasks.items():
            prediction = evaluation.predictions.get(name)
            generated = prediction.get("generated") if isinstance(prediction, dict) else None
            if generated is not None and task.spec.samples:
                write_samples(self.path(f"evaluation/{split}_{name}_samples.json"), generated.groups,
                              generated.texts, generated.references, task.spec.samples)

    def write_splits(self) -> None:
        """`splits.csv`: every row of the table (`row`, its position, as in skipped.jsonl), the file and the line or
        entry it came from, the split it went to (`filtered` for a row data.filter dropped), and the cells of its file inputs (the image, clip or sound), so the
        test images of a random split can be found."""
        places = [self.data.places.place(position) for position in range(len(self.data.table))]
        table = pd.DataFrame({"row": range(len(places)), "file": [file for file, _ in places],
                              "place": [place for _, place in places], "split": self.data.split_of_row.to_numpy()})
        for feature in self.features.values():
            cells = self.data.table[feature.spec.column] if isinstance(feature, FileFeature) else None
            # paths only: an npy table's cells are arrays, and printing them would read every row of the memory map
            if cells is not None and feature.spec.column not in table and all(isinstance(c, str) or is_missing(c) for c in cells):
                table[feature.spec.column] = cells.to_numpy()
        with atomic_path(self.path("splits.csv")) as temporary:
            table.to_csv(temporary, index=False)

    def write_ablation(self, ablation: Ablation) -> None:
        self.write_json(f"evaluation/ablation_{ablation.split}.json", ablation.to_json())

    def output_plots(self, evaluation: Evaluation) -> dict[str, list[str]]:
        """Each output's plots of an evaluated split (confusion matrix, scatter, embedding map) in the run's plots/."""
        split = evaluation.split
        return {name: task.plot(evaluation.predictions[name], split.targets[name], str(self.path("plots")), split.name)
                for name, task in self.tasks.items()}
