"""Filters, availability and diversity through the real app: a real small bundle with item
attributes, and a real Redis where availability is shared (database SINE_TEST_REDIS_DB)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.core.config import Settings
from service.main import create_app
from sine import diversity
from sine.bundle import read_bundle
from sine.encoder import OnnxEncoder, prepare_clicks

AUTH = {"authorization": "Bearer s3cret"}


def client_for(bundle, **settings) -> TestClient:
    return TestClient(create_app(Settings(bundle=bundle, **settings)))


@pytest.fixture(scope="module")
def client(attributed_bundle):
    with client_for(attributed_bundle, admin_token="s3cret") as c:
        yield c


@pytest.fixture(scope="module")
def bundle(attributed_bundle):
    return read_bundle(attributed_bundle)


def sequences(bundle, count=12) -> list[list[str]]:
    return [[bundle.items[i - 1] for i in row if i > 0] for row in bundle.sample_queries()[:count]]


def exact_filtered(bundle, clicks: list[str], allowed_ids: set[str], n: int) -> list[str]:
    """Literal: encode through the bundle's ONNX encoder, score every allowed, unclicked item
    (numpy), best n."""
    rows = [bundle.items.index(c) + 1 for c in clicks]
    vector = OnnxEncoder(bundle.encoder_path, gpu="off").encode(prepare_clicks([rows], bundle.max_len))[0]
    scores = np.asarray(bundle.item_embeddings) @ vector
    keep = [r for r, item in enumerate(bundle.items) if item in allowed_ids and item not in clicks]
    order = sorted(keep, key=lambda r: -scores[r])
    return [bundle.items[r] for r in order[:n]]


def ids_with(bundle, name: str, *labels: str) -> set[str]:
    column = bundle.attributes.columns[name]
    return {bundle.items[r] for r in range(bundle.num_items) if set(column.labels(r)) & set(labels)}


def in_stock(bundle) -> set[str]:
    return set(bundle.items) - {bundle.items[r] for r in bundle.attributes.unavailable_rows()}


def items_of(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [i["item_id"] for i in response.json()["items"]]


# ------------------------------------------------------------------------- filters


def test_include_gives_top_n_of_the_category_equal_to_exact_filtered_search(client, bundle):
    for clicks in sequences(bundle):
        allowed = ids_with(bundle, "category", "g3", "g7") & in_stock(bundle)
        got = items_of(client.post("/recommend", json={
            "clicks": clicks, "top_n": 10, "filter": {"include": {"category": ["g3", "g7"]}}}))
        assert got == exact_filtered(bundle, clicks, allowed, 10)
        assert len(got) == 10


def test_a_filter_keeping_1_percent_returns_every_match(client, bundle):
    rare = ids_with(bundle, "rare", "yes") & in_stock(bundle)
    assert 1 <= len(rare) <= 3
    clicks = sequences(bundle, 1)[0]
    got = items_of(client.post("/recommend", json={"clicks": clicks, "top_n": 10,
                                                    "filter": {"include": {"rare": ["yes"]}}}))
    assert set(got) == rare - set(clicks)


def test_exclude_and_a_multi_valued_attribute(client, bundle):
    clicks = sequences(bundle, 3)[2]
    body = {"clicks": clicks, "top_n": 15,
            "filter": {"include": {"tag": ["t1", "t6"]}, "exclude": {"category": ["g0", "g1", "g2"]}}}
    allowed = (ids_with(bundle, "tag", "t1", "t6") - ids_with(bundle, "category", "g0", "g1", "g2")) \
        & in_stock(bundle)
    assert items_of(client.post("/recommend", json=body)) == exact_filtered(bundle, clicks, allowed, 15)


def test_items_the_bundle_marks_unavailable_are_never_served(client, bundle):
    flagged = set(bundle.items) - in_stock(bundle)
    assert flagged
    served = set()
    for clicks in sequences(bundle, 30):
        served |= set(items_of(client.post("/recommend", json={"clicks": clicks, "top_n": 100})))
    served |= set(items_of(client.post("/recommend", json={"clicks": ["unknown"], "top_n": 300})))
    assert served and not served & flagged


def test_cold_start_fallback_is_filtered_too(client, bundle):
    response = client.post("/recommend", json={"clicks": [], "top_n": 5,
                                               "filter": {"include": {"category": ["g4"]}}})
    assert response.json()["fallback"] is True
    got = items_of(response)
    popular = [bundle.items[r] for r in np.argsort(-bundle.popularity, kind="stable")]
    assert got == [i for i in popular if i in ids_with(bundle, "category", "g4") & in_stock(bundle)][:5]


@pytest.mark.parametrize("body, fragment", [
    ({"filter": {"include": {"colour": ["red"]}}},
     "unknown attribute 'colour'; the catalog has the attributes: category, tag, rare, available"),
    ({"filter": {"include": {"category": ["g33"]}}},
     "filter.include.category: unknown value 'g33' (did you mean 'g3'"),
    ({"filter": {"include": {"category": ["G3"]}}},
     "filter.include.category: unknown value 'G3' (did you mean 'g3'?)"),
    ({"filter": {"exclude": {"tag": []}}}, "filter.exclude.tag: give at least one value"),
    ({"diversity": {"attribute": "genre", "cap": 2}}, "diversity: unknown attribute 'genre'"),
    ({"diversity": {"cap": 2, "penalty": 0.1}}, "give exactly one of cap or penalty"),
    ({"filter": {"include": {"category": "g1"}}}, "filter.include.category"),
])
def test_a_bad_filter_is_a_422_listing_what_exists(client, body, fragment):
    response = client.post("/recommend", json={"clicks": ["i1"], **body})
    assert response.status_code == 422
    assert fragment in response.json()["error"]


def test_a_filter_that_allows_nothing_says_so(client):
    both = {"include": {"category": ["g1"]}, "exclude": {"category": ["g1"]}}
    response = client.post("/recommend", json={"clicks": ["i1"], "filter": both})
    assert response.status_code == 200 and response.json()["items"] == []
    assert "allows 0 of the" in response.json()["note"]
    assert "note" not in client.post("/recommend", json={"clicks": ["i1"], "filter": {
        "include": {"category": ["g1"]}}}).json()
    batch = client.post("/recommend/batch", json={"requests": [{"clicks": ["i1"], "filter": both}]})
    assert "allows 0 of the" in batch.json()["results"][0]["note"]


def test_a_bundle_without_attributes_says_how_to_get_them(flat_bundle):
    with client_for(flat_bundle) as c:
        response = c.post("/recommend", json={"clicks": ["i1"], "filter": {"include": {"category": ["g1"]}}})
        assert response.status_code == 422 and "sine export --attributes" in response.json()["error"]
        assert c.get("/model").json()["attributes"] == {}


def test_batch_applies_each_requests_rules_and_names_the_bad_one(client, bundle):
    clicks = sequences(bundle, 4)
    requests = [{"clicks": clicks[0], "top_n": 5, "filter": {"include": {"category": ["g1"]}}},
                {"clicks": clicks[1], "top_n": 5},
                {"clicks": clicks[2], "top_n": 5, "filter": {"include": {"category": ["g1"]}}},
                {"clicks": clicks[3], "top_n": 5, "filter": {"include": {"category": ["g2"]}}}]
    batch = client.post("/recommend/batch", json={"requests": requests})
    assert batch.status_code == 200
    one_by_one = [items_of(client.post("/recommend", json=r)) for r in requests]
    assert [[i["item_id"] for i in r["items"]] for r in batch.json()["results"]] == one_by_one
    bad = client.post("/recommend/batch", json={"requests": [requests[0], {"clicks": ["i1"], "filter": {
        "include": {"category": ["nope"]}}}]})
    assert bad.status_code == 422 and bad.json()["error"].startswith("requests[1]: filter.include.category")


def test_model_lists_the_attributes(client):
    assert client.get("/model").json()["attributes"] == {"available": 2, "category": 12, "rare": 1, "tag": 12}


def test_openapi_has_examples_for_filters_diversity_and_items(client):
    spec = client.get("/openapi.json").json()
    request = str(spec["components"]["schemas"]["RecommendRequest"])
    assert "'include': {'category': ['Comedy', 'Drama']}" in request and "'cap': 3" in request
    assert "unknown value 'Comdy'" in request  # the error a bad filter gets
    assert "/admin/items" in spec["paths"] and "examples" in str(spec["components"]["schemas"]["ItemsUpdate"])


# ----------------------------------------------------------------------- diversity


def test_cap_is_the_literal_rule_over_the_plain_candidates(client, bundle):
    column = bundle.attributes.columns["category"]
    for clicks in sequences(bundle, 6):
        pool = items_of(client.post("/recommend", json={"clicks": clicks, "top_n": 40}))
        got = items_of(client.post("/recommend", json={"clicks": clicks, "top_n": 10,
                                                        "diversity": {"cap": 2}}))
        counts, expected = {}, []
        for item in pool:
            (label,) = column.labels(bundle.items.index(item))
            if counts.get(label, 0) < 2:
                counts[label] = counts.get(label, 0) + 1
                expected.append(item)
        assert got == expected[:10]


def test_penalty_spreads_the_list_over_more_categories(client, bundle):
    column = bundle.attributes.columns["category"]
    rows = {item: r for r, item in enumerate(bundle.items)}
    plain, spread = [], []
    for clicks in sequences(bundle, 10):
        for target, body in ((plain, {}), (spread, {"diversity": {"penalty": 5.0}})):
            got = items_of(client.post("/recommend", json={"clicks": clicks, "top_n": 10, **body}))
            target.append(diversity.intra_list_distance(column, [rows[i] for i in got]))
    assert np.mean(spread) > np.mean(plain)


# --------------------------------------------------------------------- availability


def served_for(client, clicks_list, top_n=100) -> set[str]:
    served = set()
    for clicks in clicks_list:
        served |= set(items_of(client.post("/recommend", json={"clicks": clicks, "top_n": top_n})))
    return served


def wait_until(check, seconds=5.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


def test_unavailable_items_leave_every_replica_and_survive_a_restart(attributed_bundle, bundle, redis_url):
    import redis

    clicks = sequences(bundle, 5)
    settings = {"redis_url": redis_url, "admin_token": "s3cret", "availability_poll_seconds": 0.2}
    with client_for(attributed_bundle, **settings) as a, client_for(attributed_bundle, **settings) as b:
        popular = served_for(b, clicks, top_n=20)
        marked = sorted(popular)[:10]
        response = a.post("/admin/items", json={"unavailable": [*marked, "not-in-catalog"]}, headers=AUTH)
        assert response.status_code == 200, response.text
        assert response.json()["unavailable"] == 11 and response.json()["not_in_catalog"] == ["not-in-catalog"]
        assert response.json()["ids"] == sorted([*marked, "not-in-catalog"])
        assert not served_for(a, clicks) & set(marked)  # the replica that wrote: at once
        wait_until(lambda: not served_for(b, clicks) & set(marked))  # the other: at its next poll
        # filtered requests and the fallback honour it too
        assert not set(items_of(b.post("/recommend", json={"clicks": [], "top_n": 300}))) & set(marked)
        listed = a.get("/admin/items", headers=AUTH).json()
        assert listed["unavailable"] == 11 and listed["store"] == "redis" and marked[0] in listed["ids"]
        assert listed["not_in_catalog"] == ["not-in-catalog"]  # GET says what POST said
        assert b.get("/readyz").json()["checks"]["unavailable_items"].startswith("11 ids, read ")
        # written straight into Redis, without touching the version counter
        direct = sorted(popular - set(marked))[0]
        redis.Redis.from_url(redis_url).sadd("sine:items:unavailable", direct)
        wait_until(lambda: direct not in served_for(b, clicks))
        back = a.post("/admin/items", json={"available": marked[:3]}, headers=AUTH)
        assert back.json()["unavailable"] == 9
        wait_until(lambda: set(marked[:3]) <= served_for(b, clicks, top_n=300))
    with client_for(attributed_bundle, **settings) as restarted:  # the set lives in Redis
        assert not served_for(restarted, clicks, top_n=300) & (set(marked[3:]) | {direct})


def test_a_new_bundle_honours_the_set(attributed_bundle, other_bundle, bundle, redis_url):
    """Ids are raw ids: a retrained model (here another model of the catalog) is filtered by
    the same set the moment it is loaded."""
    clicks = sequences(bundle, 5)
    with client_for(attributed_bundle, redis_url=redis_url, admin_token="s3cret") as c:
        assert c.post("/admin/reload", json={"bundle": str(other_bundle)}, headers=AUTH).status_code == 200
        before = served_for(c, clicks, top_n=20)
        marked = sorted(before)[:8]
        c.post("/admin/items", json={"unavailable": marked}, headers=AUTH)
        assert not served_for(c, clicks) & set(marked)
        assert c.post("/admin/reload", json={"bundle": str(attributed_bundle)}, headers=AUTH).status_code == 200
        assert not served_for(c, clicks, top_n=300) & set(marked)


def test_in_process_availability_limits_and_the_token(attributed_bundle, bundle):
    flagged = sorted(set(bundle.items) - in_stock(bundle))
    with client_for(attributed_bundle, admin_token="s3cret", max_unavailable=3) as c:
        assert c.post("/admin/items", json={"unavailable": ["i1"]}).status_code == 401
        both = c.post("/admin/items", json={"unavailable": ["i1"], "available": ["i1"]}, headers=AUTH)
        assert both.status_code == 422 and "both unavailable and available: i1" in both.json()["error"]
        ok = c.post("/admin/items", json={"unavailable": ["i1", "i2"], "available": [flagged[0]]}, headers=AUTH)
        assert ok.json()["store"] == "memory" and ok.json()["unavailable_in_bundle"] == [flagged[0]]
        too_many = c.post("/admin/items", json={"unavailable": ["i3", "i4"]}, headers=AUTH)
        assert too_many.status_code == 409 and "SINE_MAX_UNAVAILABLE=3" in too_many.json()["error"]
        assert not served_for(c, sequences(bundle, 5), top_n=300) & {"i1", "i2"}
    with client_for(attributed_bundle) as c:
        assert c.post("/admin/items", json={"unavailable": ["i1"]}).status_code == 403


def test_the_announcement_reaches_a_replica_long_before_its_next_poll(attributed_bundle, bundle, redis_url):
    clicks = sequences(bundle, 5)
    with client_for(attributed_bundle, redis_url=redis_url, admin_token="s3cret") as a, \
            client_for(attributed_bundle, redis_url=redis_url, availability_poll_seconds=60) as b:
        time.sleep(0.5)  # b's watcher subscribes
        marked = sorted(served_for(b, clicks, top_n=10))[:5]
        assert a.post("/admin/items", json={"unavailable": marked}, headers=AUTH).status_code == 200
        assert wait_until(lambda: not served_for(b, clicks) & set(marked), seconds=10) < 10


# ------------------------------------------------------- with per-interest retrieval


def test_filters_and_diversity_hold_under_interests_retrieval(client, bundle):
    """The constraint reaches the per-interest search and the cap the merged list: every item
    passes the filter, the list is full, no category exceeds the cap, and each score is the
    item's best inner product with one of the user's interests (as without rules)."""
    labels = ["g1", "g3", "g5", "g7"]
    allowed = ids_with(bundle, "category", *labels) & in_stock(bundle)
    encoder = OnnxEncoder(bundle.encoder_path, gpu="off")
    column = bundle.attributes.columns["category"]
    for clicks in sequences(bundle, 6):
        response = client.post("/recommend", json={
            "clicks": clicks, "top_n": 10, "retrieval": "interests",
            "filter": {"include": {"category": labels}},
            "diversity": {"attribute": "category", "cap": 4}})
        got = items_of(response)
        aggregate = items_of(client.post("/recommend", json={
            "clicks": clicks, "top_n": 10, "filter": {"include": {"category": labels}},
            "diversity": {"attribute": "category", "cap": 4}}))
        assert len(got) == len(aggregate) == 10 and set(got) <= allowed and not set(got) & set(clicks)
        rows = [bundle.items.index(i) for i in got]
        per_label: dict[str, int] = {}
        for r in rows:
            for label in column.labels(r):
                per_label[label] = per_label.get(label, 0) + 1
        assert max(per_label.values()) <= 4
        outputs = encoder.encode_all(prepare_clicks([[bundle.items.index(c) + 1 for c in clicks]],
                                                    bundle.max_len))
        best = (np.asarray(bundle.item_embeddings)[rows] @ outputs["interest_vectors"][0].T).max(axis=1)
        assert np.allclose([i["score"] for i in response.json()["items"]], best, atol=1e-4)
