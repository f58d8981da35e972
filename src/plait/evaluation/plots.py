"""PNG plots of a run: loss and metric curves per epoch, confusion matrices, predicted-vs-true scatters."""

from __future__ import annotations

from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from plait.files import atomic_path  # noqa: E402


def _save(figure, path: str) -> None:
    """Written as a PNG under a temporary name and renamed, like every file plait writes."""
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")  # the temporary name's suffix is not .png
    plt.close(figure)


def curve_plot(series: dict[str, list[tuple[int, float]]], path: str, title: str, ylabel: str) -> None:
    figure, axes = plt.subplots(figsize=(6, 4))
    for label, points in series.items():
        if points:
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=label)
    axes.set(title=title, xlabel="epoch", ylabel=ylabel)
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def history_plots(metrics: list[dict], folder: str) -> list[str]:
    """`loss.png` (training and validation loss per epoch) and one `<metric>.png` per validation metric."""
    by_key: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for record in metrics:
        if "epoch" not in record:
            continue
        for key, value in record.items():
            if key.startswith(("validation.", "train.epoch_loss")) and isinstance(value, (int, float)):
                by_key[key].append((record["epoch"], value))
    paths = [f"{folder}/loss.png"]
    curve_plot({"train": by_key.get("train.epoch_loss", []), "validation": by_key.get("validation.loss", [])}, paths[0], "loss", "loss")
    for key, points in by_key.items():
        if key.startswith("validation.") and key != "validation.loss" and not key.endswith(".loss"):
            metric = key.removeprefix("validation.")
            paths.append(f"{folder}/{metric}.png")
            curve_plot({"validation": points}, paths[-1], metric, metric.split(".")[-1])
    return paths


def confusion_plot(matrix: list[list[int]], labels: list[str], path: str, title: str) -> None:
    size = max(4.0, 0.5 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(matrix, cmap="Blues")
    axes.set(title=title, xlabel="predicted", ylabel="true", xticks=range(len(labels)), yticks=range(len(labels)))
    axes.set_xticklabels(labels, rotation=45, ha="right")
    axes.set_yticklabels(labels)
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            axes.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black", fontsize=8)
    figure.colorbar(image, ax=axes, fraction=0.046)
    _save(figure, path)


def scatter_plot(truth: list[float], predicted: list[float], path: str, title: str) -> None:
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.scatter(truth, predicted, s=8, alpha=0.6)
    low, high = min(truth + predicted, default=0), max(truth + predicted, default=1)
    axes.plot([low, high], [low, high], color="grey", linewidth=1)
    axes.set(title=title, xlabel="true", ylabel="predicted")
    _save(figure, path)


def optimisation_plot(finished: list[tuple[int, float, str]], best: list[tuple[int, float]], path: str, title: str,
                      ylabel: str) -> None:
    """A study's history: each finished trial's objective (completed trials filled, pruned ones hollow at the value
    they reached) and the best so far."""
    figure, axes = plt.subplots(figsize=(6, 4))
    for state, style in (("COMPLETE", {"color": "C0"}), ("PRUNED", {"facecolors": "none", "edgecolors": "C1"})):
        points = [(number, value) for number, value, kind in finished if kind == state]
        if points:
            axes.scatter([p[0] for p in points], [p[1] for p in points], s=22, label=state.lower(), **style)
    if best:
        axes.step([p[0] for p in best], [p[1] for p in best], where="post", color="C2", label="best so far")
    axes.set(title=title, xlabel="trial", ylabel=ylabel)
    axes.xaxis.get_major_locator().set_params(integer=True)  # trials are whole numbers
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)
