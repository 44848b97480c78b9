"""The nearest-neighbour profile of an item table: how hard it is to search approximately.

An ANN index is fast at high recall when a query's top-k neighbours stand out from the
rest of the catalog (high contrast) and slow when the k-th neighbour is barely closer
than a random item. These numbers, scale-free so that tables of different norms and
sizes compare, are what bench/index_1m.py uses to show that a generated catalog is
shaped like a real one:

- ``gap10`` / ``gap50``: median of (s1 - s10) / |s1| and (s1 - s50) / |s1|, s_k the k-th
  best inner product (the score the model ranks by);
- ``z1`` / ``z50``: median of (s_k - mean score) / std of scores over the whole table:
  how far above the crowd the 1st and the 50th neighbour stand;
- ``relative_contrast``: mean over queries of (root-mean-square L2 distance to the
  table) / (L2 distance to the nearest item) (He, Kumar & Chang, ICML 2012): near 1 means every item
  is about as far as the nearest, the regime where no index beats a scan.

Queries are either given (users' vectors) or a sample of the items themselves (their own
entry excluded). numpy only (faiss when installed, for the exact top-k on large tables).
"""

from __future__ import annotations

import numpy as np

K = 50


def _top_k(table: np.ndarray, queries: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        import faiss
    except ImportError:  # numpy fallback, chunked over the table
        faiss = None
    if faiss is not None:
        index = faiss.IndexFlatIP(table.shape[1]) if metric == "ip" else faiss.IndexFlatL2(table.shape[1])
        index.add(table)
        return index.search(queries, k)
    scores = queries @ table.T if metric == "ip" else -(
        (queries ** 2).sum(1)[:, None] - 2 * queries @ table.T + (table ** 2).sum(1)[None, :])
    ids = np.argsort(-scores, axis=1)[:, :k]
    top = np.take_along_axis(scores, ids, axis=1)
    return (top if metric == "ip" else -top), ids


def item_profile(table: np.ndarray, queries: np.ndarray | None = None, sample: int = 500,
                 seed: int = 0) -> dict[str, float | int]:
    """The neighbour profile of `table` [N, D] seen from `queries` (default: `sample` items)."""
    table = np.ascontiguousarray(table, dtype=np.float32)
    self_query = queries is None
    rng = np.random.default_rng(seed)
    if self_query:
        rows = rng.choice(len(table), size=min(sample, len(table)), replace=False)
        queries = table[rows]
    else:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        queries = queries[rng.permutation(len(queries))[:sample]]
    skip = 1 if self_query else 0  # an item is its own nearest neighbour
    k = min(K + skip, len(table))
    scores, _ = _top_k(table, queries, k, "ip")
    scores = scores[:, skip:]
    mean_item = table.mean(axis=0, dtype=np.float64)
    all_mean = queries @ mean_item
    # std of q.x over the table: sqrt(q^T Cov q)
    cov = np.cov(table[rng.permutation(len(table))[:100_000]], rowvar=False)
    all_std = np.sqrt(np.maximum(np.einsum("qd,de,qe->q", queries, cov, queries), 1e-24))
    s1, s10, s50 = scores[:, 0], scores[:, min(9, scores.shape[1] - 1)], scores[:, -1]
    l2, _ = _top_k(table, queries, 1 + skip, "l2")
    nearest = np.sqrt(np.maximum(l2[:, skip], 1e-24))
    # mean squared distance to the table, analytically: |q|^2 - 2 q.mean + mean |x|^2
    mean_sq = (queries ** 2).sum(1) - 2 * all_mean + float((table.astype(np.float64) ** 2).sum(1).mean())
    return {
        "items": len(table),
        "queries": len(queries),
        "queries_are_items": self_query,
        "gap10": float(np.median((s1 - s10) / np.abs(s1))),
        "gap50": float(np.median((s1 - s50) / np.abs(s1))),
        "z1": float(np.median((s1 - all_mean) / all_std)),
        "z50": float(np.median((s50 - all_mean) / all_std)),
        "relative_contrast": float(np.mean(np.sqrt(np.maximum(mean_sq, 0)) / nearest)),
    }
