"""`embedding` output: learn an L2-normalised embedding where rows of the same class lie close together.

The target column holds each row's class; the loss (pytorch-metric-learning, by name) pulls same-class rows
together and pushes other classes apart, over the pairs or triplets of each batch that an optional miner picks.
Batches hold several rows of each class when `train.sampler` is `m_per_class`. Evaluation searches each row's
neighbours among the other rows of the split (leave-one-out) and reports Precision@1, Recall@k and mAP@R;
`gallery: train` adds the same metrics for the split's rows searched among the training split's
(`NAME.vs_train.precision_at_1`, ...).
"""

from __future__ import annotations

import inspect
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from plait.data.features.category import cell_key, label_counts, label_index, sorted_labels
from plait.errors import PlaitError
from plait.models.layers import mlp
from plait.registry import TASKS
from plait.settings.embedding import LOSSES, MINERS, EmbeddingOutput
from plait.tasks.base import TaskType


def _library_object(module, registry: dict, kind: str, name: str, options: dict, **required):
    """An instance of pytorch-metric-learning's class for `name`, with a clear error for a wrong option."""
    cls = getattr(module, registry[name])
    try:
        return cls(**required, **options)
    except TypeError as problem:
        accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs", *required)]
        raise PlaitError(f"{kind} {name} ({cls.__name__}): {problem}; its options are {', '.join(accepted)}") from None


class EmbeddingHead(nn.Module):
    """Fused vector → (MLP) → Linear → L2-normalised embedding."""

    def __init__(self, in_dim: int, hidden: list[int], dim: int):
        super().__init__()
        self.mlp, width = mlp(in_dim, hidden, dropout=0.0)
        self.project = nn.Linear(width, dim)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(self.mlp(fused)), dim=-1)


@TASKS.register("embedding")
class EmbeddingTask(TaskType):
    Settings = EmbeddingOutput
    main_metric = "precision_at_1"
    metric_modes: ClassVar[dict[str, str]] = {"precision_at_1": "max", "recall_at_*": "max", "map_at_r": "max"}

    def __init__(self, spec, base_dir="."):
        super().__init__(spec, base_dir)
        self.labels: list[str] = []
        self.criterion: nn.Module | None = None
        self.miner = None

    # ── the class column ──────────────────────────────────────────────────────────────────────────
    def fit(self, values):
        self.labels = sorted_labels(label_counts(values))
        self._index = label_index(self.labels)

    def state_dict(self):
        return {"labels": self.labels}

    def load_state_dict(self, state):
        self.labels = list(state["labels"])
        self._index = label_index(self.labels)

    def encode(self, value):
        key = cell_key(value)
        if key not in self._index:
            # unseen classes are normal in retrieval (a test split of new products): they get ids after the known ones
            self._index[key] = len(self._index)
        return torch.tensor(self._index[key], dtype=torch.long)

    def empty(self):
        return torch.tensor(0, dtype=torch.long)

    def label_names(self) -> list[str]:
        """Class names by id, the training classes first, then any met later (e.g. in the test split)."""
        return sorted(self._index, key=self._index.get)

    # ── model side ────────────────────────────────────────────────────────────────────────────────
    def build_head(self, in_dim, input_dims):
        return EmbeddingHead(in_dim, self.spec.hidden, self.spec.dim)

    def build_criterion(self) -> nn.Module:
        """The loss module, registered in the model (ArcFace's per-class weights train and save with it); also kept
        here for `loss`. Called once each time a model is built."""
        from pytorch_metric_learning import losses, miners

        spec = self.spec
        required = {"num_classes": len(self.labels), "embedding_size": spec.dim} if spec.loss.name == "arcface" else {}
        self.criterion = _library_object(losses, LOSSES, "loss", spec.loss.name, spec.loss.options, **required)
        self.miner = None if spec.miner.name == "none" else _library_object(miners, MINERS, "miner", spec.miner.name, spec.miner.options)
        return self.criterion

    def combine(self, predictions, weights):
        return F.normalize(super().combine(predictions, weights), dim=-1)

    def batch_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if len(labels) < 2:
            return embeddings.sum() * 0.0
        embeddings = embeddings.float()
        if self.spec.loss.name == "arcface":  # ArcFace classifies: rows of classes it has no weight for are left out
            known = labels < len(self.labels)
            embeddings, labels = embeddings[known], labels[known]
        pairs = self.miner(embeddings, labels) if self.miner is not None else None
        return self.criterion(embeddings, labels, pairs)

    def loss(self, prediction, target):
        """Training: the metric loss over the batch's rows with a class. Evaluation (a dict from `reduce`): the mean
        of the batches' losses, in split order."""
        present = target["present"]
        if isinstance(prediction, dict):
            return prediction["batch_loss"][present].mean() if present.any() else torch.tensor(0.0)
        return self.batch_loss(prediction[present], target["value"][present])

    def reduce(self, prediction, target):
        batch_loss = self.batch_loss(prediction[target["present"]], target["value"][target["present"]])
        return {"embedding": prediction, "batch_loss": batch_loss.detach().expand(len(prediction))}

    # ── evaluation ────────────────────────────────────────────────────────────────────────────────
    def metrics(self, prediction, target):
        from plait.evaluation.retrieval import retrieval_metrics

        present = target["present"]
        found = retrieval_metrics(prediction["embedding"][present], target["value"][present], ks=tuple(self.spec.recall_at))
        return {key: value for key, value in found.items() if key != "queries"}

    def gallery_metrics(self, prediction, target, gallery_prediction, gallery_target) -> dict[str, float]:
        """The split's rows searched among another split's (the gallery's)."""
        from plait.evaluation.retrieval import retrieval_metrics

        present, in_gallery = target["present"], gallery_target["present"]
        found = retrieval_metrics(prediction["embedding"][present], target["value"][present],
                                  gallery_prediction["embedding"][in_gallery], gallery_target["value"][in_gallery],
                                  ks=tuple(self.spec.recall_at))
        return {key: value for key, value in found.items() if key != "queries"}

    def decode(self, prediction):
        embeddings = prediction["embedding"] if isinstance(prediction, dict) else prediction
        return {f"{self.spec.name}_embedding": embeddings.float().tolist()}

    def plot(self, prediction, target, folder, split):
        if self.spec.map == "none":
            return []
        from plait.evaluation.embedding_map import embedding_map

        present = target["present"]
        names = self.label_names()
        labels = [names[i] for i in target["value"][present].tolist()]
        path = f"{folder}/embeddings_{split}.png"
        embedding_map(prediction["embedding"][present].numpy(), labels, path, method=self.spec.map,
                      title=f"{self.spec.name} ({split}, {self.spec.map})", seed=0)
        return [path]
