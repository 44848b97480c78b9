"""Shared fixtures: small logs made in the test session, never files checked in."""

from __future__ import annotations

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
