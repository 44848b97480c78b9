"""Searching a bundle's faiss index at serving time (no builder, no torch).

The service imports this module only; building, tuning and measuring indexes lives in
`index_builder`. It holds what both sides must agree on (`IndexSpec`, the search
parameters and how they are applied, loading a serialized index) and `ItemSearch`,
which the service searches through:

* **GPU searches are serialized.** faiss GPU indexes are not safe to search from
  several threads at once, and every index here shares one `StandardGpuResources`
  (its scratch memory and CUDA stream). The service searches from its batch worker,
  and a model being loaded runs its smoke test from another thread, so each GPU
  search takes `GPU_LOCK` (one lock per resources object, hence per GPU). CPU indexes
  are searched without a lock (faiss CPU search is thread-safe).
* **Searches go no deeper than measured.** The build measures held-out recall at
  several depths k (up to the deepest a request can ask for); graph and IVF indexes
  lose recall with depth (HNSW tuned for k=55 on video: 0.99 there, 0.40 at k=2,200).
  A search deeper than the largest k whose recall met the bundle's floor is answered
  by an exact scan instead (`trusted_depth`).
* **Missing results are backfilled.** An IVF index probing few lists can return fewer
  than k results (ids of -1), more so at the depths serving asks for (top_n plus the
  excluded items, up to ~2,200). A query row with any -1 is answered again by an exact
  scan of the item table, so callers always get k real items.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sine.errors import SineError

TYPES = ("flat", "hnsw", "ivf", "ivfpq", "ivfsq8")
IVF_TYPES = ("ivf", "ivfpq", "ivfsq8")  # inverted lists: nprobe is their search parameter
# IVF over compressed codes (PQ, SQ8) whose candidates are re-ranked exactly against the full
# vectors (IndexRefineFlat): k_factor x k candidates are re-ranked; the default when the spec has none.
# SQ8 codes rank almost as well as the vectors, so fewer candidates suffice than for PQ
# (bench/index_1m.py, "ivf-sq8+refine": IVF-Flat's recall at every nprobe with k_factor 2).
REFINE_K_FACTOR = {"ivfpq": 4, "ivfsq8": 2}
# Types served from the CPU even where faiss has a GPU, and why: faiss's GPU cloner has no HNSW and
# does not take the re-ranking wrapper IndexRefineFlat ("not implemented on GPU").
_NO_GPU_REFINE = "faiss cannot move IndexRefineFlat (the exact re-ranking) to a GPU"
CPU_ONLY_TYPES = {"hnsw": "faiss has no GPU HNSW index", **dict.fromkeys(REFINE_K_FACTOR, _NO_GPU_REFINE)}

# How deep the service searches, by default: the index builder measures recall at these
# depths, the service's settings and request schema take their defaults from here.
DEFAULT_TOP_N = 50
DEFAULT_MAX_TOP_N = 1000
DEFAULT_MAX_CLICKS = 1000  # also the most excluded ids
DEFAULT_HISTORY_CAP = 200
DEEPEST_DEFAULT_K = DEFAULT_MAX_TOP_N + DEFAULT_MAX_CLICKS + DEFAULT_HISTORY_CAP  # top_n + every id removed

GPU_LOCK = threading.Lock()  # guards every search through the shared GPU resources
_GPU_RESOURCES = None


def faiss_module():
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss is a dependency of the index extra
        raise SineError("faiss is not installed: pip install faiss-cpu (or faiss-gpu)") from None
    return faiss


def gpu_count() -> int:
    faiss = faiss_module()
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())


@dataclass
class IndexSpec:
    """An index type with its build and search parameters (as recorded in the manifest)."""

    type: str
    build: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "build": dict(self.build), "search": dict(self.search)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> IndexSpec:
        if values.get("type") not in TYPES:
            raise SineError(f"unknown index type {values.get('type')!r}")
        return cls(values["type"], dict(values.get("build", {})), dict(values.get("search", {})))


def ivf_part(index):
    faiss = faiss_module()
    for candidate in (index, getattr(index, "base_index", None)):
        if candidate is None:
            continue
        try:
            return faiss.extract_index_ivf(candidate)
        except RuntimeError:
            continue
    return None


def k_factor(spec: IndexSpec) -> float | None:
    """How many candidates per result a re-ranking type re-ranks exactly (None: not one).

    The one place the k_factor of `REFINE_K_FACTOR` types is read: faiss does not persist it,
    so a loaded index, a tuned one and a filtered search all take it from the spec."""
    if spec.type not in REFINE_K_FACTOR:
        return None
    return float(spec.search.get("k_factor", REFINE_K_FACTOR[spec.type]))


def set_search_params(index, spec: IndexSpec) -> None:
    """Apply efSearch / nprobe / k_factor (they are not all persisted by faiss)."""
    faiss = faiss_module()
    if spec.type == "hnsw":
        faiss.downcast_index(index).hnsw.efSearch = int(spec.search["efSearch"])
    elif spec.type in IVF_TYPES:
        ivf = ivf_part(index)
        if ivf is not None:
            ivf.nprobe = int(spec.search["nprobe"])
        factor = k_factor(spec)
        if factor is not None and hasattr(index, "k_factor"):
            faiss.downcast_index(index).k_factor = factor
        if hasattr(index, "setNumProbes"):  # GPU IVF
            index.setNumProbes(int(spec.search["nprobe"]))


def to_gpu(index):
    """Move an index to GPU 0 (flat and IVF types); the caller checked that one is there."""
    global _GPU_RESOURCES
    faiss = faiss_module()
    if _GPU_RESOURCES is None:
        _GPU_RESOURCES = faiss.StandardGpuResources()
    return faiss.index_cpu_to_gpu(_GPU_RESOURCES, 0, index)


def to_cpu(index):
    faiss = faiss_module()
    return faiss.index_gpu_to_cpu(index) if hasattr(index, "getDevice") else index


def is_on_gpu(index) -> bool:
    return hasattr(index, "getDevice")


def load_index(data: bytes, spec: IndexSpec, gpu: bool = False):
    """Deserialize an index written by `index_builder.indexes.serialize`, set its search
    parameters, optionally move it to the GPU."""
    faiss = faiss_module()
    try:
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except RuntimeError as exc:
        raise SineError(f"cannot read the faiss index: {str(exc).splitlines()[0]}") from None
    if gpu and spec.type not in CPU_ONLY_TYPES:
        index = to_gpu(index)
    set_search_params(index, spec)
    return index


def exact_index(vectors: np.ndarray, gpu: bool = False):
    """An exact inner-product index over `vectors` ([N, D])."""
    faiss = faiss_module()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    if gpu:
        index = to_gpu(index)
    index.add(vectors)
    return index


def exact_top_k(items: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k by numpy (scores, rows), best first: the backfill."""
    scores = np.asarray(queries, dtype=np.float32) @ np.asarray(items, dtype=np.float32).T
    k = min(k, scores.shape[1])
    top = np.argpartition(scores, scores.shape[1] - k, axis=1)[:, -k:]  # no negated [B, N] copy
    part = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-part, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(top, order, axis=1)


def trusted_depth(section: dict[str, Any] | None) -> int | None:
    """The deepest k the index may be searched to: recall measured >= the floor up to it.

    None means no limit: an exact index, or a manifest without per-depth recall.
    """
    if not section or section.get("type") == "flat":
        return None
    floor = float(section.get("recall_floor") or 0.95)
    measured = sorted((int(key[len("recall@"):]), float(value))
                      for key, value in (section.get("recall") or {}).items()
                      if key.startswith("recall@") and key[len("recall@"):].isdigit()
                      and isinstance(value, int | float))
    if not measured:
        return None
    trusted = 0
    for k, recall in measured:
        if recall < floor:
            break
        trusted = k
    return None if trusted == measured[-1][0] else trusted


class ItemSearch:
    """An index over the item table, searched safely and always filled (see module doc)."""

    def __init__(self, index, items: np.ndarray, gpu: bool | None = None, exact_beyond: int | None = None):
        self.index = index
        self.items = items  # [N, D] float32, the item table the index was built over
        self.exact_beyond = exact_beyond  # deeper searches are exact (`trusted_depth`)
        self.on_gpu = is_on_gpu(index) if gpu is None else gpu
        self.lock = GPU_LOCK if self.on_gpu else None
        self.backfilled = 0  # query rows answered again exactly (for tests and logs)
        self.exact_searches = 0  # searches deeper than the trusted depth

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def d(self) -> int:
        return int(self.index.d)

    def search_index(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The index's own answer (-1 where it found nothing), under the GPU lock if on one."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.lock is None:
            return self.index.search(queries, k)
        with self.lock:
            return self.index.search(queries, k)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), [B, k] each, best first; k real rows whenever k <= N."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.exact_beyond is not None and k > self.exact_beyond:
            self.exact_searches += 1
            return exact_top_k(self.items, queries, k)
        scores, rows = self.search_index(queries, k)
        short = np.flatnonzero((rows < 0).any(axis=1))
        if len(short) and k <= len(self.items):
            exact_scores, exact_rows = exact_top_k(self.items, queries[short], k)
            scores, rows = scores.copy(), rows.copy()
            scores[short], rows[short] = exact_scores, exact_rows
            self.backfilled += len(short)
        return scores, rows
