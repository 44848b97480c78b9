"""Hit rate and NDCG from target ranks (../shared/EVALUATION.md).

With one held-out target per user, HR@K is the share of users whose target ranks in the
top K and NDCG@K the mean of 1 / log2(rank + 1) over users with rank <= K (0 otherwise),
ranks starting at 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CUTOFFS = (10, 20, 50)
"""The cut-offs every report carries."""

METRIC_NAMES = tuple(f"{m}@{k}" for m in ("hr", "ndcg") for k in CUTOFFS)


def cutoff_order(key: str) -> tuple[str, int, str]:
    """Sort key for names like ``recall@1000``: by name, then by the number after the @ as a
    number (recall@10, recall@100, recall@200, recall@1000, not the string order that puts
    recall@1000 before recall@200); other keys by their text."""
    name, at, k = key.partition("@")
    return (name, int(k), key) if at and k.isdigit() else (key, -1, key)


def ordered_by_cutoff(value: Any) -> Any:
    """`value` with the keys of every nested dict in `cutoff_order`: what is printed and what
    is written to JSON (a bundle manifest) reads recall@k and hr@k in the order of k."""
    if isinstance(value, dict):
        return {key: ordered_by_cutoff(value[key]) for key in sorted(value, key=cutoff_order)}
    if isinstance(value, list):
        return [ordered_by_cutoff(item) for item in value]
    return value


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
