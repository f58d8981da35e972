"""Per-class precision, recall, F1 and support of a classifier's predictions over a split."""

from __future__ import annotations

import torch


def per_class(logits: torch.Tensor, target: dict[str, torch.Tensor], names: list[str]) -> list[dict]:
    """One dict per class (name, precision, recall, f1, support), over the rows whose target is present. A class
    never predicted has precision 0, one never true has recall 0 (and support 0), as scikit-learn reports them."""
    from torchmetrics.functional.classification import multiclass_f1_score, multiclass_precision, multiclass_recall

    present = target["present"]
    guess, truth, classes = logits[present].argmax(-1), target["value"][present], len(names)
    scores = {name: metric(guess, truth, classes, average="none")
              for name, metric in (("precision", multiclass_precision), ("recall", multiclass_recall), ("f1", multiclass_f1_score))}
    support = torch.bincount(truth, minlength=classes)
    return [{"class": name, **{key: float(values[i]) for key, values in scores.items()}, "support": int(support[i])}
            for i, name in enumerate(names)]
