"""Per-class precision, recall, F1 and support of a classifier's predictions over a split."""

from __future__ import annotations

import torch


def per_class(logits: torch.Tensor, target: dict[str, torch.Tensor], names: list[str]) -> list[dict]:
    """One dict per class (name, precision, recall, f1, support), over the rows whose target is present. A class
    never predicted has precision 0, one never true has recall 0 (and support 0), as scikit-learn reports them."""
    present = target["present"]
    guess, truth = logits[present].argmax(-1), target["value"][present]
    classes = len(names)
    true_positive = torch.bincount(truth[guess == truth], minlength=classes).double()
    predicted = torch.bincount(guess, minlength=classes).double()
    support = torch.bincount(truth, minlength=classes).double()
    precision = true_positive / predicted.clamp(min=1)
    recall = true_positive / support.clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    return [{"class": name, "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
             "support": int(support[i])} for i, name in enumerate(names)]
