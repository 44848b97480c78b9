"""bench/calibrated_catalog.py: the generated catalog keeps the fitted table's norms and clusters."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import calibrated_catalog


def _table(seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, 16)).astype(np.float32)
    items = (centres[rng.integers(0, 50, 2000)] + 0.3 * rng.normal(size=(2000, 16))).astype(np.float32)
    items *= rng.lognormal(0, 0.3, size=(2000, 1)).astype(np.float32)
    users = items[rng.integers(0, 2000, (200, 3))].mean(axis=1)
    return items, users


def test_generated_catalog_matches_the_fitted_norms_and_is_deterministic():
    items, users = _table()
    model = calibrated_catalog.fit(items, users)
    big, queries = calibrated_catalog.generate(model, 8000, 300, seed=0)
    assert big.shape == (8000, 16) and queries.shape == (300, 16) and big.dtype == np.float32
    real = np.quantile(np.linalg.norm(items, axis=1), [0.1, 0.5, 0.9])
    generated = np.quantile(np.linalg.norm(big, axis=1), [0.1, 0.5, 0.9])
    np.testing.assert_allclose(generated, real, rtol=0.02)
    again, _ = calibrated_catalog.generate(model, 8000, 300, seed=0)
    np.testing.assert_array_equal(big, again)


def test_generated_items_cluster_like_the_real_ones():
    """Items sit around their cluster centres at the real tables' scale, not spread at random."""
    items, users = _table()
    model = calibrated_catalog.fit(items, users)
    big, _ = calibrated_catalog.generate(model, 4000, 10, seed=0)
    assert _contrast(big) < 0.5  # nearest neighbour much closer than the average item: clustered
    assert abs(_contrast(big) - _contrast(items)) < 0.15


def _contrast(table: np.ndarray, rows: int = 200) -> float:
    """Median over `rows` items of (distance to the nearest other item) / (mean distance)."""
    d = np.sqrt(((table[:rows, None, :] - table[None, :, :]) ** 2).sum(-1))
    d[np.arange(rows), np.arange(rows)] = np.nan  # not its own neighbour
    return float(np.median(np.nanmin(d, axis=1) / np.nanmean(d, axis=1)))
