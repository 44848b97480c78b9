"""The nearest-neighbour profile of a table of vectors: how clustered a catalog is.

How hard an approximate index has to work, and whether a synthetic catalog looks like a
real one, depends on the shape of each item's neighbourhood: how far the 1st, 10th and
50th neighbours are, how much closer they are than a random item (the *relative
contrast* of He, Kumar and Chang, ICML 2012: mean distance to the data / distance to
the nearest neighbour; near 1 the neighbours are no closer than anything else and no
index can beat exact search, large values mean tight clusters).

One function, `neighbour_profile`, used for item tables of trained models (the
synthetic generator's calibration) and for index benchmark catalogs. Exact search over a
sample of queries, numpy only (torch-free: the service layer may import it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def _summary(values: np.ndarray) -> dict[str, float]:
    """Mean and quantiles of a 1-D sample (floats rounded for JSON)."""
    values = np.asarray(values, dtype=np.float64)
    out = {"mean": round(float(values.mean()), 6)}
    for q, v in zip(QUANTILES, np.quantile(values, QUANTILES), strict=True):
        out[f"p{int(q * 100)}"] = round(float(v), 6)
    return out


def neighbour_profile(
    vectors: np.ndarray,
    ks: Sequence[int] = (1, 10, 50),
    queries: int = 2000,
    metric: str = "cosine",
    seed: int = 0,
    chunk: int = 256,
) -> dict[str, Any]:
    """Exact k-NN of `queries` sampled rows against the whole table (the row itself excluded).

    `metric` is "cosine" (rows normalised, similarity = cosine) or "ip" (raw inner
    product, as a maximum-inner-product index ranks). Returns, per k, the distribution
    of the k-th neighbour's similarity, of the gap between the 1st and the k-th, and the
    relative contrast (Euclidean, on the vectors as searched: normalised for cosine).
    """
    if metric not in ("cosine", "ip"):
        raise ValueError(f"metric must be cosine or ip, not {metric!r}")
    table = np.asarray(vectors, dtype=np.float32)
    if table.ndim != 2 or len(table) < 2:
        raise ValueError("need a [N, D] table with N >= 2")
    if metric == "cosine":
        norms = np.linalg.norm(table, axis=1, keepdims=True)
        table = table / np.maximum(norms, 1e-12)
    kmax = min(max(ks), len(table) - 1)
    ks = [k for k in ks if k <= kmax]
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(table), size=min(queries, len(table)), replace=False))
    squared = (table.astype(np.float64) ** 2).sum(axis=1)

    top_sims = np.empty((len(chosen), kmax), dtype=np.float64)
    contrast = np.empty(len(chosen), dtype=np.float64)
    for start in range(0, len(chosen), chunk):
        rows = chosen[start : start + chunk]
        sims = table[rows] @ table.T  # [B, N]
        sims[np.arange(len(rows)), rows] = -np.inf  # not its own neighbour
        part = np.argpartition(-sims, kmax - 1, axis=1)[:, :kmax]
        part_sims = np.take_along_axis(sims, part, axis=1)
        top_sims[start : start + len(rows)] = -np.sort(-part_sims, axis=1)
        # Euclidean distances from the inner products: |q|^2 + |x|^2 - 2 q.x
        d2 = squared[rows, None] + squared[None, :] - 2.0 * np.where(np.isfinite(sims), sims, 0.0)
        d2[np.arange(len(rows)), rows] = np.nan
        dist = np.sqrt(np.maximum(d2, 0.0))
        nearest = np.nanmin(dist, axis=1)
        contrast[start : start + len(rows)] = np.nanmean(dist, axis=1) / np.maximum(nearest, 1e-12)

    return {
        "metric": metric,
        "items": len(table),
        "dim": int(table.shape[1]),
        "queries": len(chosen),
        "kth_similarity": {str(k): _summary(top_sims[:, k - 1]) for k in ks},
        "gap_from_first": {str(k): _summary(top_sims[:, 0] - top_sims[:, k - 1]) for k in ks if k > 1},
        "relative_contrast": _summary(contrast),
    }
