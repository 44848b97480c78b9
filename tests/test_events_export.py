"""Redis stream -> Parquet event store: exactly once, whatever point the export dies at."""

from __future__ import annotations

import pytest
import redis

from deploy import events as events_module
from deploy.events import export_events, last_exported_id, read_events

STREAM = "sine:events"


def post(client, n, start=0):
    for k in range(start, start + n):
        client.xadd(STREAM, {"user_id": f"u{k % 7}", "item_id": f"i{k}", "timestamp": str(1000.0 + k)})


@pytest.fixture()
def client(redis_url):
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def test_export_moves_every_event_once_and_trims_the_stream(client, tmp_path):
    post(client, 120)
    result = export_events(client, STREAM, tmp_path, batch=50)
    assert result.events == 120 and client.xlen(STREAM) == 0
    frame = read_events(tmp_path)
    assert sorted(frame["item_id"]) == sorted(f"i{k}" for k in range(120))
    assert frame["stream_id"].is_unique
    assert frame["timestamp"].min() == 1000.0
    # a second run with nothing new writes nothing
    again = export_events(client, STREAM, tmp_path)
    assert again.events == 0 and len(read_events(tmp_path)) == 120
    post(client, 30, start=120)
    export_events(client, STREAM, tmp_path)
    assert len(read_events(tmp_path)) == 150 and read_events(tmp_path)["stream_id"].is_unique


def test_killed_while_writing_then_rerun_loses_and_duplicates_nothing(client, tmp_path, monkeypatch):
    post(client, 200)
    real_write = events_module._write_part
    calls = {"n": 0}

    def dies_on_third_file(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(events_module, "_write_part", dies_on_third_file)
    with pytest.raises(KeyboardInterrupt):
        export_events(client, STREAM, tmp_path, batch=40)
    assert client.xlen(STREAM) == 200  # nothing acknowledged before it is on disk
    assert len(read_events(tmp_path)) == 80
    assert not list(tmp_path.rglob("*.tmp"))  # no half-written file left visible
    monkeypatch.setattr(events_module, "_write_part", real_write)
    export_events(client, STREAM, tmp_path, batch=40)
    frame = read_events(tmp_path)
    assert len(frame) == 200 and frame["stream_id"].is_unique and client.xlen(STREAM) == 0


def test_killed_between_write_and_trim_then_rerun(client, tmp_path, monkeypatch):
    post(client, 50)

    def no_trim(*args, **kwargs):
        raise ConnectionError("redis went away before XTRIM")

    monkeypatch.setattr(client, "xtrim", no_trim)
    with pytest.raises(ConnectionError):
        export_events(client, STREAM, tmp_path)
    assert len(read_events(tmp_path)) == 50 and client.xlen(STREAM) == 50
    monkeypatch.undo()
    post(client, 10, start=50)
    result = export_events(client, STREAM, tmp_path)
    assert result.events == 10  # only the new ones
    frame = read_events(tmp_path)
    assert len(frame) == 60 and frame["stream_id"].is_unique and client.xlen(STREAM) == 0


def test_last_exported_id_comes_from_the_file_names(tmp_path, client):
    assert last_exported_id(tmp_path) is None
    post(client, 3)
    result = export_events(client, STREAM, tmp_path)
    assert last_exported_id(tmp_path) == tuple(int(x) for x in result.last_id.split("-"))


def test_entries_dropped_by_the_stream_cap_before_export_are_reported(client, tmp_path):
    post(client, 50)
    first = export_events(client, STREAM, tmp_path)
    assert first.lost == 0  # the export's own trim is not a loss
    for k in range(50, 300):  # the service's XADD MAXLEN, here exact, drops unexported entries
        client.xadd(STREAM, {"user_id": "u", "item_id": f"i{k}", "timestamp": str(1000.0 + k)},
                    maxlen=100, approximate=False)
    second = export_events(client, STREAM, tmp_path)
    assert second.events == 100 and second.lost == 150
    post(client, 10, start=300)
    assert export_events(client, STREAM, tmp_path).lost == 0
