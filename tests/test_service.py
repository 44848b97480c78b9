"""The HTTP API through the ASGI app (httpx), against a real Redis where Redis is involved."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from service.core.config import Settings
from service.main import create_app
from sine.bundle import read_bundle
from tests.load import steady_load
from trainer.run import load_run


def client_for(bundle, **settings) -> TestClient:
    return TestClient(create_app(Settings(bundle=bundle, **settings)))


@pytest.fixture(scope="module")
def client(flat_bundle):
    with client_for(flat_bundle) as c:
        yield c


def exact_top_n(run, bundle, clicks: list[str], n: int) -> list[str]:
    """What the trainer ranks first for `clicks`: PyTorch, every item scored, clicked removed."""
    index = [bundle.items.index(c) + 1 for c in clicks][-run.config.max_len:]
    with torch.no_grad():
        vector = run.encoder(torch.tensor([index])).user_vector[0].numpy()
    scores = np.asarray(bundle.item_embeddings) @ vector
    scores[[i - 1 for i in index]] = -np.inf
    return [bundle.items[r] for r in np.argsort(-scores, kind="stable")[:n]]


def sample_sequences(bundle, count=20) -> list[list[str]]:
    queries = read_bundle(bundle).sample_queries()[:count]
    items = read_bundle(bundle).items
    return [[items[i - 1] for i in row if i > 0] for row in queries]


def test_top_n_equals_the_trainers_exact_top_n(client, trained_run, flat_bundle):
    run, bundle = load_run(trained_run), read_bundle(flat_bundle)
    for clicks in sample_sequences(flat_bundle):
        response = client.post("/recommend", json={"clicks": clicks, "top_n": 20})
        assert response.status_code == 200
        got = [item["item_id"] for item in response.json()["items"]]
        assert got == exact_top_n(run, bundle, clicks, 20)


def test_hnsw_index_agrees_with_exact_up_to_its_recall(hnsw_bundle, trained_run):
    run, bundle = load_run(trained_run), read_bundle(hnsw_bundle)
    recall = bundle.manifest["index"]["recall"]["recall@50"]
    overlaps = []
    with client_for(hnsw_bundle) as c:
        for clicks in sample_sequences(hnsw_bundle, 40):
            got = [i["item_id"] for i in c.post("/recommend", json={"clicks": clicks}).json()["items"]]
            overlaps.append(len(set(got) & set(exact_top_n(run, bundle, clicks, 50))) / 50)
    assert np.mean(overlaps) >= recall - 0.02


def test_clicked_and_excluded_items_never_appear_and_the_list_stays_full(client, flat_bundle):
    clicks = sample_sequences(flat_bundle, 1)[0]
    first = client.post("/recommend", json={"clicks": clicks, "top_n": 30}).json()
    exclude = [i["item_id"] for i in first["items"][:10]]
    body = client.post("/recommend", json={"clicks": clicks, "top_n": 30, "exclude": exclude}).json()
    got = [i["item_id"] for i in body["items"]]
    assert len(got) == 30
    assert not set(got) & (set(exclude) | set(clicks))
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    kept = client.post("/recommend", json={"clicks": clicks, "top_n": 30, "exclude_clicked": False})
    assert set(clicks) & {i["item_id"] for i in kept.json()["items"]}


def test_unknown_clicks_are_reported_not_fatal(client, flat_bundle):
    clicks = sample_sequences(flat_bundle, 1)[0]
    body = client.post("/recommend", json={"clicks": ["nope", *clicks, "also-nope"]}).json()
    assert body["unknown_clicks"] == ["nope", "also-nope"]
    assert body["fallback"] is False
    assert body["model_version"] == read_bundle(flat_bundle).version


def test_no_known_click_falls_back_to_popular_items(client, flat_bundle):
    bundle = read_bundle(flat_bundle)
    body = client.post("/recommend", json={"clicks": ["unknown"], "top_n": 5}).json()
    assert body["fallback"] is True
    popular = [bundle.items[r] for r in np.argsort(-bundle.popularity, kind="stable")[:5]]
    assert [i["item_id"] for i in body["items"]] == popular
    empty = client.post("/recommend", json={"top_n": 3}).json()
    assert empty["fallback"] is True and len(empty["items"]) == 3


def test_top_n_larger_than_the_catalog_returns_the_catalog(client, flat_bundle):
    bundle = read_bundle(flat_bundle)
    clicks = sample_sequences(flat_bundle, 1)[0]
    body = client.post("/recommend", json={"clicks": clicks, "top_n": 1000}).json()
    assert len(body["items"]) == bundle.num_items - len(set(clicks))


def test_batch_equals_one_by_one(client, flat_bundle):
    requests = [{"clicks": c, "top_n": 7} for c in sample_sequences(flat_bundle, 5)]
    requests.append({"clicks": ["unknown"], "top_n": 3})
    batch = client.post("/recommend/batch", json={"requests": requests})
    assert batch.status_code == 200
    singles = [client.post("/recommend", json=r).json() for r in requests]
    for together, alone in zip(batch.json()["results"], singles, strict=True):
        # the same items in the same order; scores equal up to float rounding (a batch is
        # padded to its longest row, which the encoder ignores up to ~1e-7)
        assert [i["item_id"] for i in together["items"]] == [i["item_id"] for i in alone["items"]]
        assert np.allclose([i["score"] for i in together["items"]], [i["score"] for i in alone["items"]],
                           atol=1e-4)
        assert {k: v for k, v in together.items() if k != "items"} == \
            {k: v for k, v in alone.items() if k != "items"}


def test_numeric_ids_are_taken_as_strings(client):
    assert client.post("/recommend", json={"clicks": [1, 2, 3], "top_n": 2}).status_code == 200


@pytest.mark.parametrize("payload, status, fragment", [
    ({"clicks": "i1"}, 422, "clicks"),
    ({"clicks": [["nested"]]}, 422, "clicks"),
    ({"top_n": 0}, 422, "top_n"),
    ({"top_n": 1001}, 422, "SINE_MAX_TOP_N"),
    ({"clicks": ["i1"] * 1001}, 422, "SINE_MAX_CLICKS"),
    ({"clicks": ["i1"], "surprise": 1}, 422, "surprise"),
    ({"clicks": ["x" * 300]}, 422, "clicks"),
    ([], 422, "body"),
])
def test_bad_requests_get_4xx_with_a_message(client, payload, status, fragment):
    response = client.post("/recommend", json=payload)
    assert response.status_code == status
    assert fragment in response.json()["error"]


def test_empty_body_wrong_content_type_non_utf8_and_oversized(client):
    assert client.post("/recommend", content=b"").status_code == 422
    wrong_type = client.post("/recommend", content=b'{"clicks": []}', headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415 and "Content-Type: application/json" in wrong_type.json()["error"]
    bad_bytes = client.post("/recommend", content=b'{"clicks": ["\xff\xfe"]}',
                            headers={"content-type": "application/json"})
    assert bad_bytes.status_code in (400, 422) and bad_bytes.json()["error"]
    huge = client.post("/recommend", content=b"[" + b"1," * 600_000 + b"1]",
                       headers={"content-type": "application/json"})
    assert huge.status_code == 413 and "SINE_MAX_BODY_BYTES" in huge.json()["error"]
    deep = client.post("/recommend", content=b"[" * 5000 + b"]" * 5000,
                       headers={"content-type": "application/json"})
    assert 400 <= deep.status_code < 500


def test_batch_limits(client):
    response = client.post("/recommend/batch", json={"requests": [{"top_n": 1}] * 257})
    assert response.status_code == 422 and "SINE_MAX_BATCH" in response.json()["error"]
    bad_item = client.post("/recommend/batch", json={"requests": [{"top_n": 1}, {"top_n": 5000}]})
    assert bad_item.status_code == 422 and "requests[1]" in bad_item.json()["error"]


def test_health_readiness_metrics_and_model(client, flat_bundle):
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    client.post("/recommend", json={"clicks": ["i1"]})
    metrics = client.get("/metrics").text
    assert 'sine_requests_total{endpoint="/recommend",status="200"}' in metrics
    assert "sine_request_seconds_bucket" in metrics and "sine_catalog_items" in metrics
    assert read_bundle(flat_bundle).version in metrics
    model = client.get("/model").json()
    assert model["version"] == read_bundle(flat_bundle).version
    assert model["serving"]["index_type"] == "flat"


def test_request_id_is_echoed(client):
    response = client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert len(client.get("/healthz").headers["x-request-id"]) == 32


def test_openapi_documents_every_endpoint_with_examples(client):
    spec = client.get("/openapi.json").json()
    for path in ("/recommend", "/recommend/batch", "/events", "/healthz", "/readyz", "/metrics", "/model",
                 "/admin/reload", "/admin/rollback"):
        assert path in spec["paths"], path
    assert "examples" in json.dumps(spec["components"]["schemas"]["RecommendRequest"])


def test_every_ref_in_the_openapi_document_resolves(client):
    """A `$ref` must point somewhere in the document itself: pydantic's `#/$defs/...` in a
    hand-documented body once left clients (and the schema fuzzer) unable to build a filter."""
    spec = client.get("/openapi.json").json()
    refs: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        target = spec
        for part in ref[2:].split("/"):
            assert isinstance(target, dict) and part in target, f"{ref} does not resolve"
            target = target[part]
    body = spec["paths"]["/recommend"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "include" in json.dumps(body["properties"]["filter"])


# ---------------------------------------------------------------- events and Redis


def test_events_in_memory_store_are_merged_into_recommendations(client, flat_bundle):
    clicks = sample_sequences(flat_bundle, 1)[0]
    stored = client.post("/events", json=[{"user_id": "mem-user", "item_id": c} for c in clicks])
    assert stored.status_code == 200 and stored.json()["stored"] == len(clicks)
    by_history = client.post("/recommend", json={"user_id": "mem-user", "top_n": 10}).json()
    by_clicks = client.post("/recommend", json={"clicks": clicks, "top_n": 10}).json()
    assert by_history["history"] == "merged"
    assert by_history["items"] == by_clicks["items"]


def test_events_go_to_redis_history_and_stream(flat_bundle, redis_url):
    import redis

    with client_for(flat_bundle, redis_url=redis_url, history_cap=3) as c:
        response = c.post("/events", json=[{"user_id": "u1", "item_id": f"i{k}", "timestamp": 100 + k}
                                           for k in range(5)])
        assert response.status_code == 200 and len(response.json()["ids"]) == 5
        single = c.post("/events", json={"user_id": "u2", "item_id": "i9"})
        assert single.json()["stored"] == 1
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        assert r.lrange("sine:history:u1", 0, -1) == ["i2", "i3", "i4"]  # capped at 3
        entries = r.xrange("sine:events")
        assert [e[1]["item_id"] for e in entries] == ["i0", "i1", "i2", "i3", "i4", "i9"]
        assert float(entries[0][1]["timestamp"]) == 100.0
        body = c.post("/recommend", json={"user_id": "u1", "clicks": [], "top_n": 5}).json()
        assert body["history"] == "merged"
        assert not {"i2", "i3", "i4"} & {i["item_id"] for i in body["items"]}
        assert c.get("/readyz").json()["checks"]["redis"] == "ok"


def test_redis_down_recommend_keeps_answering_events_503_ready_but_degraded(flat_bundle):
    with client_for(flat_bundle, redis_url="redis://127.0.0.1:1/0", redis_timeout_seconds=0.2) as c:
        body = c.post("/recommend", json={"user_id": "u1", "clicks": ["i1", "i2"], "top_n": 3})
        assert body.status_code == 200 and body.json()["history"] == "unavailable"
        assert len(body.json()["items"]) == 3
        events = c.post("/events", json={"user_id": "u1", "item_id": "i1"})
        assert events.status_code == 503 and "nothing was stored" in events.json()["error"]
        ready = c.get("/readyz")  # a Redis outage must not take the replica out of the balancer
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["redis"] == "unavailable"


def test_event_validation(client):
    assert client.post("/events", json=[]).status_code == 422
    assert client.post("/events", json={"user_id": "u"}).status_code == 422
    assert client.post("/events", json=[{"user_id": "u", "item_id": "i"}] * 1001).status_code == 422
    nan = client.post("/events", content=b'{"user_id": "u", "item_id": "i", "timestamp": NaN}',
                      headers={"content-type": "application/json"})
    assert nan.status_code == 422


# ----------------------------------------------------------------------- admin


def test_admin_is_disabled_without_a_token(client):
    assert client.post("/admin/reload").status_code == 403
    assert "SINE_ADMIN_TOKEN" in client.post("/admin/rollback").json()["error"]


def test_admin_reload_refuses_bad_bundle_and_swaps_good_one(flat_bundle, hnsw_bundle, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(hnsw_bundle, broken)
    (broken / "user_encoder.onnx").write_bytes(b"garbage")
    old, new = read_bundle(flat_bundle).version, read_bundle(hnsw_bundle).version
    with client_for(flat_bundle, admin_token="s3cret") as c:
        assert c.post("/admin/reload", headers={"authorization": "Bearer wrong"}).status_code == 401
        auth = {"authorization": "Bearer s3cret"}
        refused = c.post("/admin/reload", json={"bundle": str(broken)}, headers=auth)
        assert refused.status_code == 409 and "user_encoder.onnx" in refused.json()["error"]
        assert c.post("/recommend", json={"clicks": ["i1"]}).json()["model_version"] == old
        swapped = c.post("/admin/reload", json={"bundle": str(hnsw_bundle)}, headers=auth)
        assert swapped.status_code == 200 and swapped.json()["model_version"] == new
        assert c.post("/recommend", json={"clicks": ["i1"]}).json()["model_version"] == new
        back = c.post("/admin/rollback", headers=auth)
        assert back.json()["model_version"] == old
        assert "s3cret" not in c.get("/model").text + c.get("/metrics").text


def test_hot_swap_under_concurrent_requests_drops_nothing(flat_bundle, hnsw_bundle):
    versions = {read_bundle(flat_bundle).version, read_bundle(hnsw_bundle).version}
    with client_for(flat_bundle, admin_token="t") as c, steady_load(c, ["i1", "i2"], threads=4) as load:
        for target in (hnsw_bundle, flat_bundle, hnsw_bundle):
            assert c.post("/admin/reload", json={"bundle": str(target)},
                          headers={"authorization": "Bearer t"}).status_code == 200
    assert load.failures == []
    assert load.versions <= versions and len(load.versions) == 2


def test_service_never_imports_torch():
    code = ("import sys, service.main, service.recommender, service.store; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_documents_every_setting():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"`SINE_{name.upper()}`" in readme, name
        assert field.description and field.description in readme, name


def test_a_swap_from_the_store_pointer_updates_metrics_and_settles_the_heap(flat_bundle, hnsw_bundle,
                                                                            tmp_path):
    """Swaps not made through /admin (the watcher polling the store) are seen by /metrics too."""
    import gc
    import shutil
    import time

    from sine.bundle_store import publish

    store = tmp_path / "store"
    store.mkdir()
    for name, source in (("v1", flat_bundle), ("v2", hnsw_bundle)):
        shutil.copytree(source, store / name)
    publish(store, store / "v1")
    new = read_bundle(hnsw_bundle).version
    with client_for(store, reload_poll_seconds=0.2) as c:
        assert gc.get_freeze_count() > 0  # frozen after the first load
        publish(store, store / "v2")
        deadline = time.time() + 30
        while c.post("/recommend", json={"clicks": ["i1"]}).json()["model_version"] != new:
            assert time.time() < deadline, "the watcher never picked up the new pointer"
            time.sleep(0.1)
        assert f'version="{new}"' in c.get("/metrics").text
        assert 'index_type="hnsw"' in c.get("/metrics").text
