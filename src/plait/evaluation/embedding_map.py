"""2-D maps of embeddings: a UMAP, t-SNE or PCA projection drawn as a PNG scatter coloured by label.

umap-learn and scikit-learn are imported inside the functions that use them, never at module import: umap's
first fit compiles numba code for many seconds, and nothing on the training path should pay for a plot it may
not draw.
"""

from __future__ import annotations

import warnings
from collections import Counter

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from plait.errors import PlaitError  # noqa: E402
from plait.evaluation.plots import _save  # noqa: E402

METHODS = ("umap", "tsne", "pca")
MIN_NONLINEAR = 5  # below this many points UMAP's spectral start fails; every method then falls back to PCA
UMAP_NEIGHBOURS = 15  # umap-learn's default
TSNE_PERPLEXITY = 30.0  # scikit-learn's default
LEGEND_LABELS = 30  # the most frequent labels named in the legend; more would hide the map


def _pca(embeddings: np.ndarray) -> np.ndarray:
    """The first two principal components, signed so that each one's largest loading is positive (SVD alone
    leaves the sign to chance); zeros where there are fewer than two components."""
    centred = embeddings - embeddings.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    components = components[:2]
    components *= np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])[:, None]
    coordinates = np.zeros((len(embeddings), 2))
    coordinates[:, : len(components)] = centred @ components.T
    return coordinates


def project(embeddings: np.ndarray, method: str = "umap", seed: int = 0) -> np.ndarray:
    """Coordinates [N, 2] of the embeddings [N, D]: `umap` (umap-learn, 15 neighbours or N-1 if fewer),
    `tsne` (scikit-learn, PCA start, perplexity 30 or (N-1)/3 if smaller) or `pca`; the same seed gives the same
    map. Fewer than `MIN_NONLINEAR` points are always projected by PCA."""
    if method not in METHODS:
        raise PlaitError(f"unknown embedding map method {method!r}: use {', '.join(METHODS)}")
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) == 0:
        raise PlaitError(f"embeddings to map must be a non-empty [rows, dim] matrix, not shape {embeddings.shape}")
    rows = len(embeddings)
    if method == "pca" or rows < MIN_NONLINEAR:
        return _pca(embeddings.astype(np.float64))
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(TSNE_PERPLEXITY, (rows - 1) / 3)  # scikit-learn needs it below the number of points
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(embeddings)
    neighbours = min(UMAP_NEIGHBOURS, rows - 1)
    with warnings.catch_warnings():
        # a fixed random_state makes umap run on one thread, and our own neighbour search leaves it unable to
        # place new points later; it says both on every fit, and neither matters for a map
        warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*")
        warnings.filterwarnings("ignore", message=".*transform will be unavailable.*")
        import umap

        # Euclidean on L2-normalised embeddings ranks neighbours as the cosine does, and is umap's fastest metric.
        reducer = umap.UMAP(n_neighbors=neighbours, random_state=seed,
                            precomputed_knn=(*_nearest_neighbours(embeddings, neighbours), None))
        return reducer.fit_transform(embeddings)


def _nearest_neighbours(embeddings: np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Positions and Euclidean distances [N, k] of each point's k nearest, itself first, as umap's own search gives.

    Handing these to umap skips its search, whose numba code compiles anew in every interpreter: a first
    fit of 5,000 points takes about 10 s instead of 40 on two cores.
    """
    points = torch.as_tensor(np.ascontiguousarray(embeddings))
    positions, distances = [], []
    for start in range(0, len(points), chunk):
        distance = torch.cdist(points[start : start + chunk], points)
        # cdist's matrix-product shortcut can leave a point a hair away from itself, behind an exact duplicate
        distance[torch.arange(len(distance)), torch.arange(start, start + len(distance))] = 0.0
        nearest = distance.topk(k, dim=1, largest=False)
        positions.append(nearest.indices)
        distances.append(nearest.values)
    return torch.cat(positions).numpy(), torch.cat(distances).numpy()


def subsample(labels: list, max_points: int, seed: int = 0) -> np.ndarray:
    """Sorted positions of at most `max_points` items, drawn at random per label (stratified): each label keeps its
    share of the points and at least one point, so rare labels stay on the map. All of them when few enough."""
    if len(labels) <= max_points:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    counts = Counter(labels)
    quota = {label: max(1, count * max_points // len(labels)) for label, count in counts.items()}
    taken: Counter = Counter()
    chosen = []
    for position in order:
        label = labels[position]
        if taken[label] < quota[label]:
            taken[label] += 1
            chosen.append(position)
    # the one-point minimum can overshoot when labels outnumber the points; the shuffled order decides who stays
    return np.sort(np.array(chosen[:max_points]))


def label_colours(labels: list[str]) -> dict[str, tuple]:
    """One RGBA colour per distinct label, given in sorted label order (so a label keeps its colour across maps of
    the same labels): tab10 or tab20 when they suffice, else evenly spaced hues of a cyclic colour map."""
    distinct = sorted(set(labels))
    if len(distinct) <= 10:
        palette = matplotlib.colormaps["tab10"].colors
    elif len(distinct) <= 20:
        palette = matplotlib.colormaps["tab20"].colors
    else:
        palette = matplotlib.colormaps["hsv"](np.linspace(0, 1, len(distinct), endpoint=False))
    return {label: tuple(palette[i]) for i, label in enumerate(distinct)}


def embedding_map(embeddings: np.ndarray, labels: list[str], path: str, method: str = "umap", title: str = "",
                  seed: int = 0, max_points: int = 5000) -> str:
    """Write a PNG of the embeddings projected to 2-D by `method` (see `project`), one colour per label with a
    legend of the `LEGEND_LABELS` most frequent; at most `max_points` points, a stratified sample (see
    `subsample`). Returns `path`."""
    embeddings = np.asarray(embeddings)
    labels = [str(label) for label in labels]
    if len(labels) != len(embeddings):
        raise PlaitError(f"{len(embeddings)} embeddings but {len(labels)} labels: give one label per embedding")
    keep = subsample(labels, max_points, seed)
    labels = [labels[i] for i in keep]
    coordinates = project(embeddings[keep], method, seed)
    colours = label_colours(labels)
    counts = Counter(labels)

    figure, axes = plt.subplots(figsize=(7, 6))
    label_array = np.array(labels)
    for label, colour in colours.items():
        points = coordinates[label_array == label]
        axes.scatter(points[:, 0], points[:, 1], s=8, color=colour, alpha=0.7, linewidths=0, label=label)
    handles, names = axes.get_legend_handles_labels()
    frequent = set(sorted(names, key=lambda name: (-counts[name], name))[:LEGEND_LABELS])
    shown = [i for i, name in enumerate(names) if name in frequent]
    legend_title = f"{len(names)} labels, {LEGEND_LABELS} most frequent shown" if len(names) > LEGEND_LABELS else None
    axes.legend([handles[i] for i in shown], [names[i] for i in shown], title=legend_title, loc="upper left",
                bbox_to_anchor=(1.01, 1), fontsize=7, markerscale=2, frameon=False)
    axes.set(title=title or f"embeddings ({method}, {len(labels)} points)", xticks=[], yticks=[])
    _save(figure, path)
    return path
