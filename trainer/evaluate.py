"""Full-ranking evaluation (../shared/EVALUATION.md).

Every held-out target is ranked against the whole catalog, no sampled negatives. In the
paper's protocol (the default and the headline) the items a user clicked before the
target are removed from the ranking, the target itself never; `keep_history=True`
leaves them in, which is how RecBole ranks sequential models and the only variant
comparable with its figures. Ties with the target count against it, so a model that
scores many items the same (popularity) is never flattered by the tie order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from sine.data.split import EvalSet, SplitData
from sine.metrics import ranking_metrics
from trainer import distributed

Scorer = Callable[[torch.Tensor], torch.Tensor]
"""Maps left-padded clicks ``[B, n]`` to scores over all item indices ``[B, M + 1]``."""


@torch.no_grad()
def rank_targets(
    scorer: Scorer,
    evalset: EvalSet,
    keep_history: bool = False,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
    max_scores: int = 2**26,
) -> np.ndarray:
    """1-based rank of each target among all items (history removed unless kept).

    A batch holds at most `max_scores` scores (256 MiB of fp32, twice with the copy):
    at a million items a batch of 1024 users would take 8 GiB.

    Under torchrun each process ranks every world_size-th batch and the integer ranks are
    summed across processes: all of them get every rank, exactly as one process would
    compute it (the batches are the same, so are their scores).
    """
    group = distributed.current()
    ranks = np.zeros(len(evalset), dtype=np.int64)
    inputs = torch.as_tensor(evalset.inputs)
    targets = torch.as_tensor(evalset.targets)
    offsets = evalset.history_offsets
    if len(evalset):
        width = scorer(inputs[:1].to(device)).shape[1]  # catalog size + 1
        batch_size = max(1, min(batch_size, max_scores // width))
    for number, start in enumerate(range(0, len(evalset), batch_size)):
        if number % group.world_size != group.rank:
            continue
        stop = min(start + batch_size, len(evalset))
        scores = scorer(inputs[start:stop].to(device)).float().clone()  # [B, M + 1]
        batch_targets = targets[start:stop].to(scores.device)
        rows = torch.arange(stop - start, device=scores.device)
        target_scores = scores[rows, batch_targets]
        scores[:, 0] = float("-inf")  # padding is not an item
        if not keep_history:
            lengths = np.diff(offsets[start : stop + 1])
            hist_rows = torch.as_tensor(np.repeat(np.arange(stop - start), lengths))
            hist_items = torch.as_tensor(evalset.history[offsets[start] : offsets[stop]])
            scores[hist_rows.to(scores.device), hist_items.to(scores.device)] = float("-inf")
            scores[rows, batch_targets] = target_scores  # the target is never removed
        ahead = (scores >= target_scores.unsqueeze(1)).sum(dim=1) - 1  # minus the target
        ranks[start:stop] = (ahead + 1).cpu().numpy()
    if group.world_size > 1:
        ranks = distributed.sum_across(torch.from_numpy(ranks).to(device), group).cpu().numpy()
    return ranks


def evaluate_split(
    scorer: Scorer,
    data: SplitData,
    split: str,
    max_len: int,
    keep_history: bool = False,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """HR and NDCG at 10, 20, 50 on the validation or test targets."""
    evalset = data.evaluation_set(split, max_len)  # type: ignore[arg-type]
    return ranking_metrics(rank_targets(scorer, evalset, keep_history, device=device))
