"""FAISS index of embeddings: exact and IVF search, saving and loading, the neighbour table, and forked workers."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pandas as pd
import pytest

from plait.errors import PlaitError
from plait.inference.index import (IVF_FROM_ROWS, build_index, default_nlist, describe, load_index, neighbours_table,
                                   save_index, search)

# Unit vectors at 0°, 30°, 90°, 180° and 200°: from 10° the nearest are rows 0, 1, 2 (cosines .98, .94, .17).
ANGLES = np.radians([0.0, 30.0, 90.0, 180.0, 200.0])
POINTS = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1).astype(np.float32)
METADATA = pd.DataFrame({"row": [10, 11, 12, 13, 14], "label": ["a", "a", "b", "c", "c"],
                         "path": [f"img/{i}.png" for i in range(5)]})


def clustered(rows: int, seed: int = 0) -> np.ndarray:
    """Normalised points around 20 random centres in 32-D."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, 32))
    points = centres[rng.integers(0, 20, rows)] + 0.5 * rng.normal(size=(rows, 32))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_flat_search_finds_the_known_nearest_rows():
    index = build_index(POINTS, kind="flat")
    query = np.array([[np.cos(np.radians(10)), np.sin(np.radians(10))]], dtype=np.float32)
    scores, positions = search(index, query, k=3)
    assert positions.tolist() == [[0, 1, 2]]
    np.testing.assert_allclose(scores[0], np.cos(np.radians([10.0, 20.0, 80.0])), atol=1e-6)
    # a row of the index searched for itself comes first, with cosine 1; 190° is nearest to 180° and 200°
    scores, positions = search(index, POINTS[[3]], k=2)
    assert positions.tolist() == [[3, 4]] and scores[0, 0] == pytest.approx(1.0)


def test_k_is_capped_at_the_index_size():
    scores, positions = search(build_index(POINTS), POINTS[:2], k=50)
    assert positions.shape == scores.shape == (2, 5)
    assert sorted(positions[0]) == [0, 1, 2, 3, 4]


def test_auto_is_flat_for_small_sets_and_the_ivf_defaults():
    assert describe(build_index(POINTS))["kind"] == "flat"
    assert describe(build_index(clustered(2000), kind="ivf")) == {
        "kind": "ivf", "dim": 32, "count": 2000, "nlist": 51, "nprobe": 6}  # 2000 // 39 = 51 < 4·√2000 ≈ 179
    assert default_nlist(IVF_FROM_ROWS) == round(4 * IVF_FROM_ROWS**0.5) == 894
    assert default_nlist(10) == 1


def test_ivf_searching_every_cell_equals_flat_search():
    points = clustered(2000)
    queries = clustered(100, seed=1)
    flat_scores, flat_positions = search(build_index(points, kind="flat"), queries, k=10)
    ivf = build_index(points, kind="ivf", nlist=40, nprobe=40)
    ivf_scores, ivf_positions = search(ivf, queries, k=10)
    np.testing.assert_array_equal(ivf_positions, flat_positions)
    np.testing.assert_allclose(ivf_scores, flat_scores, atol=1e-5)


def test_ivf_with_too_few_items_in_its_cells_searches_them_all():
    points = clustered(2000)
    ivf = build_index(points, kind="ivf", nlist=40, nprobe=1)  # about 50 items per cell, far fewer than k
    scores, positions = search(ivf, points[:20], k=300)
    assert (positions >= 0).all()
    np.testing.assert_array_equal(positions, search(build_index(points, kind="flat"), points[:20], k=300)[1])


def test_searching_every_cell_still_works_once_faiss_torch_utils_is_imported():
    # pytorch-metric-learning imports it, and it replaces Index.search with a version that takes no `params`
    import faiss.contrib.torch_utils  # noqa: F401

    points = clustered(2000)
    scores, positions = search(build_index(points, kind="ivf", nlist=40, nprobe=1), points[:5], k=300)
    np.testing.assert_array_equal(positions, search(build_index(points, kind="flat"), points[:5], k=300)[1])


def test_ivf_builds_are_reproducible():
    points, queries = clustered(2000), clustered(50, seed=2)
    first = search(build_index(points, kind="ivf", nprobe=2, seed=3), queries, k=5)
    second = search(build_index(points, kind="ivf", nprobe=2, seed=3), queries, k=5)
    np.testing.assert_array_equal(first[1], second[1])


def test_bad_requests_are_clear_errors():
    with pytest.raises(PlaitError, match="unknown index kind 'hnsw'"):
        build_index(POINTS, kind="hnsw")
    with pytest.raises(PlaitError, match="1 to 5 cells"):
        build_index(POINTS, kind="ivf", nlist=6)
    with pytest.raises(PlaitError, match="3 dimensions but the index holds 2"):
        search(build_index(POINTS), np.ones((1, 3)), k=1)


def test_save_and_load_give_the_same_search_and_metadata(tmp_path):
    points = clustered(2000)
    metadata = pd.DataFrame({"row": np.arange(2000), "label": [f"class{i % 7}" for i in range(2000)]})
    for kind in ("flat", "ivf"):
        index = build_index(points, kind=kind, nprobe=3)
        path = save_index(tmp_path / "indexes", f"test_{kind}", index, metadata, {"split": "test", "output": "emb"})
        assert path == tmp_path / "indexes" / f"test_{kind}.json"
        loaded, loaded_metadata, info = load_index(tmp_path / "indexes", f"test_{kind}")
        assert info == {**describe(index), "split": "test", "output": "emb"}
        assert info["nprobe"] == (3 if kind == "ivf" else None)
        pd.testing.assert_frame_equal(loaded_metadata, metadata)
        before, after = search(index, points[:30], k=8), search(loaded, points[:30], k=8)
        np.testing.assert_array_equal(before[1], after[1])
        np.testing.assert_array_equal(before[0], after[0])
    assert not list((tmp_path / "indexes").glob(".*tmp"))  # no temporary files left behind


def test_save_refuses_metadata_of_another_length_and_info_that_overrides_the_index(tmp_path):
    with pytest.raises(PlaitError, match="holds 5 embeddings but its metadata has 4 rows"):
        save_index(tmp_path, "x", build_index(POINTS), METADATA.head(4), {})
    with pytest.raises(PlaitError, match="cannot set count"):
        save_index(tmp_path, "x", build_index(POINTS), METADATA, {"count": 3})


def test_a_missing_index_names_what_the_folder_holds(tmp_path):
    with pytest.raises(PlaitError, match="does not exist"):
        load_index(tmp_path / "nowhere", "train")
    with pytest.raises(PlaitError, match="holds no index"):
        load_index(tmp_path, "train")
    save_index(tmp_path, "validation", build_index(POINTS), METADATA, {})
    save_index(tmp_path, "test", build_index(POINTS), METADATA, {})
    with pytest.raises(PlaitError, match=r"no index 'train' \(train.faiss, train.parquet, train.json missing\): "
                                         r".* holds test, validation"):
        load_index(tmp_path, "train")
    (tmp_path / "test.parquet").unlink()
    with pytest.raises(PlaitError, match=r"test.parquet missing\): .* holds validation$"):
        load_index(tmp_path, "test")


def test_neighbours_table_has_a_row_per_query_and_neighbour_in_rank_order():
    index = build_index(POINTS)
    scores, positions = search(index, POINTS[[0, 3]], k=3)  # row 0: 0, 1, 2; row 3: 3, 4, then 2 (90°)
    table = neighbours_table(scores, positions, METADATA, ["first", "fourth"])
    assert list(table.columns) == ["query", "rank", "score", "row", "label", "path"]
    assert len(table) == 6
    assert table["query"].tolist() == ["first"] * 3 + ["fourth"] * 3
    assert table["rank"].tolist() == [1, 2, 3, 1, 2, 3]
    assert table["row"].tolist() == [10, 11, 12, 13, 14, 12]
    assert table["label"].tolist() == ["a", "a", "b", "c", "c", "b"]
    np.testing.assert_allclose(table["score"], scores.reshape(-1))
    with pytest.raises(PlaitError, match="one id per row"):
        neighbours_table(scores, positions, METADATA, ["only one"])
    with pytest.raises(PlaitError, match="columns named score"):
        neighbours_table(scores, positions, METADATA.rename(columns={"path": "score"}), ["a", "b"])


def _search_in_child(points: np.ndarray) -> list[int]:
    return search(build_index(points, kind="flat"), points[:4], k=2)[1][:, 0].tolist()


def test_a_forked_worker_can_search_after_the_parent_did():
    # Without the at-fork thread reset in plait.inference.index, this hangs: GNU OpenMP's threads do not survive
    # fork. The import of torch first is the order plait runs in (and it shares one OpenMP runtime with FAISS).
    import torch  # noqa: F401

    points = clustered(20_000)
    search(build_index(points, kind="flat"), points[:2000], k=10)  # the parent's OpenMP threads now exist
    with multiprocessing.get_context("fork").Pool(2) as pool:
        result = pool.map_async(_search_in_child, [points, points])
        assert result.get(timeout=60) == [[0, 1, 2, 3]] * 2
