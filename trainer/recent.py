"""A warm start's training window: each user's most recent clicks, with full context.

A nightly retrain that starts from the live model need not replay the whole log: the
live model has learnt it. It trains on what is new (the stored events, which sit at the
end of their users' sequences) and on a window of the base log that keeps the model
from drifting towards the few users with new clicks: the last `recent` training clicks
of every user. Each kept click is predicted from its full preceding context (up to n
clicks), as in a full run, so only the number of examples shrinks, not their inputs.
Validation and test targets, the catalog and the item counts stay the whole log's, so
the candidate is selected and gated on the same split as a cold run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sine.data.split import SplitData


@dataclass(frozen=True)
class RecentSplit(SplitData):
    """`SplitData` whose training examples are only each user's last `recent[u]` ones."""

    recent: np.ndarray | None = None  # [U] examples to keep per user (from the end)

    def example_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Only the kept examples; `training_examples` and the lazy (streamed) examples both
        come from here, so a warm start trains on the same examples either way."""
        starts, ends = super().example_bounds()
        keep = self._kept()
        return starts[keep], ends[keep]

    @property
    def num_training_examples(self) -> int:
        return int(self._kept().sum())

    def _kept(self) -> np.ndarray:
        per_user = np.maximum(self.train_lengths - 1, 0)
        owner = np.repeat(np.arange(len(per_user)), per_user)
        # examples come user by user in time order: count each one's place from the end
        from_end = np.repeat(np.cumsum(per_user), per_user) - 1 - np.arange(per_user.sum())
        return from_end < self.recent[owner]


def recent_only(data: SplitData, recent: int, extra: np.ndarray | None = None) -> RecentSplit:
    """`data` with training examples for each user's last `recent` training clicks, plus
    `extra[u]` more for user u (the user's new events)."""
    if recent < 1:
        raise ValueError(f"recent must be at least 1, not {recent}")
    keep = np.full(len(data.user_ids), recent, dtype=np.int64)
    if extra is not None:
        keep += extra
    fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(SplitData)}
    return RecentSplit(**fields, recent=keep)
