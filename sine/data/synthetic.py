"""A synthetic interaction log with planted user interests, for demos and tests.

Items belong to latent groups (the "concepts" SINE should discover); within a group a
few items are much more popular than the rest (Zipf). Each user mixes a handful of
groups with their own weights and clicks in runs: after a click, the next one stays in
the same group with probability `stay` (the recency effect), otherwise it switches to
one of the user's groups by weight. A model that infers a user's groups and the
current one beats global popularity by a wide margin; that gap is what the tests pin.

Deterministic for a given seed. The group of each item is written as an extra column
``category``, which the reader keeps and which a user may compare learned concepts with;
`synthetic_items` gives the same groups as an item attribute file (``item_id, category``,
every item of the catalog, clicked or not), for filters and diversity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sine.data.logs import ITEM, TIME, USER


@dataclass(frozen=True)
class SyntheticSpec:
    num_users: int = 2000
    num_items: int = 1000
    num_groups: int = 20
    min_interests: int = 2
    max_interests: int = 4
    min_length: int = 8
    max_length: int = 40
    stay: float = 0.75
    zipf: float = 1.0
    seed: int = 0


def synthetic_log(spec: SyntheticSpec = SyntheticSpec()) -> pd.DataFrame:
    """Generate the log as a frame with ``user_id, item_id, timestamp, category``."""
    if spec.num_items < spec.num_groups:
        raise ValueError("need at least one item per group")
    rng = np.random.default_rng(spec.seed)
    group_of_item = _item_groups(spec, rng)
    members = [np.flatnonzero(group_of_item == g) for g in range(spec.num_groups)]
    popularity = []
    for items in members:
        weights = 1.0 / np.arange(1, len(items) + 1) ** spec.zipf
        popularity.append(weights / weights.sum())

    users, items, times = [], [], []
    clock = 1_600_000_000.0
    for user in range(spec.num_users):
        most = min(spec.max_interests, spec.num_groups)  # fewer groups than interests: all of them
        n_interests = rng.integers(min(spec.min_interests, most), most + 1)
        groups = rng.choice(spec.num_groups, size=n_interests, replace=False)
        weights = rng.dirichlet(np.ones(n_interests))
        length = rng.integers(spec.min_length, spec.max_length + 1)
        seen: set[int] = set()
        current = rng.choice(groups, p=weights)
        t = clock + rng.uniform(0, 86_400 * 30)
        for _ in range(length):
            if rng.random() >= spec.stay:
                current = rng.choice(groups, p=weights)
            candidates = members[current]
            for _attempt in range(8):  # no repeated clicks; give up on an exhausted group
                item = int(candidates[rng.choice(len(candidates), p=popularity[current])])
                if item not in seen:
                    break
            else:
                continue
            seen.add(item)
            t += rng.exponential(3_600.0)
            users.append(f"u{user}")
            items.append(f"i{item}")
            times.append(int(t))
    frame = pd.DataFrame({USER: users, ITEM: items, TIME: times})
    frame["category"] = [f"g{group_of_item[int(i[1:])]}" for i in items]
    return frame


def _item_groups(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """The planted group of each item: the generator's first draw (so both functions agree)."""
    return rng.permutation(np.arange(spec.num_items) % spec.num_groups)


def synthetic_items(spec: SyntheticSpec = SyntheticSpec()) -> pd.DataFrame:
    """The item attribute file of `synthetic_log(spec)`: ``item_id, category`` for every item."""
    if spec.num_items < spec.num_groups:
        raise ValueError("need at least one item per group")
    groups = _item_groups(spec, np.random.default_rng(spec.seed))
    return pd.DataFrame({ITEM: [f"i{i}" for i in range(spec.num_items)],
                         "category": [f"g{g}" for g in groups]})
