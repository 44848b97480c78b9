"""Category diversity of a recommendation list, applied to its candidates.

Two rules over one attribute (``category`` by default; `sine.attributes`), both taking
a candidate list ranked best first (whatever produced it: one aggregated user vector or
several interests) and returning which candidates make the top-N, in order:

* **cap** c: walk down the candidates and take an item unless one of its labels already
  has c items in the list (an item without labels is always taken). The list keeps
  the ranking's order and may be shorter than N when the candidates run out.
* **penalty** lambda: ComiRec's greedy rule (Cen et al., KDD 2020, Algorithm 1): start
  from an empty list S and add, N times, the candidate i not in S that maximises
  ``f(u, i) + lambda * sum_{j in S} g(i, j)``, where f is the model's score and
  g(i, j) = 1 when i and j are of different categories, else 0. With several labels per
  item (ml-100k's genres) g is the Jaccard distance of the label sets, 1 - |A & B| / |A | B|
  (the same for one label each); an item without labels is at distance 1 from any other.
  lambda is in the model's score units; 0 is the plain ranking.

The returned scores stay the model's own (a penalised list need not be sorted by them).
`intra_list_distance` is the diversity measure the benchmark reports: the mean g over
the pairs of a list (ComiRec's Diversity@N).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sine.attributes import Column


def label_matrix(column: Column, rows: Sequence[int]) -> np.ndarray:
    """float32 [P, V]: 1 where candidate p carries label v (labels renumbered 0..V-1)."""
    rows = np.asarray(rows, dtype=np.int64)
    starts = column.offsets[rows]
    lengths = column.offsets[rows + 1] - starts
    owner = np.repeat(np.arange(len(rows)), lengths)
    before = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    codes = column.codes[np.arange(int(lengths.sum())) + np.repeat(starts - before, lengths)]
    local, inverse = np.unique(codes, return_inverse=True)
    matrix = np.zeros((len(rows), max(1, len(local))), dtype=np.float32)
    matrix[owner, inverse] = 1.0
    return matrix


def distances_to(matrix: np.ndarray, sizes: np.ndarray, j: int) -> np.ndarray:
    """g(i, j) for every candidate i: Jaccard distance of label sets, 1 if either is empty."""
    shared = matrix @ matrix[j]
    union = sizes + sizes[j] - shared
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.where((sizes > 0) & (sizes[j] > 0), 1.0 - shared / np.maximum(union, 1), 1.0)
    return distance


def capped(column: Column, rows: Sequence[int], top_n: int, cap: int) -> list[int]:
    """Positions in `rows` (best first) kept with at most `cap` items per label."""
    counts: dict[int, int] = {}
    chosen = []
    offsets, codes = column.offsets, column.codes
    for position, row in enumerate(rows):
        labels = codes[offsets[row]:offsets[row + 1]].tolist()
        if any(counts.get(label, 0) >= cap for label in labels):
            continue
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        chosen.append(position)
        if len(chosen) == top_n:
            break
    return chosen


def penalised(column: Column, rows: Sequence[int], scores: Sequence[float], top_n: int,
              penalty: float) -> list[int]:
    """Positions in `rows` chosen greedily by ComiRec's rule (module doc), in order."""
    count = len(rows)
    if count == 0:
        return []
    matrix = label_matrix(column, rows)
    sizes = matrix.sum(axis=1)
    base = np.asarray(scores, dtype=np.float64)
    gain = np.zeros(count)
    taken = np.zeros(count, dtype=bool)
    chosen = []
    for _ in range(min(top_n, count)):
        objective = np.where(taken, -np.inf, base + penalty * gain)
        j = int(np.argmax(objective))  # the first of equals: the better-ranked candidate
        chosen.append(j)
        taken[j] = True
        gain += distances_to(matrix, sizes, j)
    return chosen


def diversify(column: Column, rows: Sequence[int], scores: Sequence[float], top_n: int,
              cap: int | None = None, penalty: float | None = None) -> list[int]:
    """Positions of the top-N by the rule asked for (cap or penalty; neither: the first N)."""
    if cap is not None:
        return capped(column, rows, top_n, cap)
    if penalty is not None and penalty > 0:
        return penalised(column, rows, scores, top_n, penalty)
    return list(range(min(top_n, len(rows))))


def intra_list_distance(column: Column, rows: Sequence[int]) -> float:
    """Mean g(i, j) over the unordered pairs of a list (0 for fewer than two items)."""
    if len(rows) < 2:
        return 0.0
    matrix = label_matrix(column, rows)
    sizes = matrix.sum(axis=1)
    total = sum(float(distances_to(matrix, sizes, j)[j + 1:].sum()) for j in range(len(rows) - 1))
    return total / (len(rows) * (len(rows) - 1) / 2)


POOL = 4
"""A diversified top-N is chosen from the best POOL x N candidates."""


@dataclass(frozen=True, eq=False)
class DiversityRule:
    """A request's diversity: the attribute's column and a cap or a penalty."""

    column: Column
    cap: int | None = None
    penalty: float | None = None

    def pool(self, top_n: int) -> int:
        return top_n * POOL

    def choose(self, rows: Sequence[int], scores: Sequence[float], top_n: int) -> list[int]:
        return diversify(self.column, rows, scores, top_n, self.cap, self.penalty)
