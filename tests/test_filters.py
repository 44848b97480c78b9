"""Filtered search (sine.filters) against literal transcriptions: the filter's semantics in
plain Python sets, exact filtered search as a numpy scan of the allowed rows."""

from __future__ import annotations

import numpy as np
import pytest

from sine import attributes, filters
from sine.search import IndexSpec, ItemSearch, exact_index, faiss_module


@pytest.fixture(scope="module")
def catalog():
    """400 items, D=16: a single-valued `category` (8 labels), a multi-valued `tag`."""
    rng = np.random.default_rng(0)
    items = [f"i{n}" for n in range(400)]
    table = {"category": {i: (f"c{rng.integers(8)}",) for i in items},
             "tag": {i: tuple(f"t{t}" for t in rng.choice(6, rng.integers(0, 3), replace=False))
                     for i in items if rng.random() < 0.9}}
    table["tag"] = {i: v for i, v in table["tag"].items() if v}
    vectors = rng.normal(size=(400, 16)).astype(np.float32)
    return items, table, attributes.align(table, items), vectors


def literal_allowed(table, items, include, exclude):
    """The filter as the docs say it: include = AND over attributes of (any label listed),
    exclude = drop items with any listed label."""
    keep = []
    for item in items:
        ok = all(set(table[name].get(item, ())) & set(values) for name, values in include.items())
        ok = ok and not any(set(table[name].get(item, ())) & set(values) for name, values in exclude.items())
        keep.append(ok)
    return np.array(keep)


@pytest.mark.parametrize("include, exclude", [
    ({"category": ["c1"]}, {}),
    ({"category": ["c1", "c5"], "tag": ["t2"]}, {}),
    ({}, {"tag": ["t0", "t3"]}),
    ({"tag": ["t1"]}, {"category": ["c0", "c1", "c2"]}),
])
def test_mask_equals_the_literal_semantics(catalog, include, exclude):
    items, table, attrs, _ = catalog
    key = filters.filter_key(include, exclude)
    filters.check_filter(attrs, key)
    assert np.array_equal(filters.allowed_mask(attrs, key, len(items)),
                          literal_allowed(table, items, include, exclude))


def test_constraint_bitmap_and_selector_agree_with_the_mask(catalog):
    items, _, attrs, _ = catalog
    cache = filters.Constraints(attrs, len(items), always_unavailable=np.array([3, 4]))
    key = filters.filter_key({"tag": ["t1", "t4"]}, None)
    constraint = cache.get(key, (1, np.array([10, 11, 12])))
    mask = filters.allowed_mask(attrs, key, len(items))
    mask[[3, 4, 10, 11, 12]] = False
    assert np.array_equal(constraint.allows(np.arange(len(items))), mask)
    assert constraint.count == mask.sum()
    assert all(constraint.selector.is_member(r) == mask[r] for r in range(len(items)))
    assert cache.get(key, (1, np.array([10, 11, 12]))) is constraint  # cached per filter and version
    assert cache.get(key, (2, np.array([]))) is not constraint
    assert filters.Constraints(attrs, len(items)).get(None, (5, np.array([], np.int64))) is None


def test_filter_keys_are_canonical():
    assert filters.filter_key({"a": ["y", "x", "x"], "b": ["z"]}, {}) == \
        filters.filter_key({"b": ["z"], "a": ["x", "y"]}, None)
    assert filters.filter_key({}, {}) is None


@pytest.mark.parametrize("include, exclude, fragment", [
    ({"colour": ["red"]}, {}, "unknown attribute 'colour'; the catalog has the attributes: category, tag"),
    ({"category": ["c11"]}, {}, "filter.include.category: unknown value 'c11' (did you mean 'c1'?); "
                                "category has: c0, c1, c2, c3, c4, c5, c6, c7"),
    ({}, {"tag": ["t9"]}, "filter.exclude.tag: unknown value 't9'"),
    ({"category": ["C1"]}, {}, "unknown value 'C1' (did you mean 'c1'?)"),
    ({"category": []}, {}, "filter.include.category: give at least one value"),
])
def test_bad_filters_say_what_exists(catalog, include, exclude, fragment):
    _, _, attrs, _ = catalog
    with pytest.raises(filters.FilterError) as caught:
        filters.check_filter(attrs, filters.filter_key(include, exclude))
    assert fragment in str(caught.value)


def test_a_catalog_without_attributes_says_how_to_get_them():
    with pytest.raises(filters.FilterError, match="export it with `sine export --attributes FILE`"):
        filters.check_filter(None, filters.filter_key({"category": ["x"]}, None))


def literal_filtered_top_k(vectors, query, allowed, k):
    rows = np.flatnonzero(allowed)
    scores = vectors[rows] @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return rows[order], scores[order]


@pytest.mark.parametrize("share", [0.01, 0.1, 0.5, 1.0])
def test_exact_filtered_search_is_the_numpy_scan_of_allowed_rows(catalog, share):
    items, _, _, vectors = catalog
    rng = np.random.default_rng(int(share * 100))
    allowed = rng.random(len(items)) < share
    allowed[0] = True
    constraint = filters.Constraint.of(allowed)
    queries = rng.normal(size=(5, 16)).astype(np.float32)
    k = 20
    scores, rows = filters.exact_search(vectors, queries, k, constraint)
    for q in range(5):
        expected_rows, expected_scores = literal_filtered_top_k(vectors, queries[q], allowed, k)
        got = rows[q][rows[q] >= 0]
        assert len(got) == min(k, allowed.sum())  # every allowed row while fewer than k exist
        np.testing.assert_allclose(scores[q][: len(got)], expected_scores, rtol=1e-5, atol=1e-5)
        assert set(got) == set(expected_rows)
        assert (rows[q][len(got):] == -1).all()


def hnsw_search(vectors, ef=32):
    """HNSW as the builder makes it (M=32, efConstruction=200)."""
    faiss = faiss_module()
    index = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 200
    index.add(vectors)
    index.hnsw.efSearch = ef
    return ItemSearch(index, vectors), IndexSpec("hnsw", {"M": 32}, {"efSearch": ef})


def test_index_path_only_returns_allowed_rows_and_fills_every_row(catalog):
    items, _, _, vectors = catalog
    item_search, spec = hnsw_search(vectors)
    # measured latencies that make the index the cheaper choice at every share above ~2%
    section = {"latency": {"batch1_p50_ms": 0.01}, "exact_latency": {"batch1_p50_ms": 1.0}}
    searcher = filters.FilteredSearch(item_search, spec, section)
    rng = np.random.default_rng(1)
    queries = rng.normal(size=(30, 16)).astype(np.float32)
    for share in (0.3, 0.6):
        allowed = rng.random(len(items)) < share
        constraint = filters.Constraint.of(allowed)
        assert searcher.strategy(constraint, 20) == "index"
        _scores, rows = searcher.search(queries, 20, constraint)
        assert (rows >= 0).all() and allowed[rows].all()
        recall = np.mean([len(set(rows[q]) & set(literal_filtered_top_k(vectors, queries[q], allowed, 20)[0]))
                          / 20 for q in range(len(queries))])
        assert recall >= 0.95
    assert searcher.by_index == 60


def test_the_cost_model_picks_exact_for_selective_filters_and_flat_indexes():
    spec = IndexSpec("hnsw", {}, {"efSearch": 64})
    video = {"latency": {"batch1_p50_ms": 0.17}, "exact_latency": {"batch1_p50_ms": 0.73}}
    assert filters.prefer_exact(spec, video, 0.01, on_gpu=False)
    assert filters.prefer_exact(spec, video, 0.1, on_gpu=False)
    assert not filters.prefer_exact(spec, video, 0.9, on_gpu=False)
    assert filters.prefer_exact(IndexSpec("flat"), video, 0.9, on_gpu=False)
    assert filters.prefer_exact(spec, video, 0.9, on_gpu=True)
    assert filters.prefer_exact(spec, None, 0.9, on_gpu=False)  # nothing measured


def test_deeper_than_trusted_depth_is_exact_and_nothing_allowed_is_empty(catalog):
    items, _, _, vectors = catalog
    item_search, spec = hnsw_search(vectors)
    item_search.exact_beyond = 10
    section = {"latency": {"batch1_p50_ms": 0.01}, "exact_latency": {"batch1_p50_ms": 1.0}}
    searcher = filters.FilteredSearch(item_search, spec, section)
    constraint = filters.Constraint.of(np.ones(len(items), dtype=bool))
    assert searcher.strategy(constraint, 11) == "exact" and searcher.strategy(constraint, 10) == "index"
    none = filters.Constraint.of(np.zeros(len(items), dtype=bool))
    _, rows = searcher.search(vectors[:2], 5, none)
    assert (rows == -1).all()


def test_flat_index_and_exact_search_agree(catalog):
    items, _, _, vectors = catalog
    searcher = filters.FilteredSearch(ItemSearch(exact_index(vectors), vectors), IndexSpec("flat"))
    allowed = np.arange(len(items)) % 3 == 0
    _scores, rows = searcher.search(vectors[:4], 10, filters.Constraint.of(allowed))
    for q in range(4):
        assert list(rows[q]) == list(literal_filtered_top_k(vectors, vectors[q], allowed, 10)[0])
    assert searcher.exact == 4


@pytest.fixture(scope="module")
def larger():
    """5,000 clustered vectors (D=16): enough for graph and IVF search to lose recall."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(50, 16))
    vectors = (centres[rng.integers(50, size=5000)] + 0.5 * rng.normal(size=(5000, 16))).astype(np.float32)
    return vectors, rng.normal(size=(40, 16)).astype(np.float32)


INDEX_CHEAPER = {"latency": {"batch1_p50_ms": 0.01}, "exact_latency": {"batch1_p50_ms": 1.0}}


def mean_recall(rows, vectors, queries, allowed, k):
    return np.mean([len(set(rows[q]) & set(literal_filtered_top_k(vectors, queries[q], allowed, k)[0])) / k
                    for q in range(len(queries))])


def test_hnsw_effort_grows_with_the_filter_to_keep_recall(larger):
    """A filter keeping 10% meets an allowed item a tenth as often: efSearch x 10 keeps the
    recall the index has without a filter (0.93 here; 0.70 at the unscaled efSearch)."""
    vectors, queries = larger
    item_search, spec = hnsw_search(vectors, ef=32)
    everything = np.ones(len(vectors), dtype=bool)
    unfiltered = mean_recall(item_search.search(queries, 20)[1], vectors, queries, everything, 20)
    searcher = filters.FilteredSearch(item_search, spec, INDEX_CHEAPER)
    allowed = np.random.default_rng(2).random(len(vectors)) < 0.1
    constraint = filters.Constraint.of(allowed)
    assert searcher.strategy(constraint, 20) == "index"
    _, rows = searcher.search(queries, 20, constraint)
    assert allowed[rows].all() and mean_recall(rows, vectors, queries, allowed, 20) >= unfiltered


def test_ivf_rows_left_short_are_searched_again_exactly(larger):
    vectors, queries = larger
    faiss = faiss_module()
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(16), 16, 100, faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)
    index.add(vectors)
    spec = IndexSpec("ivf", {"nlist": 100}, {"nprobe": 1})
    searcher = filters.FilteredSearch(ItemSearch(index, vectors), spec, INDEX_CHEAPER)
    allowed = np.random.default_rng(3).random(len(vectors)) < 0.1
    constraint = filters.Constraint.of(allowed)
    _, rows = searcher.search(queries, 50, constraint)
    assert searcher.by_index == len(queries) and searcher.backfilled > 0  # the case this test is about
    assert (rows >= 0).all() and allowed[rows].all()
