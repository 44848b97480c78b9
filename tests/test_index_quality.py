"""Index quality as served (issue 11 defect 10): recall tuned on one half of the queries
and reported on the other, at the depths the service asks for; `auto` never publishes an
index slower than exact search: on the CPU it tries HNSW, then ivfsq8, then exact search."""

from __future__ import annotations

import logging

import numpy as np

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


SPEED_PROBED = {"IndexFlatIP": "flat", "IndexHNSWFlat": "hnsw", "IndexRefineFlat": "ivfsq8", "IndexIVFFlat": "ivf"}


def fixed_speeds(monkeypatch, ms: dict[str, float]) -> None:
    """Stand-ins for both latency probes: each index type answers in `ms[type]` ms per query
    at every batch size, so the tests assert `auto`'s decisions, not this machine's timings."""
    def latency(index, queries, k=50, singles=300, batch=64, repeats=3):
        t = ms[SPEED_PROBED[type(index).__name__]]
        return {"batch1_p50_ms": t, "batch1_p99_ms": t, f"batch{batch}_per_query_ms": t}

    def batch_latency(index, queries, k, batch, repeats=3):
        return ms[SPEED_PROBED[type(index).__name__]] / 1e3

    monkeypatch.setattr(build_module, "latency", latency)
    monkeypatch.setattr(build_module, "batch_latency", batch_latency)


def auto_build(monkeypatch, ms: dict[str, float], target: float = 0.95):
    vectors, queries = planted(items=4000, dim=300)  # 1.2M floats: `auto` picks HNSW by size
    fixed_speeds(monkeypatch, ms)
    return build_and_measure(vectors, queries, "auto", False, target)


def test_auto_publishes_hnsw_where_it_is_faster_than_exact_search(monkeypatch):
    index, section = auto_build(monkeypatch, {"flat": 0.13, "hnsw": 0.05, "ivfsq8": 0.01})
    assert section["type"] == "hnsw" and hasattr(index, "hnsw")
    assert section["auto_check"]["passed"] is True
    assert [t["type"] for t in section["auto_tried"]] == ["hnsw"]  # ivfsq8 is not tried, though faster
    assert not section["chosen_because"].startswith("auto tried")


def test_auto_tries_ivfsq8_where_hnsw_is_not_faster_than_exact_search(monkeypatch):
    index, section = auto_build(monkeypatch, {"flat": 0.13, "hnsw": 0.73, "ivfsq8": 0.05})
    assert section["type"] == "ivfsq8" and type(index).__name__ == "IndexRefineFlat"
    hnsw, ivfsq8 = section["auto_tried"]
    assert (hnsw["type"], hnsw["passed"], hnsw["faster_than_exact"]) == ("hnsw", False, False)
    assert (ivfsq8["type"], ivfsq8["passed"]) == ("ivfsq8", True)
    assert section["auto_check"]["index_batch1_p50_ms"] == 0.05 and section["auto_check"]["passed"]
    # the published figures are ivfsq8's own: its build time, its held-out recall
    assert section["build_seconds"] == ivfsq8["build_seconds"]
    assert section["recall"][f"recall@{section['serving_k']}"] == ivfsq8["held_out_recall"]
    because = section["chosen_because"]
    assert because.startswith("auto tried hnsw") and "then ivfsq8" in because
    assert "hnsw took 0.730 ms per query" in because and "not faster than exact search" in because
    assert "ivfsq8 took 0.050 ms" in because and "exact search is published" not in because


def test_auto_publishes_exact_search_where_hnsw_and_ivfsq8_are_not_faster(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="sine.index")
    index, section = auto_build(monkeypatch, {"flat": 0.13, "hnsw": 0.73, "ivfsq8": 0.5})
    # the published index is exact search: its timing is printed once, not next to itself
    assert caplog.messages[-1].endswith("0.130 ms per query at k=50 (exact search)")
    assert section["type"] == "flat" and type(index).__name__ == "IndexFlatIP"
    assert [(t["type"], t["passed"]) for t in section["auto_tried"]] == [("hnsw", False), ("ivfsq8", False)]
    assert "auto_check" not in section and section["recall"]["recall@50"] == 1.0
    because = section["chosen_because"]
    assert "hnsw took 0.730" in because and "ivfsq8 took 0.500" in because
    assert because.endswith("exact search is published instead")


def test_auto_rejects_a_fast_index_whose_tuning_missed_the_target(monkeypatch):
    # recall above 1 is out of any ladder's reach: both candidates are rejected for recall, not speed
    _, section = auto_build(monkeypatch, {"flat": 0.13, "hnsw": 0.01, "ivfsq8": 0.01}, target=1.01)
    assert section["type"] == "flat"
    for tried in section["auto_tried"]:
        assert tried["faster_than_exact"] is True and tried["reached_target"] is False
        assert "tuning did not reach 1.01" in tried["verdict"]


def test_a_failing_ivf_auto_pick_falls_back_to_exact_search_directly(monkeypatch):
    # the GPU's choice (ivf, chosen here on the CPU): no second candidate, ivfsq8 is CPU-only
    monkeypatch.setattr(build_module.indexes, "choose_type", lambda n, gpu, dim: ("ivf", "as on a GPU"))
    _, section = auto_build(monkeypatch, {"flat": 0.13, "ivf": 0.73, "ivfsq8": 0.01})
    assert section["type"] == "flat" and [t["type"] for t in section["auto_tried"]] == ["ivf"]


def test_an_explicit_type_is_published_as_asked(monkeypatch):
    vectors, queries = planted(items=4000, dim=300)
    fixed_speeds(monkeypatch, {"flat": 0.13, "hnsw": 0.73})
    _, section = build_and_measure(vectors, queries, "hnsw", False, 0.95)
    assert section["type"] == "hnsw" and "auto_check" not in section and "auto_tried" not in section
