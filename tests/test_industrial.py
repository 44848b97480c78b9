"""The industrial-shaped generator: its planted Zipf slope, sessions and clusters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sine.data.industrial import IndustrialSpec, catalog, chunks, item_clusters, write_parquet_dataset
from sine.data.logs import ITEM, TIME, USER, read_log

SPEC = IndustrialSpec(num_items=20_000, num_clicks=300_000, num_clusters=200, zipf=0.9,
                      max_interests=4, stay=0.85, seed=7)


@pytest.fixture(scope="module")
def clicks():
    parts = list(chunks(SPEC, users_per_chunk=4_000))
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def test_exact_click_count_and_determinism(clicks):
    assert len(clicks["user"]) == SPEC.num_clicks
    again = list(chunks(SPEC, users_per_chunk=4_000))
    assert np.array_equal(np.concatenate([p["item"] for p in again]), clicks["item"])


def test_item_popularity_follows_the_zipf_slope(clicks):
    counts = np.bincount(clicks["item"], minlength=SPEC.num_items)
    ranks = np.arange(1, 1001)  # the planted rank of item r is r + 1; enough clicks up to 1000
    slope = np.polyfit(np.log(ranks), np.log(np.maximum(counts[:1000], 1)), 1)[0]
    assert slope == pytest.approx(-SPEC.zipf, abs=0.08)


def test_sessions_and_interests(clicks):
    users, times, clusters = clicks["user"], clicks["time"], clicks["cluster"]
    same_user = users[1:] == users[:-1]
    assert np.all(np.diff(times)[same_user] >= 0)  # each user's clicks in time order
    gaps = np.diff(times)[same_user]
    # two kinds of gaps: within a session (about a minute) and between (days)
    within = (1 - 1 / SPEC.mean_session_length) / (1 - 1 / SPEC.mean_user_length)
    assert np.mean(gaps < 3_600) == pytest.approx(within, abs=0.03)
    # a user's clicks come from at most max_interests clusters, and mostly stay in one
    per_user = pd.DataFrame({"u": users, "c": clusters}).groupby("u")["c"].nunique()
    assert per_user.max() <= SPEC.max_interests
    short = gaps < 3_600
    same_cluster = (clusters[1:] == clusters[:-1])[same_user][short]
    assert same_cluster.mean() > SPEC.stay**2  # both clicks on the session's interest


def test_clusters_are_recoverable_from_co_clicks(clicks):
    """Items clicked in a row share a cluster far above chance (what a model learns from)."""
    cat = catalog(SPEC)
    same_user = clicks["user"][1:] == clicks["user"][:-1]
    a, b = clicks["item"][:-1][same_user], clicks["item"][1:][same_user]
    share = cat.cluster_weight / cat.cluster_weight.sum()
    chance = float((share**2).sum())
    assert np.mean(cat.cluster[a] == cat.cluster[b]) > 10 * chance
    ids, groups = item_clusters(SPEC)
    assert ids[5] == "i5" and np.array_equal(groups, cat.cluster)


def test_parquet_dataset_is_a_readable_partitioned_log(tmp_path):
    spec = IndustrialSpec(num_items=500, num_clicks=5_000, num_clusters=10, seed=1, days=3)
    written = write_parquet_dataset(spec, tmp_path / "log", users_per_chunk=100, progress=False)
    assert written == 5_000
    assert all(p.name.startswith("day=") for p in (tmp_path / "log").iterdir())
    frame = read_log(tmp_path / "log")
    assert len(frame) == 5_000 and {USER, ITEM, TIME, "category"} <= set(frame.columns)
    assert frame[ITEM].str.startswith("i").all()
    item = frame[ITEM].str[1:].astype(int).to_numpy()
    assert np.array_equal(("c" + pd.Series(catalog(spec).cluster[item]).astype(str)).to_numpy(),
                          frame["category"].to_numpy())


def test_sine_synth_industrial_writes_a_dataset_and_refuses_a_used_directory(tmp_path):
    from typer.testing import CliRunner

    from sine_cli.app import app

    runner = CliRunner()
    args = ["synth", "--shape", "industrial", "--items", "300", "--groups", "6", "--clicks", "2000",
            "--out", str(tmp_path / "log")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + result.stderr
    assert len(read_log(tmp_path / "log")) == 2000
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "not empty" in again.stderr
    bad = runner.invoke(app, ["synth", "--shape", "huge", "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code == 2 and "--shape must be demo or industrial" in bad.stderr


def test_sine_synth_industrial_writes_the_item_clusters_as_an_attribute_file(tmp_path):
    """Beside the dataset, in the format `--attributes` reads: every item's planted cluster,
    the log's `category` of its clicks, usable as SINE-cate's prototypes."""
    from typer.testing import CliRunner

    from sine.attributes import read_attribute_file
    from sine_cli.app import app
    from trainer.config import TrainConfig
    from trainer.run import category_pairs

    result = CliRunner().invoke(app, ["synth", "--shape", "industrial", "--items", "300", "--groups", "6",
                                      "--clicks", "2000", "--seed", "4", "--out", str(tmp_path / "log")])
    assert result.exit_code == 0, result.output + result.stderr
    path = tmp_path / "log.items.csv"
    assert f"every item's cluster to {path}" in result.stdout
    table = read_attribute_file(path)
    ids, clusters = item_clusters(IndustrialSpec(num_items=300, num_clicks=2000, num_clusters=6, seed=4))
    assert table["category"] == {item: (f"c{c}",) for item, c in zip(ids, clusters, strict=True)}
    clicked = read_log(tmp_path / "log")
    assert all(table["category"][i] == (c,) for i, c in zip(clicked[ITEM], clicked["category"], strict=True))
    config = TrainConfig(interests=4, prototypes_from="category", attributes=str(path))
    _, _, names = category_pairs(config, sorted(set(clicked[ITEM])))
    assert names == [f"c{c}" for c in range(6)]


def test_sine_synth_industrial_sizes_its_default_clusters_to_a_small_catalog(tmp_path):
    """2,000 clusters by default would refuse (or make single-item clusters of) a small
    catalog; the default shrinks to ~50 items a cluster, and a bad --groups names itself."""
    from typer.testing import CliRunner

    from sine_cli.app import app

    runner = CliRunner()
    out = tmp_path / "small"
    result = runner.invoke(app, ["synth", "--shape", "industrial", "--items", "500", "--clicks", "3000",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    assert "in 10 clusters" in result.output
    bad = runner.invoke(app, ["synth", "--shape", "industrial", "--items", "500", "--groups", "501",
                              "--clicks", "3000", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "--groups 501 must be between 1 and --items (500)" in bad.stderr
