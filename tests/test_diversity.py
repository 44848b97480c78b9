"""Category diversity (sine.diversity) against literal transcriptions of its rules."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sine import attributes, diversity


def column_of(labels: list[tuple[str, ...]]) -> attributes.Column:
    items = [str(n) for n in range(len(labels))]
    table = {"category": {i: ls for i, ls in zip(items, labels, strict=True) if ls}}
    return attributes.align(table, items).columns["category"]


def g(a: set, b: set) -> float:
    """The module doc's g(i, j): Jaccard distance, 1 when either item has no label."""
    if not a or not b:
        return 1.0
    return 1.0 - len(a & b) / len(a | b)


def literal_comirec(labels, scores, top_n, lam):
    """Cen et al. 2020, Algorithm 1: S = {}; repeat N times: add argmax_{i not in S}
    f(u, i) + lambda * sum_{j in S} g(i, j) (the first of equals)."""
    chosen = []
    for _ in range(min(top_n, len(scores))):
        best, best_value = None, -np.inf
        for i in range(len(scores)):
            if i in chosen:
                continue
            value = scores[i] + lam * sum(g(set(labels[i]), set(labels[j])) for j in chosen)
            if value > best_value:
                best, best_value = i, value
        chosen.append(best)
    return chosen


def random_labels(rng, count, multi):
    pool = [f"c{k}" for k in range(5)]
    out = []
    for _ in range(count):
        size = int(rng.integers(0, 3)) if multi else 1
        out.append(tuple(rng.choice(pool, size, replace=False)) if size else ())
    return out


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("lam", [0.0, 0.05, 0.3, 2.0])
def test_penalty_is_comirecs_greedy_rule(multi, lam):
    rng = np.random.default_rng(int(lam * 100) + multi)
    for _ in range(5):
        labels = random_labels(rng, 40, multi)
        scores = np.sort(rng.normal(size=40))[::-1].tolist()
        got = diversity.diversify(column_of(labels), list(range(40)), scores, 10, penalty=lam)
        assert got == literal_comirec(labels, scores, 10, lam)


def test_zero_penalty_is_the_ranking_and_a_large_one_spreads_categories():
    labels = [("a",)] * 6 + [("b",)] * 2 + [("c",)]
    scores = [1.0 - 0.01 * k for k in range(9)]
    rows = list(range(9))
    assert diversity.diversify(column_of(labels), rows, scores, 4, penalty=0.0) == [0, 1, 2, 3]
    spread = diversity.diversify(column_of(labels), rows, scores, 3, penalty=10.0)
    assert {labels[p][0] for p in spread} == {"a", "b", "c"}


@pytest.mark.parametrize("cap", [1, 2, 3])
def test_cap_keeps_the_ranking_with_at_most_c_per_label(cap):
    rng = np.random.default_rng(cap)
    labels = random_labels(rng, 60, multi=True)
    chosen = diversity.diversify(column_of(labels), list(range(60)), [0.0] * 60, 15, cap=cap)
    # literal: walk down, take unless a label is full
    counts, expected = {}, []
    for position, ls in enumerate(labels):
        if any(counts.get(label, 0) >= cap for label in ls):
            continue
        for label in ls:
            counts[label] = counts.get(label, 0) + 1
        expected.append(position)
        if len(expected) == 15:
            break
    assert chosen == expected
    for label in {label for ls in labels for label in ls}:
        assert sum(label in labels[p] for p in chosen) <= cap


def test_intra_list_distance_is_the_mean_pairwise_g():
    rng = np.random.default_rng(3)
    labels = random_labels(rng, 12, multi=True)
    rows = list(range(12))
    expected = np.mean([g(set(labels[i]), set(labels[j])) for i, j in itertools.combinations(rows, 2)])
    assert diversity.intra_list_distance(column_of(labels), rows) == pytest.approx(expected)
    assert diversity.intra_list_distance(column_of([("a",), ("a",)]), [0, 1]) == 0.0
