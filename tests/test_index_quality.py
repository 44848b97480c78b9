"""Index quality as served (issue 11 defect 10): recall tuned on one half of the queries
and reported on the other, at the depths the service asks for; `auto` never publishes an
index slower than exact search."""

from __future__ import annotations

import numpy as np
import pytest

from index_builder import build as build_module
from index_builder.build import DEEPEST_K, SERVING_TOP_N, build_and_measure, build_for_bundle, split_queries
from index_builder.quality import recall_at
from sine.encoder import OnnxEncoder, has_clicks
from sine.search import IndexSpec, load_index


def planted(items=4000, dim=32, queries=400, seed=0):
    """Clustered vectors (ANN indexes reach useful recall on them, as on real embeddings)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 40, items)] + 0.3 * rng.standard_normal((items, dim)).astype(np.float32)
    asked = centres[rng.integers(0, 40, queries)] + 0.3 * rng.standard_normal((queries, dim)).astype(np.float32)
    return vectors.astype(np.float32), asked.astype(np.float32)


def test_recall_is_reported_on_held_out_queries_at_the_serving_depths(flat_bundle, tmp_path):
    built = build_for_bundle(flat_bundle, kind="hnsw", out=tmp_path / "hnsw", target_recall=0.99,
                             recall_floor=0.5)
    section = built.manifest["index"]
    clicks = built.sample_queries()
    clicks = clicks[has_clicks(clicks)]
    median_clicked = int(np.median([len({int(i) for i in row if i > 0}) for row in clicks]))
    assert section["serving_k"] == min(SERVING_TOP_N + median_clicked, built.num_items)
    assert section["deepest_k"] == min(DEEPEST_K, built.num_items)
    assert section["held_out"] is True
    assert section["queries_tuned"] + section["queries_measured"] == section["queries"] == len(clicks)
    # recompute on the held-out half, independently: the manifest's figures are those
    queries = OnnxEncoder(built.encoder_path, gpu="off").encode_many(clicks)
    _, held_out = split_queries(queries)
    assert len(held_out) == section["queries_measured"]
    index = load_index(built.index_path.read_bytes(), IndexSpec.from_dict(section))
    for k in (50, section["serving_k"], section["deepest_k"]):
        exact = np.argsort(-(held_out @ np.asarray(built.item_embeddings).T), axis=1, kind="stable")[:, :k]
        _, got = index.search(held_out, k)
        assert abs(recall_at(got, exact, k) - section["recall"][f"recall@{k}"]) < 0.01, k


def test_tuning_queries_are_not_the_reported_ones():
    queries = np.arange(100, dtype=np.float32)[:, None].repeat(4, axis=1)
    tuning, held_out = split_queries(queries)
    assert len(tuning) == 50 and len(held_out) == 50
    assert not set(tuning[:, 0]) & set(held_out[:, 0])


def fake_latency(index_ms: float, exact_ms: float):
    """A stand-in for the latency probe: the ANN index and exact search at fixed speeds."""
    def latency(index, queries, k=50, singles=300, batch=64, repeats=3):
        ms = index_ms if hasattr(index, "hnsw") else exact_ms
        return {"batch1_p50_ms": ms, "batch1_p99_ms": ms, f"batch{batch}_per_query_ms": ms}
    return latency


@pytest.mark.parametrize(("index_ms", "exact_ms", "published"), [(0.73, 0.13, "flat"), (0.05, 0.13, "hnsw")])
def test_auto_never_publishes_an_index_slower_than_exact_search(monkeypatch, index_ms, exact_ms, published):
    vectors, queries = planted(items=4000, dim=300)  # 1.2M floats: `auto` picks HNSW by size
    monkeypatch.setattr(build_module, "latency", fake_latency(index_ms, exact_ms))
    index, section = build_and_measure(vectors, queries, "auto", False, 0.95)
    assert section["type"] == published
    assert section["auto_check"]["faster_than_exact"] is (published == "hnsw")
    if published == "flat":
        assert "exact search is published" in section["chosen_because"]
        assert not hasattr(index, "hnsw") and section["recall"]["recall@50"] == 1.0


def test_an_explicit_type_is_published_as_asked(monkeypatch):
    vectors, queries = planted(items=4000, dim=300)
    monkeypatch.setattr(build_module, "latency", fake_latency(0.73, 0.13))
    _, section = build_and_measure(vectors, queries, "hnsw", False, 0.95)
    assert section["type"] == "hnsw" and "auto_check" not in section

