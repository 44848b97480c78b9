from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sine.data.split import EvalSet
from sine.metrics import ranking_metrics
from trainer.evaluate import rank_targets


def test_hit_rate_and_ndcg_by_hand():
    m = ranking_metrics(np.array([1, 2, 11, 60]))
    assert m["hr@10"] == 0.5 and m["hr@20"] == 0.75 and m["hr@50"] == 0.75
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 4)
    assert m["ndcg@20"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(12)) / 4)


def test_ranks_must_start_at_one():
    with pytest.raises(ValueError):
        ranking_metrics(np.array([0, 1]))


def make_set(targets, histories):
    offsets = np.concatenate([[0], np.cumsum([len(h) for h in histories])])
    return EvalSet(users=np.arange(len(targets)), inputs=np.ones((len(targets), 2), dtype=np.int64),
                   targets=np.array(targets), history=np.array([i for h in histories for i in h],
                                                                dtype=np.int64),
                   history_offsets=offsets)


def fixed_scorer(scores):
    table = torch.tensor(scores, dtype=torch.float32)
    return lambda clicks: table[: len(clicks)]


def test_history_is_removed_but_never_the_target():
    # items 1..5; the target (3) scores below items 1 and 2, which the user clicked before
    scores = [[99.0, 5.0, 4.0, 3.0, 2.0, 1.0]]
    evalset = make_set([3], [[1, 2, 3]])  # a re-click: 3 is in the history too
    assert rank_targets(fixed_scorer(scores), evalset).tolist() == [1]
    assert rank_targets(fixed_scorer(scores), evalset, keep_history=True).tolist() == [3]


def test_padding_column_is_never_ranked():
    scores = [[1e9, 1.0, 2.0]]
    assert rank_targets(fixed_scorer(scores), make_set([2], [[]])).tolist() == [1]


def test_ties_count_against_the_target():
    scores = [[0.0, 1.0, 1.0, 1.0]]
    assert rank_targets(fixed_scorer(scores), make_set([1], [[]])).tolist() == [3]


def test_cutoff_keys_sort_by_the_number_after_the_at():
    from sine.metrics import cutoff_order, ordered_by_cutoff

    keys = ["recall@1000", "recall@10", "recall@200", "ndcg@50", "recall@100", "hr@20", "type", "hr@5"]
    assert sorted(keys, key=cutoff_order) == ["hr@5", "hr@20", "ndcg@50", "recall@10", "recall@100",
                                              "recall@200", "recall@1000", "type"]
    nested = {"b": [{"r@20": 1, "r@3": 2}], "a": {"x@100": 0, "x@9": 0}}
    assert list(ordered_by_cutoff(nested)) == ["a", "b"]
    assert list(ordered_by_cutoff(nested)["a"]) == ["x@9", "x@100"]
    assert list(ordered_by_cutoff(nested)["b"][0]) == ["r@3", "r@20"]
