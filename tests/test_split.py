from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sine.data.logs import read_log
from sine.data.split import leave_one_out
from sine.data.vocabulary import ItemVocabulary
from sine.errors import DataError


def frame_of(sequences: dict[str, list[str]]) -> pd.DataFrame:
    rows = [(u, i, t) for u, items in sequences.items() for t, i in enumerate(items)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).sort_values(
        ["user_id", "timestamp"], kind="stable").reset_index(drop=True)


@pytest.fixture()
def data():
    return leave_one_out(frame_of({"u1": list("abcdef"), "u2": list("ab"), "u3": list("cab")}))


def test_vocabulary_numbers_items_by_popularity_and_reserves_zero(data):
    vocab = data.vocabulary
    assert vocab.ids[:3] == ["a", "b", "c"]  # 3, 3, 2 clicks
    assert vocab.index_of("a") == 1
    assert vocab.index_of("unknown") == 0
    assert vocab.decode(vocab.encode(["f", "a"])) == ["f", "a"]


def test_users_with_fewer_than_three_clicks_only_train(data):
    assert [data.user_ids[u] for u in data.eval_users] == ["u1", "u3"]
    assert data.train_lengths.tolist() == [4, 2, 1]


def test_training_examples_are_every_prefix_left_padded(data):
    inputs, targets = data.training_examples(max_len=3)
    idx = data.vocabulary.index_of
    # u1 trains on a b c d: (a)->b, (a b)->c, (a b c)->d ; u2 trains on a b: (a)->b ; u3 on c: none
    assert targets.tolist() == [idx("b"), idx("c"), idx("d"), idx("b")]
    assert inputs.tolist() == [
        [0, 0, idx("a")],
        [0, idx("a"), idx("b")],
        [idx("a"), idx("b"), idx("c")],
        [0, 0, idx("a")],
    ]


def test_windows_keep_the_last_n_clicks(data):
    inputs, _ = data.training_examples(max_len=2)
    idx = data.vocabulary.index_of
    assert inputs[2].tolist() == [idx("b"), idx("c")]


def test_validation_and_test_inputs_targets_and_history(data):
    idx = data.vocabulary.index_of
    valid = data.evaluation_set("valid", max_len=3)
    assert valid.targets.tolist() == [idx("e"), idx("a")]
    assert valid.inputs.tolist() == [[idx("b"), idx("c"), idx("d")], [0, 0, idx("c")]]
    assert valid.history[valid.history_offsets[0]:valid.history_offsets[1]].tolist() == \
        [idx(i) for i in "abcd"]
    test = data.evaluation_set("test", max_len=3)
    assert test.targets.tolist() == [idx("f"), idx("b")]
    assert test.inputs.tolist() == [[idx("c"), idx("d"), idx("e")], [0, idx("c"), idx("a")]]
    assert test.history[test.history_offsets[1]:test.history_offsets[2]].tolist() == [idx("c"), idx("a")]


def test_train_item_counts_leave_out_held_out_clicks(data):
    counts = data.train_item_counts()
    idx = data.vocabulary.index_of
    assert counts[idx("e")] == 0 and counts[idx("f")] == 0
    assert counts[idx("a")] == 2 and counts[0] == 0


def test_too_small_to_split():
    with pytest.raises(DataError, match="too small to split"):
        leave_one_out(frame_of({"u1": list("ab"), "u2": list("c")}))


def test_given_vocabulary_drops_unknown_items():
    vocab = ItemVocabulary(["a", "b", "c", "d"])
    data = leave_one_out(frame_of({"u1": list("axbcydz")}), vocab)
    assert data.items.tolist() == [1, 2, 3, 4]


def test_real_log_counts_match_its_readme():
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "beauty.csv.gz"
    if not path.exists():
        pytest.skip("shared data not available")
    data = leave_one_out(read_log(path))
    inputs, targets = data.training_examples(20)
    assert (len(data.user_ids), data.num_items, len(data.items)) == (22_363, 12_101, 198_502)
    assert len(targets) == 131_413  # the example count RecBole reports for Beauty
    assert np.all(inputs[:, -1] > 0)  # every example has at least its most recent click
