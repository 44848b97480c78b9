"""The nightly loop end to end, with processes' worth of real parts and no Docker: a first
model trained and published, the service answering, click events that shift some users'
interests, a retrain that exports them exactly once and is promoted while the service
keeps answering, and a broken candidate the gate refuses."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient

from deploy.events import read_events
from deploy.retrain import REFUSED, RetrainSettings, run_retrain
from service.core.config import Settings
from service.main import create_app
from sine import bundle_store
from sine.bundle import read_bundle
from sine.data.synthetic import SyntheticSpec, synthetic_log

FAST = {"dim": 32, "prototypes": 20, "interests": 4, "epochs": 3, "patience": 2, "batch_size": 128}


def make_world(tmp_path, redis_url, users: int, items: int, overrides: dict):
    frame = synthetic_log(SyntheticSpec(num_users=users, num_items=items, num_groups=10, seed=5))
    base = tmp_path / "base.csv"
    frame.to_csv(base, index=False)
    settings = RetrainSettings(data_dir=tmp_path / "data", store=tmp_path / "bundles", base_log=base,
                               redis_url=redis_url, overrides=overrides, index_type="flat", margin=0.02)
    return frame, settings


@pytest.fixture()
def world(tmp_path, redis_url):
    return make_world(tmp_path, redis_url, 800, 400, FAST)


@pytest.fixture()
def small_world(tmp_path, redis_url):
    return make_world(tmp_path, redis_url, 200, 100, {**FAST, "dim": 16, "prototypes": 8, "epochs": 1})


def shifted_users(frame: pd.DataFrame):
    """Users who mostly click group A, and a group B none of them ever clicked."""
    share = frame.groupby("user_id")["category"].agg(lambda c: c.value_counts(normalize=True).iloc[0])
    top = frame.groupby("user_id")["category"].agg(lambda c: c.value_counts().index[0])
    group_a = top.value_counts().index[0]
    candidates = share[(top == group_a) & (share >= 0.5)].index
    clicked = frame[frame["user_id"].isin(candidates)].groupby("category")["user_id"].nunique()
    group_b = clicked.reindex(frame["category"].unique(), fill_value=0).drop(group_a).idxmin()
    never_b = set(candidates) - set(frame[frame["category"] == group_b]["user_id"])
    users = sorted(never_b)[:150]
    assert len(users) >= 50
    return users, group_a, group_b


def share_of(items: list[str], group_items: set[str]) -> float:
    return sum(i in group_items for i in items) / max(1, len(items))


def test_nightly_cycle_end_to_end(world):
    frame, settings = world
    first = run_retrain(settings)
    assert first["status"] == "promoted", first.get("error")
    first_version = bundle_store.current_version_name(settings.store)

    users, _, group_b = shifted_users(frame)
    items_b = frame[frame["category"] == group_b]["item_id"].value_counts()
    b_set = set(items_b.index)
    a_sequences = {u: frame[frame["user_id"] == u]["item_id"].tolist()[-20:] for u in users}
    rng = np.random.default_rng(0)
    posted = [{"user_id": u, "item_id": str(i), "timestamp": 2_000_000_000 + k}
              for u in users for k, i in enumerate(rng.choice(items_b.index, 10, replace=False,
                                                              p=items_b / items_b.sum()))]

    # the histories the service had recorded for these users before (their base clicks)
    r = redis.Redis.from_url(settings.redis_url)
    for user in users:
        r.rpush(f"sine:history:{user}", *frame[frame["user_id"] == user]["item_id"].tolist())

    app = create_app(Settings(bundle=settings.store, redis_url=settings.redis_url, reload_poll_seconds=0.5))
    with TestClient(app) as client:
        def recommend(clicks):
            r = client.post("/recommend", json={"clicks": clicks, "top_n": 20})
            assert r.status_code == 200
            return r.json()

        def b_share_of_users() -> float:
            shares = []
            for user in users:
                body = client.post("/recommend", json={"user_id": user, "top_n": 20}).json()
                assert body["history"] == "merged"
                shares.append(share_of([i["item_id"] for i in body["items"]], b_set))
            return float(np.mean(shares))

        before = b_share_of_users()
        assert recommend(a_sequences[users[0]])["model_version"] == \
            read_bundle(settings.store / first_version).version
        for start in range(0, len(posted), 500):
            assert client.post("/events", json=posted[start:start + 500]).status_code == 200

        # the retrain runs while the service keeps answering
        outcome = {}
        job = threading.Thread(target=lambda: outcome.update(run_retrain(settings)))
        job.start()
        failures, versions = 0, set()
        while job.is_alive():
            r = client.post("/recommend", json={"clicks": a_sequences[users[1]], "top_n": 20})
            failures += r.status_code != 200
            versions.add(r.json().get("model_version"))
        job.join()
        assert outcome["status"] == "promoted", outcome.get("error")
        new_version = read_bundle(bundle_store.current_bundle_path(settings.store)).version
        for _ in range(50):  # the reload message may still be on its way
            if recommend(a_sequences[users[0]])["model_version"] == new_version:
                break
            time.sleep(0.1)
        assert recommend(a_sequences[users[0]])["model_version"] == new_version
        assert failures == 0

        # the events landed in the event store exactly once, and left the stream
        stored = read_events(settings.data_dir / "events")
        assert len(stored) == len(posted) and stored["stream_id"].is_unique
        assert sorted(zip(stored["user_id"], stored["item_id"], strict=True)) == \
            sorted((e["user_id"], e["item_id"]) for e in posted)
        assert redis.Redis.from_url(settings.redis_url).xlen("sine:events") == 0
        assert outcome["steps"]["export_events"]["events"] == len(posted)

        # those users' recommendations moved toward their new interest
        after = b_share_of_users()
        assert before < 0.05 and after > before + 0.3, (before, after)
        assert outcome["steps"]["train"]["events"] == len(posted)

        # a broken candidate (labels shuffled, one epoch) is refused; the live model stays
        def shuffle_labels(f: pd.DataFrame) -> pd.DataFrame:
            f = f.copy()
            f["item_id"] = np.random.default_rng(1).permutation(f["item_id"].to_numpy())
            return f

        settings.overrides = {**FAST, "epochs": 1}
        refused = run_retrain(settings, transform=shuffle_labels)
        assert refused["status"] == "refused" and refused["exit_code"] == REFUSED
        assert "candidate ndcg@10" in refused["reason"]
        live = read_bundle(bundle_store.current_bundle_path(settings.store))
        assert live.version == new_version
        assert recommend(a_sequences[users[0]])["model_version"] == new_version
        aside = settings.data_dir / "refused" / refused["started_at"]
        kept = json.loads((aside / "refused.json").read_text())
        assert kept["promote"] is False
        with open(refused["report_path"]) as handle:
            report = json.load(handle)
        assert report["steps"]["gate"]["live_valid"]["ndcg@10"] > report["steps"]["gate"]["candidate"]
        assert (aside / "bundle" / "manifest.json").is_file()
        assert not [p for p in settings.store.iterdir() if p.name.startswith(".candidate")]


def test_a_failing_retrain_leaves_the_live_model_untouched(small_world, monkeypatch):
    _, settings = small_world
    assert run_retrain(settings)["status"] == "promoted"
    live = bundle_store.current_version_name(settings.store)
    import index_builder.build

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(index_builder.build, "build_for_bundle", broken)
    report = run_retrain(settings)
    assert report["status"] == "failed" and report["exit_code"] == 1 and "disk full" in report["error"]
    assert bundle_store.current_version_name(settings.store) == live
    assert report["live_version_after"] == live


def test_only_one_retrain_at_a_time(small_world):
    from deploy.retrain import LOCKED, exclusive

    _, settings = small_world
    with exclusive(settings.data_dir) as acquired:
        assert acquired
        assert run_retrain(settings)["exit_code"] == LOCKED


def test_a_warm_start_trains_on_the_recent_window_from_the_live_run(tmp_path):
    """The live run's weights as epoch 0, each user's last clicks only, and the gate decides."""
    import dataclasses

    from trainer.run import METRICS

    _, settings = make_world(tmp_path, None, 200, 100, {**FAST, "dim": 16, "prototypes": 8, "epochs": 1})
    first = run_retrain(settings)
    assert first["status"] == "promoted"
    cold_examples = first["steps"]["train"]["train_examples"]
    # no overrides: the live model's options, with the warm start's epochs and patience
    warm = run_retrain(dataclasses.replace(settings, warm_start=True, warm_recent=2, warm_epochs=2,
                                           overrides={}))
    train = warm["steps"]["train"]
    assert warm["status"] in ("promoted", "refused"), warm.get("error")
    assert train["warm_start"] == first["steps"]["train"]["run"]
    assert train["train_examples"] < cold_examples
    run_dir = Path(train["run"]) if Path(train["run"]).exists() else Path(warm["kept_aside"]) / "run"
    history = json.loads((run_dir / METRICS).read_text())["history"]
    assert history[0]["epoch"] == 0 and history[0]["loss"] is None  # the live weights, scored
    assert 1 <= len(history) - 1 <= 2  # its own epochs
