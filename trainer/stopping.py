"""When training stops: the validation curve after its best epoch.

Patience alone (stop after `patience` epochs without a better validation NDCG@10) waits
as long after an early peak as after a late one. SINE peaks in its first few epochs and
then overfits: the validation metric falls steadily, and patience 10 spends most of a
run on epochs that cannot win. SASRec climbs for tens of epochs with small dips. The
decline rule tells the two apart: once the metric has stayed more than `decline` (a
fraction) below its best for `decline_epochs` epochs in a row, the run has turned
downhill and stops; small dips on a rising curve do not trigger it, and patience still
ends a flat one. `bench/stopping_replay.py` replays candidate rules on recorded curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StoppingRule:
    patience: int  # stop after this many epochs without a new best
    decline: float = 0.0  # 0: off; else a fraction below the best, e.g. 0.03
    decline_epochs: int = 2  # ... for this many epochs in a row

    def should_stop(self, scores: Sequence[float]) -> bool:
        """Whether to stop after the epochs scored so far (higher is better; ties are
        not improvements, as in training)."""
        if not scores:
            return False
        best_epoch = _first_best(scores)
        stale = len(scores) - 1 - best_epoch
        if stale >= self.patience:
            return True
        if self.decline > 0 and stale >= self.decline_epochs:
            floor = scores[best_epoch] * (1.0 - self.decline)
            return all(s < floor for s in scores[-self.decline_epochs:])
        return False

    def stop_epoch(self, scores: Sequence[float]) -> int:
        """How many of `scores` a run under this rule trains (the replay of a curve)."""
        for epochs in range(1, len(scores) + 1):
            if self.should_stop(scores[:epochs]):
                return epochs
        return len(scores)


def _first_best(scores: Sequence[float]) -> int:
    best = 0
    for i, score in enumerate(scores):
        if score > scores[best]:
            best = i
    return best
