"""Shared fixtures: small logs made in the test session, never files checked in."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from sine.data.synthetic import SyntheticSpec, synthetic_log

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def synthetic_frame() -> pd.DataFrame:
    """A small planted-interest log (600 users, 300 items, 12 groups)."""
    return synthetic_log(SyntheticSpec(num_users=600, num_items=300, num_groups=12, seed=3))


@pytest.fixture(scope="session")
def synthetic_csv(tmp_path_factory, synthetic_frame) -> Path:
    path = tmp_path_factory.mktemp("logs") / "synthetic.csv"
    synthetic_frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def beauty_slice(tmp_path_factory) -> Path:
    """The first 1,500 users of the real Beauty log (read from ../shared/data, not copied)."""
    source = SHARED_DATA / "beauty.csv.gz"
    if not source.exists():
        pytest.skip(f"{source} not available")
    frame = pd.read_csv(source, dtype=str)
    users = frame["user_id"].drop_duplicates().iloc[:1500]
    path = tmp_path_factory.mktemp("real") / "beauty_slice.csv"
    frame[frame["user_id"].isin(users)].to_csv(path, index=False)
    return path


REDIS_HELP = (
    "the service tests need Redis: install it (Debian/Ubuntu: apt install redis-server; macOS: "
    "brew install redis) so the tests can start a throwaway server, or point SINE_TEST_REDIS_URL "
    "at a running one"
)


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def redis_server_url():
    """A Redis to test against: SINE_TEST_REDIS_URL, the local one, or a throwaway server.

    Tests use database 15 (SINE_TEST_REDIS_DB) and flush it, never database 0.
    """
    db = os.environ.get("SINE_TEST_REDIS_DB", "15")
    base = os.environ.get("SINE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
    if _redis_answers(f"{base}/{db}"):
        yield f"{base}/{db}"
        return
    if shutil.which("redis-server") is None:
        pytest.fail(REDIS_HELP, pytrace=False)
    from harness.processes import RedisProcess

    workdir = Path(tempfile.mkdtemp(prefix="sine-test-redis-"))
    server = RedisProcess(workdir, persist=False)
    server.start()
    yield f"redis://127.0.0.1:{server.port}/{db}"
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture()
def redis_url(redis_server_url):
    """A clean test database for one test."""
    import redis

    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    yield redis_server_url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, synthetic_csv) -> Path:
    """A SINE run trained briefly on the synthetic log (shared by the service tests)."""
    from trainer.config import TrainConfig
    from trainer.run import train_run

    out = tmp_path_factory.mktemp("trained") / "run"
    train_run(synthetic_csv, out, TrainConfig(model="sine", dim=32, prototypes=24, interests=4,
                                              batch_size=128, epochs=3, seed=0))
    return out


@pytest.fixture(scope="session")
def flat_bundle(tmp_path_factory, trained_run) -> Path:
    """The trained run exported, with an exact (flat) index."""
    from index_builder.build import build_for_bundle
    from trainer.export import export_bundle

    path = tmp_path_factory.mktemp("bundles") / "flat"
    export_bundle(trained_run, path)
    build_for_bundle(path, kind="flat")
    return path


@pytest.fixture(scope="session")
def hnsw_bundle(tmp_path_factory, flat_bundle) -> Path:
    from index_builder.build import build_for_bundle

    path = tmp_path_factory.mktemp("bundles") / "hnsw"
    build_for_bundle(flat_bundle, kind="hnsw", out=path)
    return path


@pytest.fixture(scope="session")
def other_bundle(tmp_path_factory, synthetic_csv) -> Path:
    """A different model on the same catalog (another seed and width): hot-swap tests swap
    models that really differ, not byte-identical twins of one export."""
    from index_builder.build import build_for_bundle
    from trainer.config import TrainConfig
    from trainer.export import export_bundle
    from trainer.run import train_run

    run = tmp_path_factory.mktemp("trained-other") / "run"
    train_run(synthetic_csv, run, TrainConfig(model="sine", dim=16, prototypes=12, interests=2,
                                              batch_size=128, epochs=1, seed=7))
    path = tmp_path_factory.mktemp("bundles") / "other"
    export_bundle(run, path)
    build_for_bundle(path, kind="flat")
    return path


@pytest.fixture(scope="session")
def attributes_csv(tmp_path_factory) -> Path:
    """Item attributes of `synthetic_frame`'s catalog: the planted category, a multi-valued
    tag, a label on 3 items only (``rare``: 1% of the catalog) and a stock flag (6 items
    ``available=false``)."""
    from sine.data.synthetic import synthetic_items

    items = synthetic_items(SyntheticSpec(num_users=600, num_items=300, num_groups=12, seed=3))
    number = items["item_id"].str[1:].astype(int)
    items["tag"] = [f"t{n % 5}|t{5 + n % 7}" for n in number]
    items["rare"] = ["yes" if n % 100 == 7 else "" for n in number]
    items["available"] = ["0" if n % 50 == 25 else "1" for n in number]
    path = tmp_path_factory.mktemp("attributes") / "items.csv"
    items.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def attributed_bundle(tmp_path_factory, trained_run, attributes_csv) -> Path:
    """The trained run exported with item attributes, exact (flat) index."""
    from index_builder.build import build_for_bundle
    from trainer.export import export_bundle

    path = tmp_path_factory.mktemp("bundles") / "attributed"
    export_bundle(trained_run, path, attributes=attributes_csv)
    build_for_bundle(path, kind="flat")
    return path
