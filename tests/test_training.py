"""End-to-end training on the synthetic log: the model learns, reproducibly, and the
run directory holds everything the next stages need."""

from __future__ import annotations

import json

import pytest
import torch

from trainer.config import TrainConfig
from trainer.run import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    POPULARITY,
    VOCABULARY,
    evaluate_all,
    load_data,
    load_run,
    train_run,
)

SMALL = {"dim": 32, "prototypes": 24, "interests": 4, "batch_size": 128, "max_len": 20}


@pytest.fixture(scope="module")
def pop_run(tmp_path_factory, synthetic_csv):
    out = tmp_path_factory.mktemp("runs") / "pop"
    return out, train_run(synthetic_csv, out, TrainConfig(model="pop"))


@pytest.fixture(scope="module")
def sine_run(tmp_path_factory, synthetic_csv):
    out = tmp_path_factory.mktemp("runs") / "sine"
    return out, train_run(synthetic_csv, out, TrainConfig(model="sine", epochs=4, patience=4, **SMALL))


def test_sine_beats_most_popular_on_held_out_users(pop_run, sine_run):
    pop, sine = pop_run[1]["test"], sine_run[1]["test"]
    assert sine["hr@10"] > 3 * pop["hr@10"]
    assert sine["ndcg@10"] > pop["ndcg@10"] + 0.1
    assert sine["hr@50"] > pop["hr@50"] + 0.2


def test_metrics_json_has_the_agreed_keys(sine_run):
    out = sine_run[0]
    on_disk = json.loads((out / METRICS).read_text())
    for split in ("valid", "test", "test_history_kept"):
        assert set(on_disk[split]) == {"hr@10", "hr@20", "hr@50", "ndcg@10", "ndcg@20", "ndcg@50"}
    for key in ("epochs", "best_epoch", "train_seconds", "examples_per_second", "dataset", "model", "seed"):
        assert key in on_disk, key
    assert on_disk["dataset"]["fingerprint"].startswith("sha256:")
    assert 1 <= on_disk["best_epoch"] <= on_disk["epochs"] == len(on_disk["history"])
    assert on_disk["concepts"]["distinct_concepts"] >= 4
    # how sharp the interests are, for the best epoch and for every epoch of the history
    K = on_disk["config"]["interests"]
    for concepts in [on_disk["concepts"]] + [h["concepts"] for h in on_disk["history"]]:
        assert 1 / K - 1e-6 <= concepts["top_interest_weight"] <= 1.0
        assert 1 / K - 1e-6 <= concepts["assignment_sharpness"] <= 1.0
        assert concepts["distinct_concepts"] >= 1


def test_run_directory_reloads_to_the_same_metrics(sine_run, synthetic_csv):
    out, metrics = sine_run
    for name in (CHECKPOINT, CONFIG, VOCABULARY, POPULARITY, METRICS, "training_curves.png",
                 "concept_usage.png", "train.log"):
        assert (out / name).is_file(), name
    run = load_run(out)
    data = load_data(synthetic_csv, run.config, vocabulary=run.vocabulary)
    again = evaluate_all(run.scorer(), data, run.config.max_len, torch.device("cpu"))
    for split in ("valid", "test", "test_history_kept"):
        assert again[split] == pytest.approx(metrics[split], abs=1e-9)


def test_history_kept_ranks_are_never_better(sine_run):
    metrics = sine_run[1]
    for key in ("hr@10", "hr@50", "ndcg@10"):
        assert metrics["test_history_kept"][key] <= metrics["test"][key] + 1e-12


def test_same_seed_gives_the_same_model(tmp_path, synthetic_csv):
    config = TrainConfig(model="sine", epochs=1, seed=7, **SMALL)
    first = train_run(synthetic_csv, tmp_path / "a", config)
    second = train_run(synthetic_csv, tmp_path / "b", config)
    other = train_run(synthetic_csv, tmp_path / "c", TrainConfig(model="sine", epochs=1, seed=8, **SMALL))
    a = torch.load(tmp_path / "a" / CHECKPOINT, weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=True)["state_dict"]
    c = torch.load(tmp_path / "c" / CHECKPOINT, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert first["test"] == second["test"]
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert other["test"] != first["test"]


def test_sasrec_in_the_same_harness_beats_pop(tmp_path, synthetic_csv, pop_run):
    metrics = train_run(synthetic_csv, tmp_path / "sasrec",
                        TrainConfig(model="sasrec", epochs=3, dim=32, heads=2, inner_dim=64, batch_size=128))
    assert metrics["test"]["hr@10"] > 2 * pop_run[1]["test"]["hr@10"]


def test_sampled_softmax_trains_too(tmp_path, synthetic_csv, pop_run):
    metrics = train_run(synthetic_csv, tmp_path / "sampled",
                        TrainConfig(model="sine", loss="sampled", negatives=64, epochs=3, **SMALL))
    assert metrics["loss"] == "sampled"
    assert metrics["test"]["hr@10"] > 2 * pop_run[1]["test"]["hr@10"]


def test_failed_training_leaves_no_run_directory(tmp_path, synthetic_csv):
    with pytest.raises(Exception, match="no such file"):
        train_run(tmp_path / "missing.csv", tmp_path / "run", TrainConfig(model="pop"))
    assert not (tmp_path / "run").exists()
    assert list(tmp_path.iterdir()) == []
