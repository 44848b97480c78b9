"""faiss indexes over the item table: which one and how it is built (searching and
loading, which the service needs without the builder, live in `sine.search`).

Every index scores by inner product, the score the model was trained with (eq. 9), so
the scores returned to users are the model's own. Types:

========= ======================================================= =====================
flat      exact search (IndexFlatIP)                              items x D <= 1M floats
hnsw      graph search (IndexHNSWFlat, M=32), efSearch tuned      up to 1M items (CPU)
ivf       inverted lists (IndexIVFFlat, 4 sqrt(N) lists),         GPU above 100k items;
          nprobe tuned                                            CPU: only with --type
ivfpq     IVF + product quantisation, exact re-ranking of         CPU, only with --type
          the candidates (IndexRefineFlat), nprobe tuned
ivfsq8    IVF + 8-bit scalar quantisation, exact re-ranking of    CPU, above 1M items,
          k_factor x k candidates (IndexRefineFlat, k_factor 2),  and where HNSW fails
          nprobe tuned, then k_factor                             auto's check
========= ======================================================= =====================

`auto` picks by catalog size (`choose_type` says why), then checks its pick against
exact search (`index_builder.build`): on the CPU, an HNSW that is not faster than exact
search at the target recall gives way to ivfsq8, checked the same way, and where that
fails too exact search (flat) is published; on a GPU a failing ivf gives way to flat
directly. That happens just above the flat cut-off, where an exact scan is still cheap
and HNSW tuned to recall 0.99 may not beat it (a new user's 21k x 64 catalog did not;
the manifest's `auto_tried` lists each candidate's measured time and recall). The
cut-offs are measured: an exact scan is as fast as HNSW up to ~1M floats
(bench/results/index.md); at 1M items, on a catalog calibrated to a trained SINE table
with held-out queries, one query per call on one thread, HNSW (M=32, efConstruction 200)
reached recall@50 0.956 at 21x exact search where the best IVF (SQ8 codes + exact
re-ranking, 4,096 lists) needed 512 probes for 0.97 at 7.3x and IVF-Flat was slower
still at every recall (bench/results/index_1m.md). Above 1M items nothing was measured,
and `auto` switches to ivfsq8 for reasons other than speed: HNSW's build time (13-21 min
for 1M x 128 on two cores) and memory (784 bytes/item) grow with the catalog, and an
IVF's tuning can always reach the recall floor (nprobe up to every list) where HNSW's
may not. The price is speed at high recall: at 1M items ivfsq8 was 7.3x exact at 0.97 on
the calibrated catalog and reached only 0.907 at 512 of 4,096 probes on the harder
synthetic one; `--type hnsw` is the faster choice where its build time is affordable.

On a machine where faiss has GPU support and a GPU is visible, flat and ivf are built and
searched on the GPU; hnsw, ivfpq and ivfsq8 stay on the CPU (`sine.search.CPU_ONLY_TYPES`
says why: faiss has no GPU HNSW, and its GPU cloner cannot move IndexRefineFlat, the
exact re-ranking that wraps ivfpq and ivfsq8), so `auto` picks ivf on a GPU above 100k
items. ivfsq8 stores 1 byte per dimension for the codes *and* the full float vectors for
the re-ranking (about 650 bytes/item at D=128 against IVF-Flat's 520,
bench/results/index_bytes.json): it buys search speed, not memory.
"""

from __future__ import annotations

import math

import numpy as np

from sine.errors import SineError
from sine.search import (  # noqa: F401 - the runtime half, re-exported for the builder's callers
    CPU_ONLY_TYPES,
    IVF_TYPES,
    REFINE_K_FACTOR,
    TYPES,
    IndexSpec,
    exact_index,
    faiss_module,
    gpu_count,
    ivf_part,
    k_factor,
    load_index,
    set_search_params,
    to_cpu,
    to_gpu,
)

# an exact scan of a table up to ~4 MB is as fast as HNSW at one thread (bench/index_bench.py:
# 12k x 64 exact 0.20-0.28 ms vs HNSW 0.23 ms; 23.7k x 64 exact 0.73 ms vs HNSW 0.17 ms)
FLAT_MAX_FLOATS = 1_000_000
HNSW_MAX_ITEMS = 1_000_000  # the largest catalog HNSW was measured at (bench/results/index_1m.md)
GPU_FLAT_MAX_ITEMS = 100_000


def use_gpu(mode: str) -> bool:
    """Resolve --gpu auto|on|off against what faiss can do here."""
    if mode not in ("auto", "on", "off"):
        raise SineError(f"--gpu must be auto, on or off, not {mode!r}")
    available = gpu_count() > 0
    if mode == "on" and not available:
        raise SineError("--gpu on, but this faiss has no GPU support or sees no GPU "
                        "(install faiss-gpu on a machine with a CUDA GPU)")
    return mode != "off" and available


def choose_type(num_items: int, gpu: bool, dim: int = 128) -> tuple[str, str]:
    """(index type, the reason) for `--type auto`; `dim` is D of the item table."""
    if gpu:
        if num_items <= GPU_FLAT_MAX_ITEMS:
            return "flat", f"{num_items:,} items <= {GPU_FLAT_MAX_ITEMS:,}: exact search is fast on a GPU"
        return "ivf", (f"{num_items:,} items on a GPU: IVF-Flat (faiss has no GPU HNSW, and cannot move "
                       "the exact re-ranking of IVF-PQ / IVF-SQ8 to a GPU)")
    if num_items * dim <= FLAT_MAX_FLOATS:
        return "flat", (f"{num_items:,} items x D={dim} <= {FLAT_MAX_FLOATS:,} floats: an exact scan "
                        "is as fast as HNSW at this size, and exact")
    if num_items <= HNSW_MAX_ITEMS:
        return "hnsw", (f"{num_items:,} items <= {HNSW_MAX_ITEMS:,}: HNSW answers a query in far less "
                        "than an exact scan at recall@50 >= 0.95 (21x at 1M items, bench/results/index_1m.md)")
    # no IVF-PQ on the CPU at any size: with its exact re-ranking (IndexRefineFlat) it keeps the full
    # vectors too, so it is larger than IVF-Flat (584 vs 520 bytes/item at D=128,
    # bench/results/index_bytes.json) and it was slower at every size measured (bench/results/index.md)
    return "ivfsq8", (f"{num_items:,} items > {HNSW_MAX_ITEMS:,}: IVF with SQ8 codes and exact re-ranking "
                      "builds much faster than HNSW at this size and its tuning can always reach the recall "
                      "floor; HNSW searched faster at 1M items (bench/results/index_1m.md): --type hnsw if "
                      "its build time is affordable")


def default_spec(kind: str, num_items: int, dim: int) -> IndexSpec:
    if kind == "flat":
        return IndexSpec("flat")
    if kind == "hnsw":
        return IndexSpec("hnsw", {"M": 32, "efConstruction": 200}, {"efSearch": 64})
    nlist = int(2 ** round(math.log2(max(16, 4 * math.sqrt(num_items)))))
    nlist = max(1, min(nlist, num_items // 39))  # faiss wants >= 39 training points per list
    if kind == "ivf":
        return IndexSpec("ivf", {"nlist": nlist}, {"nprobe": 8})
    if kind == "ivfpq":
        m = next(m for m in (dim // 2, dim // 4, 16, 8, 4, 2, 1) if m >= 1 and dim % m == 0)
        # each sub-quantiser trains 2**nbits centroids and wants >= 39 points per centroid
        nbits = int(max(1, min(8, math.floor(math.log2(max(2, num_items / 39))))))
        return IndexSpec("ivfpq", {"nlist": nlist, "m": m, "nbits": nbits},
                         {"nprobe": 8, "k_factor": REFINE_K_FACTOR["ivfpq"]})
    if kind == "ivfsq8":
        return IndexSpec("ivfsq8", {"nlist": nlist}, {"nprobe": 8, "k_factor": REFINE_K_FACTOR["ivfsq8"]})
    raise unknown_type(kind)


def unknown_type(kind: str) -> SineError:
    """The one-line error for an index type that is neither `auto` nor one of `TYPES`."""
    return SineError(f"unknown index type {kind!r}; --type takes auto or one of {', '.join(TYPES)}")


def build_index(spec: IndexSpec, vectors: np.ndarray, gpu: bool = False, seed: int = 0):
    """Build and fill an index of `spec` over `vectors` ([N, D] float32); CPU or GPU."""
    faiss = faiss_module()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    _n, dim = vectors.shape
    ip = faiss.METRIC_INNER_PRODUCT
    if gpu and spec.type in CPU_ONLY_TYPES:
        raise SineError(f"{CPU_ONLY_TYPES[spec.type]}; use --type ivf or flat with --gpu on")
    if spec.type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif spec.type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, int(spec.build["M"]), ip)
        index.hnsw.efConstruction = int(spec.build["efConstruction"])
    elif spec.type == "ivf":
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, int(spec.build["nlist"]), ip)
    elif spec.type == "ivfpq":
        quantizer = faiss.IndexFlatIP(dim)
        pq = faiss.IndexIVFPQ(quantizer, dim, int(spec.build["nlist"]), int(spec.build["m"]),
                              int(spec.build["nbits"]), ip)
        index = faiss.IndexRefineFlat(pq)
    elif spec.type == "ivfsq8":
        sq8 = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, int(spec.build["nlist"]),
                                            faiss.ScalarQuantizer.QT_8bit, ip)
        index = faiss.IndexRefineFlat(sq8)
    else:
        raise unknown_type(spec.type)
    if gpu:
        index = to_gpu(index)
    if not index.is_trained:
        ivf = ivf_part(index)
        if ivf is not None:
            ivf.cp.seed = seed
        index.train(vectors)
    index.add(vectors)
    set_search_params(index, spec)
    return index


def serialize(index) -> bytes:
    faiss = faiss_module()
    return faiss.serialize_index(to_cpu(index)).tobytes()

