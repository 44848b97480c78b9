"""`sine build-index`: add a measured faiss index to a bundle.

1. Encode the bundle's sample queries (validation users) with its ONNX encoder: the
   recall is measured on real query vectors, not on random ones.
2. Build the index (`auto` picks the type by catalog size and says why), on the GPU when
   faiss can use one.
3. Tune the search parameter (HNSW efSearch, IVF nprobe) up from a cheap value until
   recall@50 against exact search reaches the target (default 0.99).
4. Measure recall@10/50/100 and per-query latency (batch 1 and 64), and the latency of
   exact search for comparison; refuse to publish below the recall floor (default 0.95)
   unless forced.
5. Write the index and its measurements into the bundle, atomically (new version).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from index_builder import indexes
from index_builder.indexes import IndexSpec
from index_builder.quality import latency, recall_at, recalls
from sine.bundle import INDEX, Bundle, add_to_bundle, read_bundle
from sine.encoder import OnnxEncoder, has_clicks
from sine.errors import SineError

log = logging.getLogger("sine.index")

SEARCH_LADDERS = {
    "hnsw": [("efSearch", (16, 32, 64, 128, 256, 512, 1024, 2048, 4096))],
    "ivf": [("nprobe", (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096))],
    # IVF-PQ: probe more lists first; if even all lists fall short (coarse codes), re-rank
    # more candidates exactly
    "ivfpq": [("nprobe", (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)),
              ("k_factor", (8, 16, 32, 64))],
}


def query_vectors(bundle: Bundle, limit: int = 5000) -> np.ndarray:
    """User vectors of the bundle's sample queries, encoded through its ONNX encoder."""
    clicks = bundle.sample_queries()
    clicks = clicks[has_clicks(clicks)][:limit] if len(clicks) else clicks
    if len(clicks) == 0:
        raise SineError(f"{bundle.path}: the bundle has no sample queries to measure recall with")
    encoder = OnnxEncoder(bundle.encoder_path, gpu="off")
    return encoder.encode_many(clicks)


def tune(index, spec: IndexSpec, queries: np.ndarray, exact_ids: np.ndarray, target: float,
         k: int = 50) -> tuple[IndexSpec, float]:
    """Raise the search parameter until recall@k >= target (or the ladder ends)."""
    if spec.type not in SEARCH_LADDERS:
        return spec, 1.0
    recall = 0.0
    for name, ladder in SEARCH_LADDERS[spec.type]:
        if name == "nprobe":  # probing every list is exhaustive: the last rung
            ladder = (*tuple(v for v in ladder if v < spec.build["nlist"]), spec.build["nlist"])
        for value in ladder:
            spec.search[name] = value
            indexes.set_search_params(index, spec)
            _, ids = index.search(queries, k)
            recall = recall_at(ids, exact_ids, k)
            log.info("  %s=%s: recall@%d %.4f", name, value, k, recall)
            if recall >= target:
                return spec, recall
    return spec, recall


def build_and_measure(
    vectors: np.ndarray,
    queries: np.ndarray,
    kind: str = "auto",
    on_gpu: bool = False,
    target_recall: float = 0.99,
) -> tuple[Any, dict[str, Any]]:
    """Build an index over `vectors`, tune it on `queries`, measure it against exact search.

    Returns the index and its manifest section (type, parameters, recall, latencies). The
    benchmark calls this directly on synthetic catalogs; `build_for_bundle` on a bundle.
    """
    faiss = indexes.faiss_module()
    num_items, dim = vectors.shape
    if kind == "auto":
        kind, reason = indexes.choose_type(num_items, on_gpu, dim)
        log.info("index type auto -> %s (%s)", kind, reason)
    else:
        reason = "chosen with --type"
    if kind == "hnsw" and on_gpu:
        log.info("faiss has no GPU HNSW: building hnsw on the CPU")
        on_gpu = False
    spec = indexes.default_spec(kind, num_items, dim)
    k_max = min(100, num_items)
    exact = indexes.exact_index(vectors, on_gpu)
    _, exact_ids = exact.search(queries, k_max)
    start = time.perf_counter()
    index = indexes.build_index(spec, vectors, on_gpu)
    build_seconds = time.perf_counter() - start
    log.info("built %s index over %s items in %.1f s on %s", kind, f"{num_items:,}", build_seconds,
             "GPU" if on_gpu else "CPU")
    spec, _ = tune(index, spec, queries, exact_ids, target_recall, min(50, k_max))
    measured = recalls(index, queries, exact_ids)
    # latency as the service runs it: one faiss thread per worker (SINE_FAISS_THREADS=1)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        speed = latency(index, queries, k=min(50, k_max))
        exact_speed = latency(exact, queries, k=min(50, k_max))
    finally:
        faiss.omp_set_num_threads(threads)
    log.info("recall %s; %.3f ms per query (exact search: %.3f ms)",
             ", ".join(f"{k} {v:.4f}" for k, v in measured.items()),
             speed["batch1_p50_ms"], exact_speed["batch1_p50_ms"])
    section: dict[str, Any] = {
        **spec.to_dict(),
        "metric": "inner_product",
        "chosen_because": reason,
        "built_on": "gpu" if on_gpu else "cpu",
        "build_seconds": round(build_seconds, 3),
        "index_bytes": None,
        "recall": measured,
        "target_recall": target_recall,
        "queries": len(queries),
        "latency": speed,
        "exact_latency": exact_speed,
        "latency_threads": 1,
        "faiss_version": faiss.__version__,
    }
    return index, section


def build_for_bundle(
    bundle_path: str | Path,
    kind: str = "auto",
    gpu: str = "auto",
    target_recall: float = 0.99,
    recall_floor: float = 0.95,
    force: bool = False,
    out: str | Path | None = None,
    threads: int = 0,
) -> Bundle:
    """Build, tune, measure and publish the index of a bundle; returns the new bundle."""
    if threads:
        indexes.faiss_module().omp_set_num_threads(threads)
    bundle = read_bundle(bundle_path)
    index, section = build_and_measure(np.asarray(bundle.item_embeddings), query_vectors(bundle), kind,
                                       indexes.use_gpu(gpu), target_recall)
    recall50 = section["recall"].get("recall@50", min(section["recall"].values()))
    if recall50 < recall_floor and not force:
        raise SineError(
            f"index recall@50 is {recall50:.4f}, below the floor {recall_floor}; not publishing "
            "(use --type flat for exact search, or --force to publish anyway)"
        )
    data = indexes.serialize(index)
    section.update(recall_floor=recall_floor, forced=bool(force and recall50 < recall_floor),
                   index_bytes=len(data))
    result = add_to_bundle(bundle.path, out or bundle.path, {INDEX: data}, {"index": section})
    log.info("wrote %s (version %s)", result.path, result.version)
    return result
