"""`category` output: classify into the labels seen in training; cross-entropy or focal loss, accuracy and F1."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from plait.data.features.category import cell_key, label_counts, label_index, sorted_labels
from plait.errors import BadSample, PlaitError
from plait.models.layers import head
from plait.registry import TASKS
from plait.settings.outputs import CategoryOutput
from plait.tasks.base import TaskType


@TASKS.register("category")
class CategoryTask(TaskType):
    Settings = CategoryOutput
    main_metric = "accuracy"
    metric_modes: ClassVar[dict[str, str]] = {"accuracy": "max", "macro_f1": "max", "weighted_f1": "max"}

    def __init__(self, spec, base_dir="."):
        super().__init__(spec, base_dir)
        self.labels: list[str] = []
        self.weights: list[float] | None = None
        self._weight: torch.Tensor | None = None  # `weights` on the loss's device

    def fit(self, values):
        counts = label_counts(values)
        self._weight = None
        self.labels = sorted_labels(counts)
        if len(self.labels) < 2:  # torchmetrics would fail later with a message about num_classes
            found = f"only the label {self.labels[0]!r}" if self.labels else "no labels"
            raise PlaitError(f"outputs.{self.spec.name}: the training split holds {found}; a category output needs at "
                             "least two classes (check the column, data.filter and the split)")
        weights = self.spec.class_weights
        if weights == "balanced":
            self.weights = [len(values) / (len(counts) * counts[label]) for label in self.labels]
        elif isinstance(weights, dict):
            unknown = sorted(set(weights) - set(self.labels))
            if unknown:
                raise BadSample(f"class_weights name labels not in the training split: {', '.join(unknown)}")
            self.weights = [float(weights.get(label, 1.0)) for label in self.labels]

    def state_dict(self):
        return {"labels": self.labels, "weights": self.weights}

    def load_state_dict(self, state):
        self.labels, self.weights = list(state["labels"]), state["weights"]
        self._weight = None
        self._index = label_index(self.labels)

    def encode(self, value):
        if not hasattr(self, "_index"):
            self._index = label_index(self.labels)
        key = cell_key(value)
        if key not in self._index:
            raise BadSample(f"label {key!r} does not occur in the training split")
        return torch.tensor(self._index[key], dtype=torch.long)

    def empty(self):
        return torch.tensor(0, dtype=torch.long)

    def build_head(self, in_dim, input_dims):
        return head(in_dim, len(self.labels), self.spec)

    def loss(self, prediction, target):
        weight = self.class_weight(prediction.device)
        if self.spec.loss == "focal":
            return focal_over_present(prediction, target, self.spec.gamma, weight, self.spec.label_smoothing)
        return cross_entropy_over_present(prediction, target, weight, self.spec.label_smoothing)

    def evaluation_loss(self, prediction, target):
        """The class-weighted cross-entropy, whatever the training loss (see `loss` in the settings)."""
        return cross_entropy_over_present(prediction, target, self.class_weight(prediction.device))

    def class_weight(self, device) -> torch.Tensor | None:
        """The class weights as a tensor on `device`, made once rather than every step."""
        if not self.weights:
            return None
        if self._weight is None or self._weight.device != device:
            self._weight = torch.tensor(self.weights, device=device)
        return self._weight

    def metrics(self, prediction, target):
        from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

        present = target["present"]
        guess, truth, k = prediction[present].argmax(-1), target["value"][present], len(self.labels)
        if len(truth) == 0:
            return {}
        return {
            "accuracy": float(multiclass_accuracy(guess, truth, k, average="micro")),
            "macro_f1": float(multiclass_f1_score(guess, truth, k, average="macro")),
            "weighted_f1": float(multiclass_f1_score(guess, truth, k, average="weighted")),
        }

    def baseline(self, train_target, rows):
        return frequency_logits(train_target, len(self.labels), rows)

    def combine(self, predictions, weights):
        return mean_of_probabilities(predictions, weights)

    def decode(self, prediction):
        probabilities = prediction.float().softmax(-1)
        columns = {f"{self.spec.name}_pred": [self.labels[i] for i in probabilities.argmax(-1).tolist()]}
        for index, label in enumerate(self.labels):
            columns[f"{self.spec.name}_prob_{label}"] = probabilities[:, index].tolist()
        return columns

    def class_names(self):
        return self.labels

    def plot(self, prediction, target, folder, split):
        return [plot_confusion(prediction, target, self.labels, folder, self.spec.name, split)]


def frequency_logits(train_target: dict, classes: int, rows: int) -> torch.Tensor:
    """Logits [rows, classes] that give every row the training split's class frequencies (so its guess is the most
    frequent class): the baseline of a classifier."""
    counts = torch.bincount(train_target["value"][train_target["present"]], minlength=classes).double()
    return (counts / counts.sum().clamp(min=1)).clamp(min=1e-9).log().float().expand(rows, -1)


def mean_of_probabilities(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Late fusion of classifiers: logits [N, inputs, classes] and weights [N, inputs] → the log of the weighted mean
    of the inputs' class probabilities (so a softmax of the result gives that mean exactly)."""
    probabilities = (weights[..., None] * logits.float().softmax(-1)).sum(dim=1)
    return probabilities.clamp(min=1e-12).log()


def cross_entropy_over_present(prediction, target, weight=None, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of the logits against class indices `target["value"]`, over the rows whose target is present
    (0, still attached to the graph, when none is). Shared by every task that classifies (category, binned)."""
    present = target["present"]
    if not present.any():
        return prediction.sum() * 0.0
    return F.cross_entropy(prediction[present].float(), target["value"][present], weight=weight, label_smoothing=label_smoothing)


def focal_over_present(prediction, target, gamma: float, weight=None, label_smoothing: float = 0.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) over the rows whose target is present: each row's cross-entropy (class-weighted
    and smoothed as `cross_entropy_over_present`'s) times (1 - p)^gamma, p the softmax probability of its true class,
    divided by the summed weights of the rows' true classes (their count without weights), as PyTorch's weighted mean
    does; so gamma = 0 gives the cross-entropy, and `weight` acts as the per-class alpha."""
    present = target["present"]
    if not present.any():
        return prediction.sum() * 0.0
    logits, truth = prediction[present].float(), target["value"][present]
    per_row = F.cross_entropy(logits, truth, weight=weight, label_smoothing=label_smoothing, reduction="none")
    p_true = logits.softmax(-1).gather(1, truth[:, None]).squeeze(1)
    total = weight[truth].sum() if weight is not None else len(truth)
    # clamped: with gamma < 1 the factor's gradient at p = 1 would be infinite (and 0 × inf is nan)
    return ((1 - p_true).clamp(min=1e-12) ** gamma * per_row).sum() / total


def plot_confusion(prediction, target, labels: list[str], folder: str, name: str, split: str) -> str:
    """`confusion_NAME.png`: true class against the arg-max of the logits, over the rows whose target is present."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    from plait.evaluation.plots import confusion_plot

    present = target["present"]
    matrix = multiclass_confusion_matrix(prediction[present].argmax(-1), target["value"][present], len(labels))
    path = f"{folder}/confusion_{name}.png"
    confusion_plot(matrix.tolist(), labels, path, title=f"{name} ({split})")
    return path
