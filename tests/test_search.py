"""Serving-time search (sine.search): GPU searches serialized (issue 11 defect 6), rows an
IVF index cannot fill backfilled exactly (defect 10)."""

from __future__ import annotations

import threading
import time

import faiss
import numpy as np
import pytest

from index_builder.build import build_for_bundle
from service.recommender import LoadedModel, Query
from sine.search import ItemSearch, exact_top_k


class RecordingIndex:
    """Stands in for a faiss GPU index: records how many threads are inside `search` at once."""

    ntotal, d = 100, 4

    def __init__(self):
        self.inside = 0
        self.most_inside = 0
        self.guard = threading.Lock()

    def search(self, queries, k):
        with self.guard:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        time.sleep(0.002)  # faiss releases the GIL while it searches
        with self.guard:
            self.inside -= 1
        return np.zeros((len(queries), k), np.float32), np.zeros((len(queries), k), np.int64)


def hammer(search: ItemSearch, threads: int = 8, calls: int = 10) -> None:
    queries = np.ones((2, 4), np.float32)

    def work():
        for _ in range(calls):
            search.search(queries, 5)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


@pytest.mark.parametrize("on_gpu", [True, False])
def test_gpu_index_is_searched_by_one_thread_at_a_time(on_gpu):
    # no GPU here: a recording index flagged as on the GPU (the real GPU path is unverified)
    index = RecordingIndex()
    hammer(ItemSearch(index, np.zeros((100, 4), np.float32), gpu=on_gpu))
    if on_gpu:
        assert index.most_inside == 1
    else:  # CPU faiss search is thread-safe and stays concurrent (and shows the probe works)
        assert index.most_inside > 1


def test_every_gpu_index_shares_one_lock():
    # one StandardGpuResources serves every GPU index: two models (old and new during a
    # swap) must not search it at the same time either
    first, second = RecordingIndex(), RecordingIndex()
    a = ItemSearch(first, np.zeros((100, 4), np.float32), gpu=True)
    b = ItemSearch(second, np.zeros((100, 4), np.float32), gpu=True)
    assert a.lock is b.lock is not None


def test_rows_an_ivf_index_cannot_fill_are_answered_exactly():
    rng = np.random.default_rng(0)
    items = rng.standard_normal((2000, 16)).astype(np.float32)
    queries = rng.standard_normal((20, 16)).astype(np.float32)
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(16), 16, 64, faiss.METRIC_INNER_PRODUCT)
    ivf.train(items)
    ivf.add(items)
    ivf.nprobe = 1  # one list of ~31 items: a search for 200 comes back mostly -1
    assert (ivf.search(queries, 200)[1] < 0).any()
    search = ItemSearch(ivf, items)
    scores, rows = search.search(queries, 200)
    assert (rows >= 0).all() and search.backfilled == 20
    exact_scores, exact_rows = exact_top_k(items, queries, 200)
    assert np.array_equal(rows, exact_rows) and np.allclose(scores, exact_scores, atol=1e-4)


def test_the_service_fills_top_n_from_an_ivf_index_probing_one_list(flat_bundle, tmp_path):
    bundle = build_for_bundle(flat_bundle, kind="ivf", out=tmp_path / "ivf", force=True)
    model = LoadedModel.load(bundle.path)
    faiss.extract_index_ivf(getattr(model.index, "index", model.index)).nprobe = 1
    clicks = [bundle.items[r] for r in range(5)]
    (answer,) = model.recommend([Query(clicks, top_n=250)])
    assert len(answer.item_ids) == 250 and not set(answer.item_ids) & set(clicks)
    assert answer.scores == sorted(answer.scores, reverse=True)


def test_the_service_searches_without_the_index_builder():
    import subprocess
    import sys

    code = ("import sys, service.main; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'index_builder', 'torch', 'trainer'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_trusted_depth_is_the_deepest_k_meeting_the_floor():
    from sine.search import trusted_depth

    section = {"type": "hnsw", "recall_floor": 0.95,
               "recall": {"recall@10": 0.997, "recall@55": 0.99, "recall@100": 0.979, "recall@500": 0.93,
                          "recall@2200": 0.40}}
    assert trusted_depth(section) == 100
    assert trusted_depth({**section, "recall": {"recall@50": 0.99, "recall@2200": 0.99}}) is None
    assert trusted_depth({**section, "type": "flat"}) is None and trusted_depth(None) is None


def test_searches_deeper_than_trusted_are_exact():
    rng = np.random.default_rng(1)
    items = rng.standard_normal((500, 4)).astype(np.float32)
    queries = rng.standard_normal((3, 4)).astype(np.float32)
    index = RecordingIndex()
    search = ItemSearch(index, items, exact_beyond=10)
    search.search(queries, 10)
    assert index.most_inside == 1  # within the trusted depth: the index
    index.most_inside = 0
    _, rows = search.search(queries, 200)
    assert index.most_inside == 0 and search.exact_searches == 1
    assert np.array_equal(rows, exact_top_k(items, queries, 200)[1])
