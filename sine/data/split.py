"""The paper's leave-one-out split (section 4.1; ../shared/EVALUATION.md).

Per user, in time order: the last click is the test target, the second to last the
validation target, the rest is training. Users with fewer than 3 clicks go entirely to
training. Training examples are every prefix of a training part predicting its next
click; validation input is the training part, test input the training part plus the
validation click; every input is cut to its last ``max_len`` clicks and left-padded
with 0, so the most recent click is always in the last column.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd

from sine.data.logs import ITEM, USER, fingerprint
from sine.data.vocabulary import PADDING, ItemVocabulary
from sine.errors import DataError

Split = Literal["valid", "test"]


@dataclass(frozen=True)
class EvalSet:
    """Held-out targets of one split, with the inputs and histories to rank them."""

    users: np.ndarray  # [U] user row numbers (into SplitData.user_ids)
    inputs: np.ndarray  # [U, max_len] int64, left-padded item indices
    targets: np.ndarray  # [U] int64 item index to be ranked
    history: np.ndarray  # all items clicked before the target, users concatenated
    history_offsets: np.ndarray  # [U + 1]: history of user u is history[o[u]:o[u+1]]

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True)
class SplitData:
    """A log as per-user click sequences of item indices, with the split applied."""

    vocabulary: ItemVocabulary
    user_ids: np.ndarray  # [U] raw user ids, sorted
    items: np.ndarray  # [N] int64 item indices, grouped by user, in time order
    offsets: np.ndarray  # [U + 1] clicks of user u are items[offsets[u]:offsets[u+1]]
    fingerprint: str
    evaluated: np.ndarray | None = None  # a sample of eval_users to evaluate (None: all)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def eval_users(self) -> np.ndarray:
        """Users with 3+ clicks: they have a validation and a test target (or a sample of them)."""
        if self.evaluated is not None:
            return self.evaluated
        return np.flatnonzero(self.lengths >= 3)

    def with_evaluation_sample(self, users: int, seed: int) -> SplitData:
        """The same data, evaluated on `users` of its eval users drawn at random (all if fewer).

        Full-catalog ranking costs users x items; at a million items and users a sample
        of users gives the metrics at a known sampling error instead.
        """
        everyone = np.flatnonzero(self.lengths >= 3)
        if users >= len(everyone):
            return self
        chosen = np.random.default_rng(seed).choice(everyone, size=users, replace=False)
        return replace(self, evaluated=np.sort(chosen))

    @property
    def train_lengths(self) -> np.ndarray:
        lengths = self.lengths
        return np.where(lengths >= 3, lengths - 2, lengths)

    @property
    def num_items(self) -> int:
        return len(self.vocabulary)

    @property
    def num_training_examples(self) -> int:
        return int(np.maximum(self.train_lengths - 1, 0).sum())

    def example_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) [E]: example e predicts items[ends[e]] from items[starts[e]:ends[e]].

        16 bytes per example, where `training_examples` holds 8 * (max_len + 1): the
        compact form for logs larger than memory (windows cut per batch, `windows`).
        """
        starts = self.offsets[:-1]
        per_user = np.maximum(self.train_lengths - 1, 0)
        owner = np.repeat(np.arange(len(starts)), per_user)
        # position (global) of each target: user start + 1 .. user start + train_len - 1
        within = np.arange(per_user.sum()) - np.repeat(np.cumsum(per_user) - per_user, per_user)
        return starts[owner], starts[owner] + 1 + within

    def training_examples(self, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """(inputs [E, max_len], targets [E]): every training prefix -> its next click."""
        starts, ends = self.example_bounds()
        return windows(self.items, starts, ends, max_len), self.items[ends].astype(np.int64)

    def evaluation_set(self, split: Split, max_len: int) -> EvalSet:
        users = self.eval_users
        starts = self.offsets[:-1][users]
        ends = self.offsets[1:][users] - (2 if split == "valid" else 1)
        lengths = ends - starts
        history_offsets = np.concatenate([[0], np.cumsum(lengths)])
        history = self.items[np.repeat(starts - history_offsets[:-1], lengths) + np.arange(lengths.sum())]
        return EvalSet(
            users=users,
            inputs=windows(self.items, starts, ends, max_len),
            targets=self.items[ends].astype(np.int64),
            history=history.astype(np.int64),
            history_offsets=history_offsets,
        )

    def train_item_counts(self) -> np.ndarray:
        """Clicks per item index in the training parts only ([M + 1], index 0 is 0).

        All clicks minus the validation and test targets, counted a chunk at a time so
        that a mapped log is not copied whole.
        """
        size = self.num_items + 1
        counts = np.zeros(size, dtype=np.int64)
        for start in range(0, len(self.items), 1 << 22):
            counts += np.bincount(self.items[start : start + (1 << 22)], minlength=size)
        held_out = np.flatnonzero(self.lengths >= 3)
        ends = self.offsets[1:][held_out]
        for back in (1, 2):
            counts -= np.bincount(self.items[ends - back], minlength=size)
        counts[PADDING] = 0
        return counts

    def sequences_of(self, users: np.ndarray) -> list[np.ndarray]:
        return [self.items[self.offsets[u] : self.offsets[u + 1]] for u in users]


def windows(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int) -> np.ndarray:
    """Left-padded windows items[max(start, end - max_len):end] as a [len(ends), max_len] matrix."""
    positions = ends[:, None] - max_len + np.arange(max_len)[None, :]
    valid = positions >= starts[:, None]
    return np.where(valid, items[np.clip(positions, 0, None)], PADDING).astype(np.int64)


def leave_one_out(frame: pd.DataFrame, vocabulary: ItemVocabulary | None = None) -> SplitData:
    """Split a log read by `read_log` (sorted by user, then time).

    Clicks on items outside a given `vocabulary` are dropped (this is how a model is
    evaluated on a newer log than it was trained on). Raises `DataError` when the log
    leaves nothing to train on or no user to evaluate.
    """
    if vocabulary is None:
        vocabulary = ItemVocabulary.from_clicks(frame[ITEM])
    item_index = vocabulary.encode_column(frame[ITEM])
    known = item_index != PADDING
    users = frame[USER].to_numpy()[known]
    item_index = item_index[known]
    if len(item_index) == 0:
        raise DataError("no click in the log is on an item the model knows")

    # read_log sorted by user, so each user's clicks are contiguous
    boundaries = np.flatnonzero(users[1:] != users[:-1]) + 1
    offsets = np.concatenate([[0], boundaries, [len(users)]]).astype(np.int64)
    data = SplitData(
        vocabulary=vocabulary,
        user_ids=users[offsets[:-1]],
        items=item_index.astype(np.int64),
        offsets=offsets,
        fingerprint=fingerprint(frame),
    )
    if len(data.eval_users) == 0:
        raise DataError(
            f"the log is too small to split: {len(data.user_ids)} users, none with 3 or more "
            "clicks (each evaluated user needs training clicks, a validation and a test click)"
        )
    if int(np.maximum(data.train_lengths - 1, 0).sum()) == 0:
        raise DataError(
            "the log is too small to split: no user has 2 or more training clicks, "
            "so there is no training example (a prefix and its next click)"
        )
    return data
