"""Which model a replica serves: explicit reloads and rollbacks stick, pointers move only
after a load succeeded, refused bundles are refused (4xx, never 500) and remembered, a
replica waits for the first publish, and swaps under load drop nothing. In-process app
(httpx) against a real Redis where Redis is involved; the `sine serve` check runs the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis
from fastapi.testclient import TestClient

from harness.processes import free_port
from service.core.config import Settings
from service.main import create_app
from sine import bundle_store
from sine.bundle import add_to_bundle, read_bundle
from tests.bundles import mismatched_encoder
from tests.load import steady_load

AUTH = {"authorization": "Bearer tok"}
ROOT = Path(__file__).resolve().parents[1]


def client_for(bundle, **settings) -> TestClient:
    return TestClient(create_app(Settings(bundle=bundle, admin_token="tok", **settings)))


def make_store(root: Path, *sources: Path) -> Path:
    """A store with copies of `sources` as v1, v2, ...; the last one published (live)."""
    store = root / "store"
    store.mkdir()
    for number, source in enumerate(sources, start=1):
        shutil.copytree(source, store / f"v{number}")
        bundle_store.publish(store, store / f"v{number}")
    return store


def served(client: TestClient, clicks=("i1",)) -> str:
    response = client.post("/recommend", json={"clicks": list(clicks), "top_n": 5})
    assert response.status_code == 200, response.text
    return response.json()["model_version"]


def wait_for(predicate, seconds: float = 20, message: str = "condition never held") -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, message
        time.sleep(0.05)


# ------------------------------------------------------------- defect 1: reloads stick


def test_an_explicit_reload_is_not_reverted_by_the_watcher(flat_bundle, other_bundle):
    """A single-bundle replica: the explicit reload pins it (the watcher polls every 0.1 s)."""
    new = read_bundle(other_bundle).version
    with client_for(flat_bundle, reload_poll_seconds=0.1) as c:
        swapped = c.post("/admin/reload", json={"bundle": str(other_bundle)}, headers=AUTH)
        assert swapped.status_code == 200 and swapped.json()["model_version"] == new
        time.sleep(1.0)  # ten polls of the pointer, which still names flat_bundle
        assert served(c) == new
        assert "pinned" in c.get("/readyz").json()["checks"]["pointer"]
        # an explicit reload without a bundle drops the pin and follows the pointer again
        back = c.post("/admin/reload", headers=AUTH)
        assert back.status_code == 200 and back.json()["model_version"] == read_bundle(flat_bundle).version


def test_a_pin_ends_when_the_pointer_moves(flat_bundle, other_bundle, hnsw_bundle, tmp_path):
    store = make_store(tmp_path, flat_bundle)
    with client_for(store, reload_poll_seconds=0.1) as c:
        assert c.post("/admin/reload", json={"bundle": str(other_bundle)}, headers=AUTH).status_code == 200
        time.sleep(0.5)
        assert served(c) == read_bundle(other_bundle).version  # outside the store: pinned
        shutil.copytree(hnsw_bundle, store / "v2")
        bundle_store.publish(store, store / "v2")  # the retrain publishes a new version
        wanted = read_bundle(hnsw_bundle).version
        wait_for(lambda: served(c) == wanted, message="the watcher never followed the new pointer")
        assert "pointer" not in c.get("/readyz").json()["checks"]


def test_an_explicit_reload_in_store_mode_moves_the_pointer_and_announces_it(flat_bundle, other_bundle,
                                                                             tmp_path, redis_url):
    store = make_store(tmp_path, flat_bundle)
    shutil.copytree(other_bundle, store / "v2")  # in the store, not published
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    listener = r.pubsub()
    listener.subscribe(bundle_store.reload_channel("sine:"))
    listener.get_message(timeout=1)
    with client_for(store, redis_url=redis_url, reload_poll_seconds=0.1) as c:
        swapped = c.post("/admin/reload", json={"bundle": str(store / "v2")}, headers=AUTH)
        assert swapped.status_code == 200
        assert bundle_store.current_version_name(store) == "v2"
        assert bundle_store.previous_version_name(store) == "v1"
        assert r.get(bundle_store.redis_key("sine:")) == str(store / "v2")
        assert listener.get_message(timeout=2)["data"] == str(store / "v2")  # other replicas follow
        time.sleep(1.0)
        assert served(c) == read_bundle(other_bundle).version
    listener.close()


def test_an_explicit_reload_accepts_the_name_of_a_store_version(flat_bundle, other_bundle, tmp_path):
    """The store's version names (CURRENT, the retrain report) are what operators see."""
    store = make_store(tmp_path, flat_bundle)
    shutil.copytree(other_bundle, store / "v2")
    with client_for(store, reload_poll_seconds=0) as c:
        swapped = c.post("/admin/reload", json={"bundle": "v2"}, headers=AUTH)
        assert swapped.status_code == 200, swapped.text
        assert swapped.json()["model_version"] == read_bundle(other_bundle).version
        assert bundle_store.current_version_name(store) == "v2"
        missing = c.post("/admin/reload", json={"bundle": "v9"}, headers=AUTH)
        assert missing.status_code == 409 and "v9" in missing.json()["error"]


def test_store_rollback_moves_no_pointer_before_the_load_succeeded(flat_bundle, other_bundle, tmp_path):
    """PREVIOUS passes file verification but cannot be loaded: the rollback is refused (409)
    and CURRENT / PREVIOUS stay as they were."""
    broken = mismatched_encoder(flat_bundle, other_bundle, tmp_path / "mismatch")
    store = make_store(tmp_path, broken, flat_bundle)
    live = read_bundle(flat_bundle).version
    with client_for(store, reload_poll_seconds=0.1) as c:
        assert served(c) == live
        refused = c.post("/admin/rollback", headers=AUTH)
        assert refused.status_code == 409 and "encoder" in refused.json()["error"]
        assert bundle_store.current_version_name(store) == "v2"
        assert bundle_store.previous_version_name(store) == "v1"
        time.sleep(0.5)
        assert served(c) == live


def test_store_rollback_is_announced_so_other_replicas_follow(flat_bundle, other_bundle, tmp_path,
                                                              redis_url):
    store = make_store(tmp_path, flat_bundle, other_bundle)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.set(bundle_store.redis_key("sine:"), str(store / "v2"))
    listener = r.pubsub()
    listener.subscribe(bundle_store.reload_channel("sine:"))
    listener.get_message(timeout=1)
    with client_for(store, redis_url=redis_url, reload_poll_seconds=0.1) as c:
        assert served(c) == read_bundle(other_bundle).version
        back = c.post("/admin/rollback", headers=AUTH)
        assert back.status_code == 200 and back.json()["model_version"] == read_bundle(flat_bundle).version
        assert bundle_store.current_version_name(store) == "v1"
        assert r.get(bundle_store.redis_key("sine:")) == str(store / "v1")
        assert listener.get_message(timeout=2)["data"] == str(store / "v1")
        time.sleep(0.5)
        assert served(c) == read_bundle(flat_bundle).version
    listener.close()


def test_a_redis_outage_does_not_swap_the_model(flat_bundle, other_bundle, tmp_path):
    """Redis names v1 (say an explicit reload from a replica whose store is read-only), the
    store's CURRENT file still v2: while Redis is away the replica keeps serving v1."""
    from harness.processes import RedisProcess

    store = make_store(tmp_path, other_bundle, flat_bundle)
    server = RedisProcess(tmp_path)
    server.start()
    try:
        redis.Redis.from_url(server.url).set(bundle_store.redis_key("sine:"), str(store / "v1"))
        with client_for(store, redis_url=server.url, reload_poll_seconds=0.1,
                        redis_timeout_seconds=0.2) as c:
            assert served(c) == read_bundle(other_bundle).version
            server.stop()
            time.sleep(1.5)  # polls that cannot read Redis
            assert served(c) == read_bundle(other_bundle).version
            assert c.get("/readyz").json()["status"] == "degraded"
    finally:
        server.stop()


# ------------------------------------------- defect 3: any load failure is a refusal


def unloadable_bundles(flat_bundle: Path, root: Path) -> dict[str, Path]:
    """Verified bundles (checksums fine) whose index cannot be used by this service."""
    index = read_bundle(flat_bundle).manifest["index"]
    garbage = add_to_bundle(flat_bundle, root / "garbage-index", {"index.faiss": b"not a faiss index"}, {})
    unknown = add_to_bundle(flat_bundle, root / "unknown-type", {}, {"index": {**index, "type": "annoy"}})
    return {"cannot read the faiss index": garbage.path, "unknown index type": unknown.path}


def test_an_unusable_index_is_refused_with_409_not_500(flat_bundle, tmp_path):
    live = read_bundle(flat_bundle).version
    with client_for(flat_bundle) as c:
        for fragment, path in unloadable_bundles(flat_bundle, tmp_path).items():
            response = c.post("/admin/reload", json={"bundle": str(path)}, headers=AUTH)
            assert response.status_code == 409, response.text
            assert fragment in response.json()["error"]
            assert served(c) == live
            assert fragment in c.get("/readyz").json()["checks"]["last_reload"]


def test_an_unusable_index_at_startup_does_not_crash_the_service(flat_bundle, tmp_path):
    for fragment, path in unloadable_bundles(flat_bundle, tmp_path).items():
        with client_for(path) as c:  # starts
            ready = c.get("/readyz")
            assert ready.status_code == 503 and fragment in ready.json()["checks"]["model"]
            assert c.post("/recommend", json={"clicks": ["i1"]}).status_code == 503


# --------------------------------------------------- refused versions are remembered


def test_a_refused_pointer_target_is_not_verified_again_on_every_poll(flat_bundle, other_bundle,
                                                                      tmp_path):
    store = make_store(tmp_path, flat_bundle)
    shutil.copytree(other_bundle, store / "v2")
    bundle_store.publish(store, store / "v2")
    embeddings = store / "v2" / "item_embeddings.npy"
    good_bytes = embeddings.read_bytes()
    damaged = bytearray(good_bytes)
    damaged[-1] ^= 0xFF
    embeddings.write_bytes(bytes(damaged))  # CURRENT now names a corrupted version
    with client_for(store, reload_poll_seconds=0.05) as c:
        holder = c.app.state.holder
        loads = []
        original = holder._load
        holder._load = lambda path: (loads.append(path), original(path))[1]
        assert c.get("/readyz").json()["checks"]["model"].startswith("not loaded")
        time.sleep(1.0)  # twenty polls
        assert loads == []  # refused at start, remembered since
        assert 'sine_model_reloads_total{result="refused"} 1.0' in c.get("/metrics").text
        embeddings.write_bytes(good_bytes)  # repaired in place: verified again and loaded
        wait_for(lambda: c.get("/readyz").status_code == 200, message="the repaired version never loaded")
        assert served(c) == read_bundle(other_bundle).version and len(loads) == 1


# --------------------------------------- defect 9: serving before the first publish


def test_sine_serve_starts_on_an_empty_store_and_loads_the_first_publish(flat_bundle, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    port = free_port()
    log = tmp_path / "serve.log"
    env = {"PATH": "/usr/bin:/bin", "SINE_RELOAD_POLL_SECONDS": "0.2", "HOME": str(tmp_path)}
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "sine_cli", "serve", "--bundle", str(store),
                                    "--port", str(port)], cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def answers(path: str, status: int) -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(url + path, timeout=2).status_code == status
        except httpx.HTTPError:
            return False

    try:
        wait_for(lambda: answers("/healthz", 200), 60, "sine serve did not start")
        ready = httpx.get(url + "/readyz", timeout=2)
        assert ready.status_code == 503 and "nothing published yet" in ready.json()["checks"]["model"]
        shutil.copytree(flat_bundle, store / "v1")
        bundle_store.publish(store, store / "v1")
        wait_for(lambda: answers("/readyz", 200), 30, "the first published model was never loaded")
    finally:
        process.terminate()
        process.wait(timeout=30)


# ---------------------------------------------------------- defect 11: GET /model


def test_model_endpoint_says_what_clients_need_and_no_paths(flat_bundle, hnsw_bundle):
    manifest = read_bundle(hnsw_bundle).manifest
    assert manifest["run"]["path"].startswith("/")  # the manifest has it; /model must not
    with client_for(hnsw_bundle) as c:
        body = c.get("/model").json()
        text = c.get("/model").text
    assert set(body) == {"version", "model", "variant", "dim", "max_len", "num_items", "created_at", "metrics", "index",
                         "attributes", "serving", "encoder"}
    assert body["version"] == manifest["version"] and body["num_items"] == manifest["num_items"]
    assert body["index"]["type"] == "hnsw"
    assert body["index"]["recall"] == {k: round(v, 4) for k, v in manifest["index"]["recall"].items()}
    assert set(body["metrics"]) >= {"valid", "test"}
    assert manifest["run"]["path"] not in text and str(hnsw_bundle) not in text
    assert '"/' not in text  # no absolute path of any kind


# ------------------------------------------ zero failed requests while models swap


def test_watcher_admin_reload_and_a_retrain_publish_swap_different_models_with_no_failed_request(
        flat_bundle, other_bundle, hnsw_bundle, tmp_path, redis_url):
    """Light concurrent load while three different models (two trainings; flat and HNSW
    indexes) are swapped by each path that can swap one: a retrain-style publish (store
    pointer + Redis key + message), `/admin/reload`, the watcher polling the store pointer
    alone, and `/admin/rollback`."""
    store = make_store(tmp_path, flat_bundle)
    shutil.copytree(other_bundle, store / "v2")
    shutil.copytree(hnsw_bundle, store / "v3")
    version = {name: read_bundle(store / name).version for name in ("v1", "v2", "v3")}
    assert read_bundle(store / "v1").dim != read_bundle(store / "v2").dim  # really different models
    clicks = read_bundle(flat_bundle).items[:6]
    with client_for(store, redis_url=redis_url, reload_poll_seconds=0.2) as c, steady_load(c, clicks) as load:
        time.sleep(0.3)
        bundle_store.publish_everywhere(store, store / "v2", redis_url=redis_url)  # the retrain
        wait_for(lambda: served(c, clicks) == version["v2"], message="publish not followed")
        assert c.post("/admin/reload", json={"bundle": str(store / "v3")}, headers=AUTH).status_code == 200
        assert served(c, clicks) == version["v3"]
        time.sleep(0.6)  # the watcher must not undo it
        assert served(c, clicks) == version["v3"]
        redis.Redis.from_url(redis_url).delete(bundle_store.redis_key("sine:"))
        bundle_store.publish(store, store / "v1")  # the file pointer alone: the watcher's poll
        wait_for(lambda: served(c, clicks) == version["v1"], message="the watcher did not follow")
        assert c.post("/admin/rollback", headers=AUTH).json()["model_version"] == version["v3"]
        time.sleep(0.3)
    assert load.failures == []
    assert load.versions == set(version.values())
