"""Recall against exact search, and query latency: measured, never assumed."""

from __future__ import annotations

import time

import numpy as np

RECALL_CUTOFFS = (10, 50, 100)


def recall_at(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean over queries of |approx top-k ∩ exact top-k| / k (ids as returned by faiss; -1 misses)."""
    a, e = approx[:, :k], exact[:, :k]
    if k <= 128:
        hits = (a[:, :, None] == e[:, None, :]).any(axis=2) & (a >= 0)
        return float(hits.sum(axis=1).mean() / k)
    # deep k (serving asks for up to ~2,200): per row, without a B x k x k array
    found = [np.intersect1d(row[row >= 0], truth, assume_unique=True).size for row, truth in zip(a, e, strict=True)]
    return float(np.mean(found) / k)


def recalls(index, queries: np.ndarray, exact: np.ndarray,
            cutoffs: tuple[int, ...] = RECALL_CUTOFFS) -> dict[str, float]:
    """recall@k of `index` for each cutoff, each from a search for exactly k results.

    (A search for 100 results and its first 50 would overstate recall@50: HNSW explores
    max(efSearch, k) candidates and a refined IVF-PQ re-ranks k_factor * k of them.)
    """
    out = {}
    for k in cutoffs:
        if k <= exact.shape[1]:
            _, ids = index.search(queries, k)
            out[f"recall@{k}"] = recall_at(ids, exact, k)
    return out


def batch_latency(index, queries: np.ndarray, k: int, batch: int, repeats: int = 3) -> float:
    """Seconds per query when queries come in batches of `batch` (the best of `repeats`)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    per_batch = []
    n_batches = max(1, min(len(queries) // batch, 20))
    for _ in range(repeats):
        start = time.perf_counter()
        for b in range(n_batches):
            index.search(queries[b * batch : (b + 1) * batch], k)
        per_batch.append((time.perf_counter() - start) / (n_batches * min(batch, len(queries))))
    return float(min(per_batch))


def latency(index, queries: np.ndarray, k: int = 50, singles: int = 300, batch: int = 64,
            repeats: int = 3) -> dict[str, float]:
    """Milliseconds per query: single queries (p50, p99) and batches of `batch` (per query)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    chosen = queries[: min(singles, len(queries))]
    index.search(chosen[:8], k)  # warm up
    single = []
    for q in chosen:
        start = time.perf_counter()
        index.search(q[None, :], k)
        single.append(time.perf_counter() - start)
    single_ms = np.array(single) * 1e3
    return {
        "batch1_p50_ms": float(np.median(single_ms)),
        "batch1_p99_ms": float(np.percentile(single_ms, 99)),
        f"batch{batch}_per_query_ms": batch_latency(index, queries, k, batch, repeats) * 1e3,
    }
