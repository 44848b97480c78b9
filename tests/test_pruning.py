"""The retrain's data directory is pruned by rule (issue 11, defect 4)."""

from __future__ import annotations

import json
from datetime import date, timedelta

from deploy.pruning import PruneRules, prune
from deploy.retrain import RetrainSettings, run_retrain


def make_tree(data, store, today):
    for k in range(15):
        (data / "runs" / f"202611{k:02d}T030000Z").mkdir(parents=True)
    for k in range(8):
        (data / "refused" / f"202611{k:02d}T030000Z" / "run").mkdir(parents=True)
    (data / "reports").mkdir(parents=True)
    for k in range(70):
        (data / "reports" / f"retrain-2026{k:04d}T030000Z.json").write_text("{}")
    for age in (400, 366, 364, 3):
        day = data / "events" / f"day={(today - timedelta(days=age)).isoformat()}"
        day.mkdir(parents=True)
        (day / "events-1_0-2_0.parquet").write_bytes(b"")
    # the oldest run is the one the live bundle was exported from
    (store / "v1").mkdir(parents=True)
    (store / "v1" / "manifest.json").write_text(json.dumps({"run": {"path": str(data / "runs" / "20261100T030000Z")}}))


def test_each_folder_keeps_its_newest_and_the_live_run(tmp_path):
    data, store, today = tmp_path / "data", tmp_path / "store", date(2026, 11, 27)
    make_tree(data, store, today)
    removed = prune(data, store, PruneRules(keep_runs=4, keep_refused=2, keep_reports=10,
                                            event_retention_days=365), today=today)
    runs = sorted(p.name for p in (data / "runs").iterdir())
    assert runs == ["20261100T030000Z", "20261111T030000Z", "20261112T030000Z", "20261113T030000Z",
                    "20261114T030000Z"]
    assert len(removed["runs"]) == 10
    assert sorted(p.name for p in (data / "refused").iterdir()) == ["20261106T030000Z", "20261107T030000Z"]
    assert len(list((data / "reports").iterdir())) == 10
    days = sorted(p.name for p in (data / "events").iterdir())
    assert days == [f"day={(today - timedelta(days=a)).isoformat()}" for a in (364, 3)]


def test_zero_retention_keeps_every_event_and_rules_come_from_the_environment(tmp_path, monkeypatch):
    data, store, today = tmp_path / "data", tmp_path / "store", date(2026, 11, 27)
    make_tree(data, store, today)
    monkeypatch.setenv("SINE_EVENT_RETENTION_DAYS", "0")
    monkeypatch.setenv("SINE_KEEP_RUNS", "1")
    removed = prune(data, store, today=today)
    assert not removed["events"] and len(list((data / "events").iterdir())) == 4
    assert len(list((data / "runs").iterdir())) == 2  # the newest + the live one


def test_every_retrain_prunes_even_a_failed_one(tmp_path, monkeypatch):
    data, store = tmp_path / "data", tmp_path / "store"
    make_tree(data, store, date.today())
    monkeypatch.setenv("SINE_KEEP_REPORTS", "5")
    report = run_retrain(RetrainSettings(data_dir=data, store=store))  # nothing to train on: fails
    assert report["status"] == "failed"
    assert report["pruned"]["runs"] == 4 and report["pruned"]["reports"] == 65  # the live run is kept
    # the report of this run is written after pruning: 5 kept + this one
    assert len(list((data / "reports").iterdir())) == 6
