"""Work that can grow is bounded, and /recommend/batch stays off the event loop (issue 11,
defects 4 and 5): admission control on the coalescing queue, capped in-process store and
Redis stream, batch computation in the worker thread, histories in one round trip."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
from fastapi.testclient import TestClient

from service.core.config import Settings
from service.main import create_app
from service.recommender import LoadedModel
from service.store import MemoryStore
from sine.bundle import read_bundle


def sample(app, name: str, **labels: str) -> float:
    return app.state.metrics.registry.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def running(app):
    """The app with its lifespan (model loaded), and an async client for concurrent calls."""
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport,
                                                                     base_url="http://sine") as c:
        yield c


def some_clicks(bundle_path, count=3) -> list[str]:
    bundle = read_bundle(bundle_path)
    return list(bundle.items[:count])


def test_a_full_queue_refuses_with_503_retry_after_and_a_metric(flat_bundle, monkeypatch):
    slow = LoadedModel.recommend

    def recommend(self, queries):
        time.sleep(0.2)  # the worker is busy: requests pile up behind it
        return slow(self, queries)

    monkeypatch.setattr(LoadedModel, "recommend", recommend)
    app = create_app(Settings(bundle=flat_bundle, max_waiting=4, max_coalesced=2))
    clicks = some_clicks(flat_bundle)

    async def main():
        async with running(app) as c:
            return await asyncio.gather(*(c.post("/recommend", json={"clicks": clicks, "top_n": 5})
                                          for _ in range(24)))

    responses = asyncio.run(main())
    codes = [r.status_code for r in responses]
    refused = [r for r in responses if r.status_code == 503]
    assert set(codes) == {200, 503}, codes
    assert all(r.headers.get("retry-after") == "1" and "SINE_MAX_WAITING" in r.json()["error"]
               for r in refused)
    assert sample(app, "sine_rejected_total", reason="overloaded") == len(refused)
    # a refusal is the service working as designed: not an error, not a warning per request
    assert sample(app, "sine_errors_total", endpoint="/recommend") == 0


def test_batch_is_computed_off_the_event_loop(flat_bundle, monkeypatch):
    threads = []
    plain = LoadedModel.recommend

    def recommend(self, queries):
        try:
            asyncio.get_running_loop()
            threads.append("event loop")
        except RuntimeError:
            threads.append("worker")
        return plain(self, queries)

    monkeypatch.setattr(LoadedModel, "recommend", recommend)
    clicks = some_clicks(flat_bundle)
    with TestClient(create_app(Settings(bundle=flat_bundle))) as c:
        threads.clear()  # the smoke test at load does not count
        response = c.post("/recommend/batch", json={"requests": [{"clicks": clicks}] * 5})
    assert response.status_code == 200 and len(response.json()["results"]) == 5
    assert threads == ["worker"]


def test_batch_reads_every_history_in_one_round_trip(flat_bundle, redis_url):
    clicks = some_clicks(flat_bundle, 6)
    with TestClient(create_app(Settings(bundle=flat_bundle, redis_url=redis_url))) as c:
        events = [{"user_id": f"u{k}", "item_id": clicks[k]} for k in range(5)]
        assert c.post("/events", json=events).status_code == 200
        client = c.app.state.store.client
        single_commands = []
        plain = client.execute_command

        async def counting(*args, **kwargs):
            single_commands.append(args[0])
            return await plain(*args, **kwargs)

        client.execute_command = counting  # pipelines do not go through it
        body = {"requests": [{"user_id": f"u{k}", "top_n": 3} for k in range(5)] + [{"user_id": "nobody"}]}
        response = c.post("/recommend/batch", json=body)
        client.execute_command = plain
    results = response.json()["results"]
    assert [r["history"] for r in results] == ["merged"] * 5 + ["empty"]
    assert not single_commands, f"one command per history: {single_commands}"


def test_the_in_process_store_keeps_bounded_users_and_events():
    from service.store import Click

    store = MemoryStore(history_cap=3, max_users=10, max_events=50)

    async def main():
        for k in range(100):
            await store.record([Click(f"u{k % 20}", f"i{k}", float(k)), Click("hot", f"i{k}", float(k))])

    asyncio.run(main())
    assert len(store.events) == 50 and store.events[-1][1].item_id == "i99"
    assert len(store.users) == 10 and "hot" in store.users  # the busiest user is kept
    assert all(len(h) <= 3 for h in store.users.values())


def test_the_redis_event_stream_is_capped(flat_bundle, redis_url):
    import redis

    with TestClient(create_app(Settings(bundle=flat_bundle, redis_url=redis_url,
                                        event_stream_maxlen=1000))) as c:
        for batch in range(6):
            events = [{"user_id": f"u{k % 50}", "item_id": f"i{batch}-{k}"} for k in range(1000)]
            assert c.post("/events", json=events).status_code == 200
        gauge = sample(c.app, "sine_event_stream_entries")
    length = redis.Redis.from_url(redis_url).xlen("sine:events")
    # MAXLEN ~ trims whole stream nodes (100 entries by default): about the cap, never 6,000
    assert 1000 <= length < 1500
    assert gauge == length


def test_sine_serve_passes_the_concurrency_limit_to_uvicorn(monkeypatch, flat_bundle):
    import uvicorn
    from typer.testing import CliRunner

    from sine_cli.app import app as cli

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    monkeypatch.setenv("SINE_LIMIT_CONCURRENCY", "17")
    result = CliRunner().invoke(cli, ["serve", "--bundle", str(flat_bundle)])
    assert result.exit_code == 0, result.output
    assert seen["limit_concurrency"] == 17
