"""The item vocabulary: raw string item ids <-> dense indices, 0 reserved for padding.

Index ``i >= 1`` is item ``ids[i - 1]``. Items are numbered by descending click count
(ties by id), so the numbering depends on the clicks only, not on the row order of the
file, and the most popular items get the small indices.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sine.errors import DataError

PADDING = 0


class ItemVocabulary:
    """Maps raw item ids to indices 1..M and back; unknown ids map to `PADDING`."""

    def __init__(self, ids: Sequence[str]):
        self.ids: list[str] = [str(i) for i in ids]
        self._index = {item: position + 1 for position, item in enumerate(self.ids)}
        self._pandas_index: pd.Index | None = None
        if len(self._index) != len(self.ids):
            raise DataError("item vocabulary has duplicate ids")

    @classmethod
    def from_clicks(cls, items: pd.Series) -> ItemVocabulary:
        counts = items.value_counts()
        order = pd.DataFrame({"id": counts.index.astype(str), "n": counts.to_numpy()})
        order = order.sort_values(["n", "id"], ascending=[False, True], kind="stable")
        return cls(order["id"].tolist())

    def __len__(self) -> int:
        """The number of real items M (padding not counted)."""
        return len(self.ids)

    def __contains__(self, item: object) -> bool:
        return item in self._index

    def index_of(self, item: str) -> int:
        return self._index.get(item, PADDING)

    def encode(self, items: Iterable[str]) -> np.ndarray:
        """Indices of `items` (int64), with `PADDING` for ids not in the vocabulary."""
        get = self._index.get
        return np.fromiter((get(i, PADDING) for i in items), dtype=np.int64)

    def encode_column(self, items: pd.Series) -> np.ndarray:
        """Vectorised `encode` for a whole log column."""
        positions = self._id_index().get_indexer(items.astype(str))
        return positions.astype(np.int64) + 1  # -1 (unknown) becomes PADDING

    def _id_index(self) -> pd.Index:
        if self._pandas_index is None:
            self._pandas_index = pd.Index(self.ids)
        return self._pandas_index

    def decode(self, indices: Iterable[int]) -> list[str]:
        return [self.ids[i - 1] for i in indices]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.ids, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> ItemVocabulary:
        ids = json.loads(Path(path).read_text())
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise DataError(f"{path}: not an item vocabulary (expected a JSON list of strings)")
        return cls(ids)
