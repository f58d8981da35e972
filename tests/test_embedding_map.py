"""2-D maps of embeddings: projections that keep clusters apart, the PNG and its colours, sampling, tiny inputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from plait.errors import PlaitError
from plait.evaluation.embedding_map import embedding_map, label_colours, project, subsample


def clusters(per_cluster: int = 40, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three tight, far-apart clusters of L2-normalised points, and their cluster number."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:3] * 5
    labels = np.repeat(np.arange(3), per_cluster)
    points = centres[labels] + 0.3 * rng.normal(size=(len(labels), dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32), labels


def assert_separated(coordinates: np.ndarray, labels: np.ndarray) -> None:
    """Every cluster's points lie closer to their own centre than the nearest other centre is to it, halved."""
    assert coordinates.shape == (len(labels), 2) and np.isfinite(coordinates).all()
    centres = np.stack([coordinates[labels == k].mean(axis=0) for k in np.unique(labels)])
    for k, centre in enumerate(centres):
        spread = np.linalg.norm(coordinates[labels == k] - centre, axis=1).max()
        gap = min(np.linalg.norm(centre - other) for j, other in enumerate(centres) if j != k)
        assert spread < gap / 2, f"cluster {k}: radius {spread:.3f}, nearest other centre {gap:.3f}"


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_projection_keeps_clusters_apart_and_repeats_with_the_seed(method):
    points, labels = clusters()
    coordinates = project(points, method, seed=1)
    assert_separated(coordinates, labels)
    np.testing.assert_array_equal(project(points, method, seed=1), coordinates)


def test_pca_projection_is_the_top_two_principal_components():
    # points spread mostly along x, less along y, barely along z: PCA keeps x and y (up to sign) and drops z
    rng = np.random.default_rng(0)
    points = rng.normal(size=(200, 3)) * np.array([10.0, 3.0, 0.1])
    coordinates = project(points, "pca")
    centred = points - points.mean(axis=0)
    assert abs(np.corrcoef(coordinates[:, 0], centred[:, 0])[0, 1]) > 0.99
    assert abs(np.corrcoef(coordinates[:, 1], centred[:, 1])[0, 1]) > 0.99


def pixels_near(image: np.ndarray, colour: tuple, alpha: float = 0.7, tolerance: float = 12) -> int:
    """How many pixels show `colour` drawn at `alpha` over a white background."""
    blended = 255 * (alpha * np.array(colour[:3]) + (1 - alpha))
    return int((np.abs(image[..., :3].astype(float) - blended).max(axis=-1) < tolerance).sum())


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_map_is_a_png_with_one_colour_per_label(tmp_path, method):
    points, numbers = clusters()
    names = ["cat", "dog", "bird"]
    labels = [names[n] for n in numbers]
    path = embedding_map(points, labels, str(tmp_path / "maps" / f"{method}.png"), method=method, title="test map")
    assert path == str(tmp_path / "maps" / f"{method}.png")
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == (660, 770, 3)  # 7 × 6 inches at 110 dpi
    assert (image < 250).any(axis=-1).mean() > 0.005  # not blank: points, axes, legend
    colours = label_colours(labels)
    assert len(set(colours.values())) == 3
    for name in names:
        assert pixels_near(image, colours[name]) > 50, f"no points drawn in {name}'s colour"
    assert not list((tmp_path / "maps").glob("*.tmp*"))


def test_label_colours_are_distinct_and_follow_the_sorted_labels():
    many = [f"class{i}" for i in range(45)]
    colours = label_colours(many[::-1])
    assert len(set(colours.values())) == 45
    assert list(colours) == sorted(many)
    assert label_colours(["b", "a"]) == label_colours(["a", "b", "a"])


def test_subsample_is_stratified_seeded_and_capped():
    labels = ["common"] * 990 + ["rare"] * 10
    chosen = subsample(labels, 100, seed=0)
    picked = [labels[i] for i in chosen]
    assert len(chosen) == 100 and picked.count("rare") == 1 and picked.count("common") == 99
    assert list(chosen) == sorted(set(chosen))
    np.testing.assert_array_equal(subsample(labels, 100, seed=0), chosen)
    assert not np.array_equal(subsample(labels, 100, seed=1), chosen)
    # more labels than points: still at most max_points
    assert len(subsample([str(i) for i in range(50)], 10)) == 10
    np.testing.assert_array_equal(subsample(labels[:20], 100), np.arange(20))


def test_map_draws_at_most_max_points(tmp_path):
    points, numbers = clusters(per_cluster=100)
    embedding_map(points, [str(n) for n in numbers], str(tmp_path / "map.png"), method="pca", max_points=30)
    assert Image.open(tmp_path / "map.png").size == (770, 660)


@pytest.mark.parametrize("rows", [1, 2, 4, 6])
@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_tiny_inputs_still_make_a_map(tmp_path, rows, method):
    points, numbers = clusters(per_cluster=2)
    coordinates = project(points[:rows], method)
    assert coordinates.shape == (rows, 2) and np.isfinite(coordinates).all()
    embedding_map(points[:rows], [str(n) for n in numbers[:rows]], str(tmp_path / "map.png"), method=method)
    assert (tmp_path / "map.png").is_file()


def test_bad_requests_are_clear_errors(tmp_path):
    points, _ = clusters(per_cluster=2)
    with pytest.raises(PlaitError, match="unknown embedding map method 'mds'"):
        project(points, "mds")
    with pytest.raises(PlaitError, match="non-empty"):
        project(np.zeros((0, 4)), "pca")
    with pytest.raises(PlaitError, match="6 embeddings but 2 labels"):
        embedding_map(points, ["a", "b"], str(tmp_path / "map.png"))


def test_importing_the_module_does_not_import_umap_or_scikit_learn():
    code = ("import sys, plait.evaluation.embedding_map; "
            "print(sorted(m for m in ('umap', 'numba', 'sklearn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_umap_keeps_clusters_apart_and_handles_few_points(tmp_path):
    points, numbers = clusters()
    coordinates = project(points, "umap", seed=0)
    assert_separated(coordinates, numbers)
    np.testing.assert_array_equal(project(points, "umap", seed=0), coordinates)
    assert project(points[:6], "umap").shape == (6, 2)
    path = embedding_map(points, [str(n) for n in numbers], str(tmp_path / "umap.png"), method="umap")
    assert Image.open(path).size == (770, 660)
