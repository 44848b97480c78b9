"""The nightly retrain carries the business rules forward: the item attributes (from the
file, then from the live bundle by raw id) and the unavailable-items set (Redis, raw ids)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from deploy.retrain import RetrainSettings, run_retrain
from service.core.config import Settings
from service.main import create_app
from sine import bundle_store
from sine.bundle import read_bundle
from sine.data.synthetic import SyntheticSpec, synthetic_items, synthetic_log

FAST = {"dim": 16, "prototypes": 8, "interests": 2, "epochs": 1, "patience": 1, "batch_size": 128}
AUTH = {"authorization": "Bearer s3cret"}


def test_retrain_carries_attributes_and_availability_forward(tmp_path, redis_url):
    spec = SyntheticSpec(num_users=200, num_items=100, num_groups=10, seed=5)
    base, items = tmp_path / "base.csv", tmp_path / "items.csv"
    synthetic_log(spec).to_csv(base, index=False)
    synthetic_items(spec).to_csv(items, index=False)
    settings = RetrainSettings(data_dir=tmp_path / "data", store=tmp_path / "bundles", base_log=base,
                               redis_url=redis_url, overrides=FAST, index_type="flat", margin=1.0,
                               attributes=items)
    first = run_retrain(settings)
    assert first["status"] == "promoted", first.get("error")
    live = read_bundle(settings.store / first["version"])
    assert live.attributes.names == ["category"]

    app_settings = Settings(bundle=settings.store, redis_url=redis_url, admin_token="s3cret",
                            reload_poll_seconds=0.2)
    with TestClient(create_app(app_settings)) as client:
        clicks = [live.items[i - 1] for i in live.sample_queries()[0] if i > 0]
        body = {"clicks": clicks, "top_n": 10, "filter": {"include": {"category": ["g2"]}}}
        marked = [i["item_id"] for i in client.post("/recommend", json=body).json()["items"]][:3]
        assert len(marked) == 3
        client.post("/admin/items", json={"unavailable": marked}, headers=AUTH)

        settings.attributes = None  # the second night: no file, the live bundle's are carried
        second = run_retrain(settings)
        assert second["status"] == "promoted", second.get("error")
        assert bundle_store.current_version_name(settings.store) == second["version"]
        new = read_bundle(settings.store / second["version"])
        group = dict(zip(synthetic_items(spec)["item_id"], synthetic_items(spec)["category"], strict=True))
        column = new.attributes.columns["category"]
        assert [column.labels(r) for r in range(new.num_items)] == [[group[i]] for i in new.items]

        deadline = time.monotonic() + 10
        while client.get("/model").json()["version"] != new.version and time.monotonic() < deadline:
            time.sleep(0.1)
        answer = client.post("/recommend", json=body).json()
        assert answer["model_version"] == new.version
        got = [i["item_id"] for i in answer["items"]]
        left = {i for i in new.items if group[i] == "g2"} - set(marked) - set(clicks)
        assert len(got) == min(10, len(left)) and set(got) <= left  # every g2 item not marked
        assert not set(got) & set(marked)
