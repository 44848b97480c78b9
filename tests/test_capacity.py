"""bench/capacity.py's arithmetic against hand computations (docs/scaling.md rests on it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import capacity


def test_formulas_match_hand_computation():
    # 2,330,066 items x 160 bytes = 372,810,560 bytes = 0.34721 GiB
    assert capacity.index_memory_gib(2_330_066, 160) == pytest.approx(372_810_560 / 1024**3)
    assert capacity.shards(2_330_066, 1_000_000) == 3
    assert capacity.shards(1_000_000, 1_000_000) == 1
    # 5,000 req/s x 5 shards x 0.4 ms = 10 core-seconds per second, at 50% busy: 20 cores
    assert capacity.search_cores(5_000, 5, 0.4, 0.5) == pytest.approx(20.0)
    # one shard: 5,000 x 0.4 ms / 0.5 = 4 cores = one 4-core pod, raised to the 2-replica minimum
    assert capacity.replicas_per_shard(5_000, 0.4, 4, 0.5, 2) == 2
    # 50,000 x 0.4 ms / 0.5 = 40 cores = 10 pods
    assert capacity.replicas_per_shard(50_000, 0.4, 4, 0.5, 2) == 10
    # 5,000 req/s over replicas of 835 req/s at 50%: 5000 / 417.5 = 11.98 -> 12
    assert capacity.api_replicas(5_000, 835, 0.5, 2) == 12
    # 100,150,807 examples at 442 ex/s = 226,585 s = 62.94 core-hours
    assert capacity.cpu_core_hours_per_epoch(100_150_807, 442) == pytest.approx(62.94, abs=0.01)
    # 4e9 examples / (20,000 ex/s x 0.9 x 3600 s) = 61.7 -> 62 GPUs for a 1-hour epoch
    assert capacity.gpus_for_epoch(4e9, 20_000, 0.9, 1.0) == 62
    # 25M items x 128 x 16 bytes = 51.2e9 bytes = 47.68 GiB
    assert capacity.trainer_table_gib(25_000_000, 128, 16) == pytest.approx(47.68, abs=0.01)


def test_history_bytes_interpolate_between_measured_lengths():
    measured = {5: 250.0, 50: 850.0, 200: 2750.0}
    assert capacity.history_bytes_per_user(2.8, measured) == 250.0  # below the shortest: its bytes
    assert capacity.history_bytes_per_user(50, measured) == 850.0
    # 101.4 entries: 850 + (2750 - 850) x (101.4 - 50) / 150 = 1501.07
    assert capacity.history_bytes_per_user(101.4, measured) == pytest.approx(1501.0667, abs=1e-3)
    assert capacity.history_bytes_per_user(27.5, measured) == pytest.approx(250 + 600 * 22.5 / 45)


def test_plan_row_from_measured_inputs():
    measured = {
        "sources": {}, "index_dim": 64, "bytes_per_item": {"flat": 256.0},
        "search": {"ivf": {"p50_ms": 0.5, "recall50": 0.96, "exact_p50_ms": 20.0, "speedup": 40.0}},
        "api_rps_per_replica": 800.0, "cpu_examples_per_second_per_thread": 400.0,
        "gpu_examples_per_second": None, "history_bytes": {5: 250.0, 200: 2750.0}, "history_cap": 200,
        "stream_bytes_per_entry": 50.0,
    }
    rows = capacity.plan(measured)
    tb = rows["Taobao"]
    # 4,162,024 items at 256 bytes/item measured at D=64, planned at D=128: 512 bytes/item
    assert tb["index_gib"]["flat"] == pytest.approx(4_162_024 * 512 / 1024**3)
    assert tb["index_shards"] == 5
    # 5,000 req/s x 5 shards x 0.5 ms / 0.5 = 25 cores
    assert tb["search"]["ivf"]["cores"] == pytest.approx(25.0)
    # 100,150,807 clicks over 9 days, a 1-day interval: 11,127,867 entries x 50 bytes
    assert tb["stream_entries_per_interval"] == pytest.approx(100_150_807 / 9)
    assert tb["stream_gib"] == pytest.approx(100_150_807 / 9 * 50 / 1024**3)
    assert not tb["kafka"]  # 11M entries < 64 GiB x 0.25 / 50 bytes = 343.6M
    ul = rows["ULarge"]
    assert ul["stream_entries_per_interval"] == pytest.approx(4e9 / 7)
    assert ul["kafka"]  # 571M entries a day > 343.6M
    assert ul["gpus_for_target"] is None  # no GPU measurement: left open
    # Books: 22,507,155 / 8,026,324 = 2.80 entries per user -> the 5-entry floor of 250 bytes
    assert rows["Amazon Books"]["history_gib"] == pytest.approx(8_026_324 * 250 / 1024**3)
