"""The neighbour profile against a literal, slow transcription of its definitions."""

import numpy as np
import pytest

from sine.neighbours import neighbour_profile


def _slow_profile(table: np.ndarray, k: int, metric: str) -> tuple[list[float], list[float]]:
    """k-th neighbour similarity and relative contrast, one query at a time, with loops."""
    if metric == "cosine":
        table = table / np.linalg.norm(table, axis=1, keepdims=True)
    kth, contrast = [], []
    for q in range(len(table)):
        sims = sorted((float(table[q] @ table[j]) for j in range(len(table)) if j != q), reverse=True)
        kth.append(sims[k - 1])
        dists = [float(np.linalg.norm(table[q] - table[j])) for j in range(len(table)) if j != q]
        contrast.append(float(np.mean(dists)) / min(dists))
    return kth, contrast


@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_profile_matches_a_slow_transcription(metric):
    table = np.random.default_rng(3).normal(size=(60, 8)).astype(np.float32)
    profile = neighbour_profile(table, ks=(1, 5), queries=60, metric=metric, chunk=7)
    for k in (1, 5):
        kth, contrast = _slow_profile(table.astype(np.float64), k, metric)
        assert profile["kth_similarity"][str(k)]["mean"] == pytest.approx(np.mean(kth), abs=1e-4)
        assert profile["kth_similarity"][str(k)]["p50"] == pytest.approx(np.median(kth), abs=1e-4)
    assert profile["relative_contrast"]["mean"] == pytest.approx(np.mean(contrast), rel=1e-3)
    assert profile["gap_from_first"]["5"]["mean"] >= 0


def test_clustered_table_has_higher_contrast_than_noise():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 16))
    clustered = centres[rng.integers(0, 20, 2000)] + 0.05 * rng.normal(size=(2000, 16))
    noise = rng.normal(size=(2000, 16))
    tight = neighbour_profile(clustered, queries=200)["relative_contrast"]["p50"]
    loose = neighbour_profile(noise, queries=200)["relative_contrast"]["p50"]
    assert tight > 3 * loose
