"""Stored history + request clicks, and event times on the base log's scale (issue 11, defect 7)."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from deploy.events import _write_part
from deploy.retrain import RetrainSettings, load_frame
from service.core.config import Settings
from service.core.matching import merge_history
from service.main import create_app
from sine.bundle import read_bundle
from sine.data.logs import seconds_scale


@pytest.mark.parametrize(("stored", "clicks", "merged"), [
    ("abcd", "cde", "abcde"),      # the client resends its last clicks and adds one
    ("ab", "ab", "ab"),            # the client resends everything it posted
    ("abc", "abcd", "abcd"),
    ("ab", "ca", "abca"),          # no suffix/prefix overlap: new clicks, a repeat kept
    ("ab", "ba", "aba"),           # overlap "b"
    ("aba", "abx", "ababx"),       # "ab" is not a suffix of "aba": the overlap is "a"
    ("abab", "abx", "ababx"),      # the longest overlap wins
    ("", "ab", "ab"),
    ("ab", "", "ab"),
    ("aa", "aaa", "aaa"),
])
def test_merge_rule(stored, clicks, merged):
    assert "".join(merge_history(list(stored), list(clicks))) == merged


def test_clicks_both_posted_and_sent_are_encoded_once(flat_bundle):
    items = read_bundle(flat_bundle).items
    a, b, c, d = (items[k] for k in (3, 10, 17, 24))
    with TestClient(create_app(Settings(bundle=flat_bundle))) as client:
        assert client.post("/events", json=[{"user_id": "u", "item_id": i} for i in (a, b, c)]).status_code == 200
        merged = client.post("/recommend", json={"user_id": "u", "clicks": [b, c, d], "top_n": 10}).json()
        alone = client.post("/recommend", json={"clicks": [a, b, c, d], "top_n": 10}).json()
    assert merged["history"] == "merged"
    assert merged["items"] == alone["items"]


def test_event_timestamps_in_milliseconds_are_refused_with_a_message(flat_bundle):
    with TestClient(create_app(Settings(bundle=flat_bundle))) as client:
        response = client.post("/events", json={"user_id": "u", "item_id": "i", "timestamp": 1764201600123})
    assert response.status_code == 422 and "timestamp" in response.json()["error"]


@pytest.mark.parametrize(("median", "scale"), [(1.7e9, 1.0), (1.7e12, 1e3), (1.7e15, 1e6), (1.7e18, 1e9),
                                               (12.0, 1.0)])
def test_seconds_scale_from_magnitude(median, scale):
    assert seconds_scale(pd.Series([median * 0.99, median, median * 1.01])) == scale


def test_new_events_sort_after_a_millisecond_base_log(tmp_path):
    base = tmp_path / "base.csv"
    # every click of the base log is in milliseconds, in 2024
    pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["i1", "i2", "i3"],
                  "timestamp": [1_704_067_200_000, 1_704_067_260_000, 1_704_067_200_000]}).to_csv(base, index=False)
    events_dir = tmp_path / "data" / "events"
    # the service records a click in Unix seconds, in 2026: later than every base click
    _write_part(events_dir, [("1764201600000-0", {"user_id": "u1", "item_id": "new", "timestamp": "1764201600.0"})])
    settings = RetrainSettings(data_dir=tmp_path / "data", store=tmp_path / "store", base_log=base)
    frame, events = load_frame(settings)
    assert events == 1
    assert list(frame[frame.user_id == "u1"].item_id) == ["i1", "i2", "new"]
