"""Retrieval metrics: hand-computed small cases, ties and duplicates, and agreement with pytorch-metric-learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plait.errors import PlaitError
from plait.evaluation.retrieval import _nearest, retrieval_metrics

# Six unit vectors in 2-D; the similarity of two is their dot product.
#   p0 ( 1,  0) A    p1 (.8, .6) A    p2 (.6, .8) B    p3 (0, 1) B    p4 (0, -1) A    p5 (-1, 0) C
POINTS = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0], [0.0, -1.0], [-1.0, 0.0]])
A, B, C, D = 0, 1, 2, 3
LABELS = torch.tensor([A, A, B, B, A, C])


def test_leave_one_out_by_hand():
    # Neighbours of each point among the others, most similar first (similarity in brackets; ties by index):
    #   p0 A: p1 A (.8), p2 B (.6), p3 B (0), p4 A (0), p5 C (-1)   R=2, AP = (1/2)(1)       = 0.5
    #   p1 A: p2 B (.96), p0 A (.8), p3 B (.6), p4 A, p5 C           R=2, AP = (1/2)(1/2)     = 0.25
    #   p2 B: p1 A (.96), p3 B (.8), p0 A (.6), p5 C, p4 A           R=1, AP = 0
    #   p3 B: p2 B (.8), p1 A (.6), p0 A (0), p5 C (0), p4 A (-1)    R=1, AP = 1
    #   p4 A: p0 A (0), p5 C (0), p1 A (-.6), p2 B, p3 B             R=2, AP = (1/2)(1 + 0)   = 0.5
    #   p5 C: no other C, so it is left out of every metric.
    # P@1 = (1+0+0+1+1)/5; R@2: every scored point has a same-label item in its first two; MAP@R = 2.25/5.
    metrics = retrieval_metrics(POINTS, LABELS, ks=(1, 2))
    assert metrics == pytest.approx({"precision_at_1": 0.6, "recall_at_1": 0.6, "recall_at_2": 1.0,
                                     "map_at_r": 0.45, "queries": 5})


def test_queries_against_a_gallery_by_hand():
    # q0 (.6, -.8) A: p4 A (.8), p0 A (.6), p1 A (0), p2 B, p5 C, p3 B     R=3, AP = 1
    # q1 (-.6, .8) C: p3 B (.8), p5 C (.6), p2 B (.28), ...                R=1, AP = 0
    # q2 (0, 1) D: no D in the gallery, so it is left out.
    # q3 (-.8, -.6) A: p5 C (.8), p4 A (.6), p3 B (-.6), p0 A, p2 B, p1 A  R=3, AP = (1/3)(1/2) = 1/6
    # P@1 = 1/3, R@1 = 1/3, R@2 = 3/3, MAP@R = (1 + 0 + 1/6)/3 = 7/18.
    queries = torch.tensor([[0.6, -0.8], [-0.6, 0.8], [0.0, 1.0], [-0.8, -0.6]])
    metrics = retrieval_metrics(queries, torch.tensor([A, C, D, A]), POINTS, LABELS, ks=(1, 2))
    assert metrics == pytest.approx({"precision_at_1": 1 / 3, "recall_at_1": 1 / 3, "recall_at_2": 1.0,
                                     "map_at_r": 7 / 18, "queries": 3})


def test_ties_go_to_the_lowest_gallery_index():
    # Three identical gallery items labelled X, Y, Y: every similarity ties, so the order is g0, g1, g2.
    # A Y query: g0 (X) first, so P@1 = 0; R = 2 and the first two are X, Y: AP = (1/2)(1/2) = 0.25.
    # With ks=(1,) only two places are searched while three items tie: the choice must still follow the index.
    gallery = torch.tensor([[1.0, 0.0]] * 3)
    x, y = 0, 1
    metrics = retrieval_metrics(torch.tensor([[1.0, 0.0]]), torch.tensor([y]), gallery, torch.tensor([x, y, y]), ks=(1,))
    assert metrics == pytest.approx({"precision_at_1": 0.0, "recall_at_1": 0.0, "map_at_r": 0.25, "queries": 1})
    metrics = retrieval_metrics(torch.tensor([[1.0, 0.0]]), torch.tensor([x]), gallery, torch.tensor([x, y, y]), ks=(1,))
    assert metrics == pytest.approx({"precision_at_1": 1.0, "recall_at_1": 1.0, "map_at_r": 1.0, "queries": 1})

    # Similarities 1 1 1 0 2 2 0 0 (torch.topk alone returns g5 before g4 here): g4 (X) must come first, then
    # g5 (Y), so P@1 = 0 and AP@2 = (1/2)(1/2).
    gallery = torch.tensor([[1.0], [1.0], [1.0], [0.0], [2.0], [2.0], [0.0], [0.0]])
    labels = torch.tensor([x, y, x, x, x, y, x, x])
    metrics = retrieval_metrics(torch.tensor([[1.0]]), torch.tensor([y]), gallery, labels, ks=(1,))
    assert metrics == pytest.approx({"precision_at_1": 0.0, "recall_at_1": 0.0, "map_at_r": 0.25, "queries": 1})


def test_nearest_ranks_ties_by_index_even_where_topk_does_not():
    generator = torch.Generator().manual_seed(0)
    similarity = torch.randint(0, 3, (50, 40), generator=generator).float()  # many ties in every row
    for k in (1, 3, 17, 40):
        expected = similarity.sort(dim=1, descending=True, stable=True).indices[:, :k]
        assert torch.equal(_nearest(similarity, k), expected)


def test_leave_one_out_skips_the_query_by_position_not_by_value():
    # Identical points: a query is never its own neighbour, but its duplicates are.
    points = torch.tensor([[0.0, 1.0]] * 3)
    metrics = retrieval_metrics(points, torch.tensor([0, 0, 1]), ks=(1,))
    # points 0 and 1 find each other first (index order: for 0 it is 1; for 1 it is 0); point 2 is alone in class 1
    assert metrics == pytest.approx({"precision_at_1": 1.0, "recall_at_1": 1.0, "map_at_r": 1.0, "queries": 2})


def test_no_scorable_query_gives_only_the_count():
    assert retrieval_metrics(POINTS[:3], torch.tensor([0, 1, 2])) == {"queries": 0}
    assert retrieval_metrics(POINTS[:2], torch.tensor([5, 6]), POINTS, LABELS) == {"queries": 0}


def test_k_beyond_the_gallery_means_the_whole_gallery():
    metrics = retrieval_metrics(POINTS, LABELS, ks=(1, 100))
    assert metrics["recall_at_100"] == 1.0


def test_bad_shapes_are_clear_errors():
    with pytest.raises(PlaitError, match="one integer label per row"):
        retrieval_metrics(POINTS, LABELS[:4])
    with pytest.raises(PlaitError, match="dimensions"):
        retrieval_metrics(torch.ones(2, 3), torch.tensor([0, 0]), POINTS, LABELS)
    with pytest.raises(PlaitError, match="needs its labels"):
        retrieval_metrics(POINTS, LABELS, POINTS)


def clustered(count: int, classes: int, dim: int, spread: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised points around one random centre per class, noisy enough that classes overlap."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=generator)
    labels = torch.randint(0, classes, (count,), generator=generator)
    points = centres[labels] + spread * torch.randn(count, dim, generator=generator)
    return torch.nn.functional.normalize(points, dim=1), labels


def brute_force(queries, query_labels, gallery, gallery_labels, ks, leave_one_out):
    """The definitions written out one query at a time with numpy's stable sort, as an independent check."""
    queries, gallery = queries.double().numpy(), gallery.double().numpy()
    query_labels, gallery_labels = query_labels.numpy(), gallery_labels.numpy()
    first, recall, average_precision = [], {K: [] for K in ks}, []
    for i, query in enumerate(queries):
        candidates = np.array([j for j in range(len(gallery)) if not (leave_one_out and j == i)])
        order = candidates[np.argsort(-(gallery[candidates] @ query), kind="stable")]
        hit = gallery_labels[order] == query_labels[i]
        r = int(hit.sum())
        if r == 0:
            continue
        first.append(hit[0])
        for K in ks:
            recall[K].append(hit[:K].any())
        average_precision.append(sum(hit[: i_ + 1].sum() / (i_ + 1) for i_ in range(r) if hit[i_]) / r)
    return {"precision_at_1": np.mean(first), **{f"recall_at_{K}": np.mean(recall[K]) for K in ks},
            "map_at_r": np.mean(average_precision), "queries": len(first)}


def test_agrees_with_pytorch_metric_learning_and_a_brute_force_search():
    pml = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    calculator = pml.AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count")
    points, labels = clustered(400, 7, 16, spread=1.2, seed=1)

    ours = retrieval_metrics(points, labels, ks=(1, 5, 10), chunk=64)
    theirs = calculator.get_accuracy(points, labels)  # no reference: leave-one-out within the queries
    assert 0.2 < ours["precision_at_1"] < 0.95  # classes overlap, so the comparison is not trivially 1.0
    assert ours["precision_at_1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours["map_at_r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)
    assert ours == pytest.approx(brute_force(points, labels, points, labels, (1, 5, 10), leave_one_out=True), abs=1e-9)

    # queries against a separate gallery; class 6 is missing from the gallery, so its queries are left out
    queries, query_labels = points[:150], labels[:150]
    gallery, gallery_labels = points[150:][labels[150:] != 6], labels[150:][labels[150:] != 6]
    ours = retrieval_metrics(queries, query_labels, gallery, gallery_labels, ks=(1, 5, 10))
    theirs = calculator.get_accuracy(queries, query_labels, gallery, gallery_labels, ref_includes_query=False)
    assert ours["queries"] == int((query_labels != 6).sum()) < 150
    assert ours["precision_at_1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours["map_at_r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)
    assert ours == pytest.approx(brute_force(queries, query_labels, gallery, gallery_labels, (1, 5, 10), False), abs=1e-9)


def test_chunk_size_does_not_change_the_result():
    points, labels = clustered(300, 5, 8, spread=1.0, seed=2)
    points = torch.cat([points, points[:40]])  # duplicates make exact ties
    labels = torch.cat([labels, labels[:40]])
    whole = retrieval_metrics(points, labels, ks=(1, 3, 20), chunk=4096)
    assert retrieval_metrics(points, labels, ks=(1, 3, 20), chunk=7) == whole
    assert retrieval_metrics(points, labels, ks=(1, 3, 20), chunk=1) == whole
