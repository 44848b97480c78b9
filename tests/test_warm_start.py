"""Warm start: rows matched by item id (new items fresh), other weights carried; and the
warm start's training window (each user's recent clicks, full context)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sine.data.split import leave_one_out
from sine.data.vocabulary import ItemVocabulary
from trainer.config import TrainConfig
from trainer.examples import training_examples
from trainer.models import build_encoder, model_config
from trainer.recent import recent_only
from trainer.run import load_run, train_run, warm_start

SMALL = {"model": "sine", "dim": 8, "prototypes": 8, "interests": 2, "batch_size": 256, "epochs": 1}


@pytest.fixture(scope="module")
def old_run(tmp_path_factory, synthetic_csv):
    out = tmp_path_factory.mktemp("runs") / "old"
    train_run(synthetic_csv, out, TrainConfig(**SMALL))
    return out


def test_known_items_keep_their_rows_new_items_get_fresh_ones(old_run):
    old = load_run(old_run)
    old_ids = list(old.vocabulary.ids)
    # a new catalog: the old items in another order, two of them gone, three new ones
    new_ids = ["new-a", *old_ids[::-1][:-2], "new-b", "new-c"]
    vocabulary = ItemVocabulary(new_ids)
    config = TrainConfig(**SMALL)
    torch.manual_seed(11)
    encoder = build_encoder("sine", model_config(config, len(new_ids)))
    fresh = encoder.item_embedding.weight.detach().clone()
    warm_start(encoder, vocabulary, old_run)

    table, old_table = encoder.item_embedding.weight.detach(), old.encoder.item_embedding.weight.detach()
    for index, item in enumerate(new_ids, start=1):
        if item.startswith("new-"):
            assert torch.equal(table[index], fresh[index]), item  # fresh initialisation kept
        else:
            assert torch.equal(table[index], old_table[old.vocabulary.index_of(item)]), item
    assert torch.equal(table[0], torch.zeros(8))  # padding stays zero
    old_state = old.encoder.state_dict()
    for name, tensor in encoder.state_dict().items():
        if name != "item_embedding.weight":  # prototypes, attention, positions, LayerNorms
            assert torch.equal(tensor, old_state[name]), name


def test_a_different_model_cannot_be_warm_started(old_run):
    from sine.errors import SineError

    config = TrainConfig(model="sasrec", dim=8, heads=2)
    encoder = build_encoder("sasrec", model_config(config, 5))
    with pytest.raises(SineError, match="cannot warm-start a SASRec"):
        warm_start(encoder, ItemVocabulary(["a", "b", "c", "d", "e"]), old_run)


def test_recent_window_keeps_each_users_last_examples_with_full_context(synthetic_frame):
    data = leave_one_out(synthetic_frame)
    extra = np.zeros(len(data.user_ids), dtype=np.int64)
    extra[:5] = 3  # five users with new events get three more examples each
    recent = recent_only(data, 2, extra)
    inputs, targets = data.training_examples(20)
    kept_inputs, kept_targets = recent.training_examples(20)
    per_user = np.maximum(data.train_lengths - 1, 0)
    expected = [], []
    start = 0
    for user, count in enumerate(per_user):
        keep = min(count, 2 + extra[user])
        rows = np.arange(start + count - keep, start + count)  # the user's last examples
        expected[0].append(inputs[rows])
        expected[1].append(targets[rows])
        start += count
    assert np.array_equal(kept_inputs, np.concatenate(expected[0]))
    assert np.array_equal(kept_targets, np.concatenate(expected[1]))
    assert len(kept_targets) < len(targets)
    # the count the run reports and the lazy (--memory-budget) examples are the same ones
    assert recent.num_training_examples == len(kept_targets)
    lazy = training_examples(recent, 20, torch.device("cpu"), lazy=True)
    assert len(lazy) == len(kept_targets)
    lazy_inputs, lazy_targets = lazy.batch(torch.arange(len(lazy)), 20)
    assert np.array_equal(lazy_inputs.numpy(), kept_inputs) and np.array_equal(lazy_targets.numpy(), kept_targets)
    # what the gate and the selection see is the whole split's
    for split in ("valid", "test"):
        assert np.array_equal(recent.evaluation_set(split, 20).targets, data.evaluation_set(split, 20).targets)
    assert np.array_equal(recent.train_item_counts(), data.train_item_counts())
