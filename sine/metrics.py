"""Hit rate and NDCG from target ranks (../shared/EVALUATION.md).

With one held-out target per user, HR@K is the share of users whose target ranks in the
top K and NDCG@K the mean of 1 / log2(rank + 1) over users with rank <= K (0 otherwise),
ranks starting at 1.
"""

from __future__ import annotations

import numpy as np

CUTOFFS = (10, 20, 50)
"""The cut-offs every report carries."""

METRIC_NAMES = tuple(f"{m}@{k}" for m in ("hr", "ndcg") for k in CUTOFFS)


def ranking_metrics(ranks: np.ndarray, cutoffs: tuple[int, ...] = CUTOFFS) -> dict[str, float]:
    """``{"hr@10": ..., "ndcg@10": ...}`` for 1-based `ranks` of the targets."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        raise ValueError("no ranks to score")
    if (ranks < 1).any():
        raise ValueError("ranks start at 1")
    out: dict[str, float] = {}
    for k in cutoffs:
        out[f"hr@{k}"] = float(np.mean(ranks <= k))
    for k in cutoffs:
        out[f"ndcg@{k}"] = float(np.mean(np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)))
    return out
