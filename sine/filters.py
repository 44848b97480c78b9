"""Filtered retrieval: attribute filters and unavailable items applied inside the search.

A request's filter (``include`` / ``exclude`` on attribute labels, `sine.attributes`) and
the items that may not be served (marked unavailable at run time, or ``available=false``
in the bundle) become one set of allowed item rows, a `Constraint`, held as a faiss
``IDSelectorBitmap``. The search only ever considers allowed rows, so a filter that keeps
1% of the catalog still yields ``top_n`` items, without searching thousands deep and
discarding most of them afterwards.

Filter semantics: ``include {a: [x, y], b: [z]}`` keeps items labelled x or y in a *and*
z in b; ``exclude {a: [w]}`` drops items labelled w in a (multi-valued attributes match
when any label does). An unknown attribute or label is a `FilterError` that lists what
exists (the service answers 422 with it).

How a constrained query is searched (`search`), by the share s of rows allowed:

* **exact**: faiss's exact inner-product scan (``knn_inner_product``) over the bundle's
  item table with the selector: only allowed rows are scored, so it costs a fixed check
  per row plus s times a full scan (measured: bench/results/filter.md);
* **index**: the bundle's HNSW / IVF / IVF-PQ index with the selector in its
  ``SearchParameters``; the traversal meets allowed items s times as often, so its effort
  (efSearch, nprobe) is scaled by 1/s to keep its recall, and its cost grows as about 1/s.

The cheaper one is chosen from the build's own measured batch-1 latencies (exact E,
index I; the manifest's index section): exact when ``E * (FIXED + (1 - FIXED) * s) <=
I / s``. A flat index, a GPU index and a search deeper than the index's trusted depth
are always exact. Rows the index leaves short (-1) while enough allowed items exist are
searched again exactly, so every query gets min(k, allowed) real rows.
"""

from __future__ import annotations

import difflib
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sine.attributes import ItemAttributes
from sine.errors import SineError
from sine.search import IndexSpec, ItemSearch, faiss_module, ivf_part, k_factor

FIXED = 0.1
"""Exact filtered scan at s -> 0 costs this share of a full exact scan (the per-row check;
measured on video, bench/results/filter.md)."""
MAX_EF_SEARCH = 4096
CACHE_BYTES = 64 << 20
"""Bound on the memory of cached constraints (their bitmaps), per loaded model."""
MAX_LISTED = 30
"""An error lists at most this many existing values (and close matches to the bad one)."""

FilterKey = tuple[tuple[tuple[str, tuple[str, ...]], ...], tuple[tuple[str, tuple[str, ...]], ...]]


class FilterError(SineError):
    """A filter names an attribute or label the catalog does not have."""


def filter_key(include: Mapping[str, Sequence[str]] | None,
               exclude: Mapping[str, Sequence[str]] | None) -> FilterKey | None:
    """A canonical, hashable form of a filter (None: no filter), for caching its mask."""
    def canon(spec: Mapping[str, Sequence[str]] | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple(sorted((name, tuple(sorted(set(values)))) for name, values in (spec or {}).items()))

    key = (canon(include), canon(exclude))
    return key if key != ((), ()) else None


def _listing(values: Sequence[str], wanted: str, what: str) -> str:
    """An error's tail: ` (did you mean 'Comedy'?); category has: Action, Adventure, ...`."""
    shown = list(values[:MAX_LISTED])
    more = f", ... ({len(values)} in all)" if len(values) > MAX_LISTED else ""
    # a label differing only in case is the likeliest slip ('comedy', 'COMEDY'); difflib's
    # ratio is case-sensitive and misses it when the word is short or shouted
    close = [v for v in values if v.casefold() == wanted.casefold()]
    if not close:
        folded = {v.casefold(): v for v in values}
        close = [folded[c] for c in difflib.get_close_matches(wanted.casefold(), list(folded), n=3)]
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    return f"{hint}; {what}: {', '.join(shown)}{more}"


def check_attribute(attributes: ItemAttributes | None, name: str, where: str = "") -> None:
    """`name` is an attribute of this catalog, else a `FilterError` naming those that are."""
    if attributes is None or not attributes.columns:
        raise FilterError(f"{where}this model's bundle has no item attributes, so it cannot filter or "
                          f"diversify by {name!r} (export it with `sine export --attributes FILE`)")
    if name not in attributes.columns:
        raise FilterError(f"{where}unknown attribute {name!r}"
                          f"{_listing(attributes.names, name, 'the catalog has the attributes')}")


def check_filter(attributes: ItemAttributes | None, key: FilterKey, where: str = "") -> None:
    """Every attribute and label of the filter exists, else a `FilterError` saying what does."""
    for part, spec in zip(("include", "exclude"), key, strict=True):
        for name, values in spec:
            check_attribute(attributes, name, f"{where}filter.{part}: ")
            if not values:
                raise FilterError(f"{where}filter.{part}.{name}: give at least one value")
            column = attributes.columns[name]
            for value in values:
                if column.code_of(value) is None:
                    raise FilterError(f"{where}filter.{part}.{name}: unknown value {value!r}"
                                      f"{_listing(column.values, value, f'{name} has')}")


def allowed_mask(attributes: ItemAttributes | None, key: FilterKey | None, num_items: int) -> np.ndarray:
    """bool [N]: the rows a (checked) filter keeps."""
    allowed = np.ones(num_items, dtype=bool)
    if key is None:
        return allowed
    include, exclude = key
    for name, values in include:
        allowed &= attributes.columns[name].mask(values)
    for name, values in exclude:
        allowed &= ~attributes.columns[name].mask(values)
    return allowed


@dataclass
class Constraint:
    """The rows a group of queries may get: a bitmap and the faiss selector over it."""

    bitmap: np.ndarray  # uint8 [ceil(N / 8)], bit r (little-endian within a byte): row r allowed
    count: int  # allowed rows
    num_items: int
    selector: Any  # faiss.IDSelectorBitmap over `bitmap` (which must outlive it)

    @classmethod
    def of(cls, allowed: np.ndarray) -> Constraint:
        bitmap = np.packbits(allowed, bitorder="little")
        faiss = faiss_module()
        return cls(bitmap, int(allowed.sum()), len(allowed),
                   faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap)))

    @property
    def share(self) -> float:
        return self.count / self.num_items if self.num_items else 0.0

    def allows(self, rows: np.ndarray) -> np.ndarray:
        """bool per row of `rows` (int array)."""
        rows = np.asarray(rows, dtype=np.int64)
        return ((self.bitmap[rows >> 3] >> (rows & 7).astype(np.uint8)) & 1).astype(bool)


class Constraints:
    """A loaded model's constraints, built once per (filter, unavailable rows) and cached.

    The cache holds bitmaps (N / 8 bytes each), at most `CACHE_BYTES` of them, least
    recently used dropped first; it is safe to use from several threads.
    """

    def __init__(self, attributes: ItemAttributes | None, num_items: int,
                 always_unavailable: np.ndarray | None = None):
        self.attributes = attributes
        self.num_items = num_items
        self.always_unavailable = (np.asarray(always_unavailable, dtype=np.int64)
                                   if always_unavailable is not None else np.zeros(0, np.int64))
        self.capacity = max(4, min(4096, CACHE_BYTES // max(1, math.ceil(num_items / 8))))
        self._cache: OrderedDict[tuple, Constraint | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: FilterKey | None, unavailable: tuple[Any, np.ndarray] | None = None) -> Constraint | None:
        """The constraint of a checked filter and the rows unavailable now (a version tag
        and the rows); None when every row is allowed (the unconstrained fast path)."""
        tag, rows = unavailable if unavailable is not None else (None, np.zeros(0, np.int64))
        if key is None and not len(rows) and not len(self.always_unavailable):
            return None
        cache_key = (key, tag)
        with self._lock:
            if cache_key in self._cache:
                self._cache.move_to_end(cache_key)
                return self._cache[cache_key]
        allowed = allowed_mask(self.attributes, key, self.num_items)
        allowed[self.always_unavailable] = False
        allowed[np.asarray(rows, dtype=np.int64)] = False
        constraint = Constraint.of(allowed)
        with self._lock:
            self._cache[cache_key] = constraint
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return constraint


# ----------------------------------------------------------------------------- search


def exact_search(items: np.ndarray, queries: np.ndarray, k: int,
                 constraint: Constraint) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k among the allowed rows: faiss's scan of `items` in place, no copy.

    Fewer than k allowed rows: the tail of each row is -1 (score -inf)."""
    faiss = faiss_module()
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    items = np.ascontiguousarray(items, dtype=np.float32)
    scores = np.empty((len(queries), k), dtype=np.float32)
    rows = np.empty((len(queries), k), dtype=np.int64)
    faiss.knn_inner_product(faiss.swig_ptr(queries), faiss.swig_ptr(items), items.shape[1],
                            len(queries), len(items), k, faiss.swig_ptr(scores), faiss.swig_ptr(rows),
                            constraint.selector)
    return scores, rows


def index_parameters(spec: IndexSpec, index, constraint: Constraint, k: int):
    """faiss SearchParameters with the selector and the search effort scaled by 1/share."""
    faiss = faiss_module()
    scale = 1.0 / max(constraint.share, 1e-9)
    if spec.type == "hnsw":
        ef = max(int(spec.search.get("efSearch", 64)), k)
        return faiss.SearchParametersHNSW(sel=constraint.selector,
                                          efSearch=int(min(MAX_EF_SEARCH, math.ceil(ef * scale))))
    ivf = ivf_part(index)
    nlist = int(ivf.nlist) if ivf is not None else 1
    nprobe = int(min(nlist, math.ceil(int(spec.search.get("nprobe", 1)) * scale)))
    base = faiss.SearchParametersIVF(sel=constraint.selector, nprobe=nprobe)
    factor = k_factor(spec)
    if factor is not None:
        return faiss.IndexRefineSearchParameters(k_factor=factor, base_index_params=base)
    return base


def prefer_exact(spec: IndexSpec, section: Mapping[str, Any] | None, share: float, on_gpu: bool) -> bool:
    """The cost model of the module doc: exact scan or the index, for this share."""
    if spec.type == "flat" or on_gpu:
        return True
    latency = (section or {}).get("latency") or {}
    exact_latency = (section or {}).get("exact_latency") or {}
    index_ms, exact_ms = latency.get("batch1_p50_ms"), exact_latency.get("batch1_p50_ms")
    if not index_ms or not exact_ms:
        return True  # nothing measured: the exact scan, whose cost is known to stay below a full scan
    return exact_ms * (FIXED + (1 - FIXED) * share) <= index_ms / max(share, 1e-9)


@dataclass
class FilteredSearch:
    """Searches of one loaded model under constraints (counts kept for tests and metrics)."""

    item_search: ItemSearch
    spec: IndexSpec
    section: Mapping[str, Any] | None = None
    exact: int = 0  # query rows answered by the exact filtered scan
    by_index: int = 0  # query rows answered by the index with the selector
    backfilled: int = 0  # index rows left short, answered again exactly

    def strategy(self, constraint: Constraint, k: int) -> str:
        beyond = self.item_search.exact_beyond
        if (beyond is not None and k > beyond) or prefer_exact(self.spec, self.section, constraint.share,
                                                               self.item_search.on_gpu):
            return "exact"
        return "index"

    def search(self, queries: np.ndarray, k: int, constraint: Constraint) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) [B, k] among the allowed rows, best first; -1 past the allowed count."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        items = self.item_search.items
        if constraint.count == 0:
            return (np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64))
        if self.strategy(constraint, k) == "exact":
            self.exact += len(queries)
            return exact_search(items, queries, k, constraint)
        self.by_index += len(queries)
        index = self.item_search.index
        scores, rows = index.search(queries, k, params=index_parameters(self.spec, index, constraint, k))
        short = np.flatnonzero((rows[:, : min(k, constraint.count)] < 0).any(axis=1))
        if len(short):
            exact_scores, exact_rows = exact_search(items, queries[short], k, constraint)
            scores, rows = scores.copy(), rows.copy()
            scores[short], rows[short] = exact_scores, exact_rows
            self.backfilled += len(short)
        return scores, rows
