"""Retrieval metrics of embeddings: Precision@1, Recall@K and MAP@R, by exact nearest-neighbour search.

The embeddings are L2-normalised, so similarity is the inner product (cosine). Each query's neighbours are
found in the gallery, or, without a gallery, among the other queries (leave-one-out). The search is exact: the
similarities of a chunk of queries at a time against the whole gallery, then `torch.topk`, so memory stays
about `chunk × gallery` floats, plus `chunk × R` for the largest class's R (100,000 × 64 leave-one-out: about
35 s and 1.2 GB on two cores). Equal similarities are ranked by gallery index, lowest first, so the numbers do
not depend on the chunk size, the thread count or the order topk happens to return ties in.

The numbers match pytorch-metric-learning's `AccuracyCalculator` (`precision_at_1`,
`mean_average_precision_at_r` with k="max_bin_count"), checked in tests/test_retrieval_metrics.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from plait.errors import PlaitError

TIE_ROWS = 64  # rows at a time in the full sort that settles ties at the k-th place (rare: duplicates)


def _check(embeddings: torch.Tensor, labels: torch.Tensor, what: str) -> None:
    if embeddings.ndim != 2:
        raise PlaitError(f"{what} embeddings must be a [rows, dim] matrix, not shape {tuple(embeddings.shape)}")
    if labels.ndim != 1 or len(labels) != len(embeddings):
        raise PlaitError(f"{what}: {len(embeddings)} embeddings but labels of shape {tuple(labels.shape)}; "
                         "give one integer label per row")


def _nearest(similarity: torch.Tensor, k: int) -> torch.Tensor:
    """Gallery indices [rows, k] of the k most similar items per row, by similarity then gallery index."""
    scores, indices = similarity.topk(min(k + 1, similarity.shape[1]), dim=1)
    tied = (scores[:, k] == scores[:, k - 1]).nonzero().flatten() if scores.shape[1] > k else []
    indices = indices[:, :k]
    # Where the k-th place is shared with an item left out (the one place more shows it), topk chose any of the
    # tied items: settle those rows with a stable full sort, which keeps gallery order among equal scores.
    for rows in torch.split(torch.as_tensor(tied, dtype=torch.long), TIE_ROWS):
        indices[rows] = similarity[rows].sort(dim=1, descending=True, stable=True).indices[:, :k]
    # Within the chosen k, equal scores in gallery order: sort by index, then stably by score.
    indices = indices.sort(dim=1).values
    order = similarity.gather(1, indices).sort(dim=1, descending=True, stable=True).indices
    return indices.gather(1, order)


def retrieval_metrics(queries: torch.Tensor, query_labels: torch.Tensor, gallery: torch.Tensor | None = None,
                      gallery_labels: torch.Tensor | None = None, ks: Sequence[int] = (1, 5, 10),
                      chunk: int = 1024) -> dict[str, float]:
    """`precision_at_1`, `recall_at_K` for each K in `ks`, `map_at_r` and `queries` (how many were scored).

    - `precision_at_1`: fraction of queries whose nearest neighbour shares their label.
    - `recall_at_K`: fraction of queries with at least one same-label item among their K nearest neighbours.
      This is the metric-learning convention of the CUB-200 / Stanford Online Products papers, not the
      information-retrieval recall (the share of all relevant items found). K above the gallery size means
      the whole gallery.
    - `map_at_r`: mean average precision at R (Musgrave et al. 2020, "A Metric Learning Reality Check"): with R
      the number of gallery items sharing the query's label, AP@R = (1/R) Σ_{i≤R} P(i)·rel(i), where P(i) is
      the precision among the i nearest and rel(i) whether the i-th nearest shares the label.

    Without a gallery each query is searched among the other queries, never itself (left out by position, so
    an identical duplicate still counts as a neighbour). A query with no same-label item to find (its label
    absent from the gallery, or alone in its class when leave-one-out) is left out of every metric; when no
    query remains the result is just {"queries": 0}.

    Labels are integer tensors; `chunk` queries are compared with the whole gallery at a time.
    """
    if not ks or min(ks) < 1:
        raise PlaitError(f"retrieval ks must be positive integers, got {list(ks)}")
    queries, query_labels = torch.as_tensor(queries), torch.as_tensor(query_labels)
    leave_one_out = gallery is None
    if leave_one_out:
        gallery, gallery_labels = queries, query_labels
    elif gallery_labels is None:
        raise PlaitError("retrieval: a gallery needs its labels too")
    gallery, gallery_labels = torch.as_tensor(gallery), torch.as_tensor(gallery_labels)
    _check(queries, query_labels, "query")
    _check(gallery, gallery_labels, "gallery")
    if queries.shape[1] != gallery.shape[1]:
        raise PlaitError(f"query embeddings have {queries.shape[1]} dimensions but the gallery's have {gallery.shape[1]}")
    queries, gallery = queries.float(), gallery.float()
    query_labels, gallery_labels = query_labels.long(), gallery_labels.long()

    if len(gallery) == 0:
        return {"queries": 0}
    # R: how many gallery items share each query's label (itself excluded when leave-one-out)
    classes, gallery_class = gallery_labels.unique(return_inverse=True)
    counts = torch.bincount(gallery_class, minlength=len(classes))
    position = torch.searchsorted(classes, query_labels).clamp(max=len(classes) - 1)
    relevant = torch.where(classes[position] == query_labels, counts[position], 0) - int(leave_one_out)
    scored = (relevant > 0).nonzero().flatten()
    if len(scored) == 0:
        return {"queries": 0}

    candidates = len(gallery) - int(leave_one_out)
    k = min(max(max(ks), int(relevant[scored].max())), candidates)
    first_hits, hits_within = [], {K: [] for K in ks}
    average_precisions = []
    for start in range(0, len(scored), chunk):
        rows = scored[start : start + chunk]
        similarity = queries[rows] @ gallery.T
        if leave_one_out:
            similarity[torch.arange(len(rows), device=rows.device), rows] = float("-inf")
        neighbours = _nearest(similarity, k)
        hit = gallery_labels[neighbours] == query_labels[rows, None]  # [rows, k]
        first_hits.append(hit[:, 0])
        for K in ks:
            hits_within[K].append(hit[:, : min(K, k)].any(dim=1))
        r = relevant[rows]
        place = torch.arange(1, k + 1, device=hit.device)
        found = hit & (place <= r[:, None])
        precision = found.cumsum(dim=1).double() / place
        average_precisions.append((precision * found).sum(dim=1) / r)

    metrics = {"precision_at_1": torch.cat(first_hits).double().mean().item()}
    for K in ks:
        metrics[f"recall_at_{K}"] = torch.cat(hits_within[K]).double().mean().item()
    metrics["map_at_r"] = torch.cat(average_precisions).mean().item()
    metrics["queries"] = len(scored)
    return metrics
