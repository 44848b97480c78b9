"""Streaming a Parquet dataset gives the in-memory split, within a memory budget."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sine.data.logs import ITEM, TIME, USER, filter_min_counts, read_log
from sine.data.split import leave_one_out
from sine.data.stream import BYTES_PER_CLICK, parse_size, stream_split
from sine.errors import DataError
from sine_cli.app import app


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory, synthetic_frame):
    """The synthetic log as three day= partitions, rows shuffled, with tied timestamps."""
    frame = synthetic_frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    frame[TIME] = frame[TIME] // 7200 * 7200  # ties: the file order must break them
    root = tmp_path_factory.mktemp("dataset") / "events"
    for day, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        part = frame.iloc[rows]
        folder = root / f"day=2026-11-{20 + day}"
        folder.mkdir(parents=True)
        part.to_parquet(folder / "part-0.parquet", index=False)
    return root


def _per_user(data):
    """user id -> (clicks as raw ids, training examples, valid input and target, test target)."""
    out = {}
    inputs, targets = data.training_examples(5)
    starts, _ = data.example_bounds()
    owner = np.searchsorted(data.offsets, starts, side="right") - 1
    valid = data.evaluation_set("valid", 5)
    test = data.evaluation_set("test", 5)
    held = {int(u): row for row, u in enumerate(valid.users)}
    decode = np.array(["", *data.vocabulary.ids], dtype=object)
    for u, user in enumerate(data.user_ids):
        mine = owner == u
        row = held.get(u)
        out[str(user)] = (
            tuple(decode[data.items[data.offsets[u]:data.offsets[u + 1]]]),
            decode[inputs[mine]].tolist(), decode[targets[mine]].tolist(),
            None if row is None else (decode[valid.inputs[row]].tolist(), decode[valid.targets[row]],
                                      decode[test.inputs[row]].tolist(), decode[test.targets[row]]),
        )
    return out


def _in_memory(path, min_item=0, min_user=0):
    return leave_one_out(filter_min_counts(read_log(path), min_item, min_user))


@pytest.mark.parametrize("min_item,min_user", [(0, 0), (3, 12)])
def test_streaming_equals_the_in_memory_split(tmp_path, partitioned, min_item, min_user):
    expected = _in_memory(partitioned, min_item, min_user)
    got, plan = stream_split(partitioned, 64 * 2**20, tmp_path, min_item_count=min_item,
                             min_user_count=min_user)
    assert plan.buckets == 1
    assert got.vocabulary.ids == expected.vocabulary.ids
    assert sorted(got.user_ids) == list(expected.user_ids)
    assert _per_user(got) == _per_user(expected)
    assert got.num_training_examples == expected.num_training_examples
    assert np.array_equal(got.train_item_counts(), expected.train_item_counts())


def test_a_small_budget_spills_into_buckets_with_the_same_result(tmp_path, partitioned):
    clicks = len(read_log(partitioned))
    budget = clicks * BYTES_PER_CLICK // 6
    one, _ = stream_split(partitioned, 64 * 2**20, tmp_path / "one")
    many, plan = stream_split(partitioned, budget, tmp_path / "many")
    assert plan.buckets >= 6
    # the budget holds per bucket (hash buckets are uneven: allow 1.5x the mean)
    assert plan.largest_bucket * BYTES_PER_CLICK <= 1.5 * budget
    assert plan.batch_rows * BYTES_PER_CLICK <= budget
    assert many.vocabulary.ids == one.vocabulary.ids
    assert _per_user(many) == _per_user(one)
    assert not any(p.name.startswith("spill-") for p in (tmp_path / "many").iterdir())


def test_the_fingerprint_ignores_file_layout_but_not_content(tmp_path, partitioned):
    frame = read_log(partitioned)
    single = tmp_path / "one.parquet"
    frame.sample(frac=1.0, random_state=2)[[USER, ITEM, TIME]].to_parquet(single, index=False)
    a, _ = stream_split(partitioned, 64 * 2**20, tmp_path / "a")
    b, _ = stream_split(single, 64 * 2**20, tmp_path / "b")
    assert a.fingerprint == b.fingerprint
    frame.loc[0, ITEM] = frame.loc[1, ITEM] if frame.loc[0, ITEM] != frame.loc[1, ITEM] else "i999999"
    frame[[USER, ITEM, TIME]].to_parquet(single, index=False)
    c, _ = stream_split(single, 64 * 2**20, tmp_path / "c")
    assert c.fingerprint != a.fingerprint


def test_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "x.csv").write_text("user_id,item_id,timestamp\n")
    with pytest.raises(DataError, match="must be Parquet"):
        stream_split(tmp_path / "x.csv", 2**24, tmp_path)
    pd.DataFrame({"user": ["u"], ITEM: ["a"], TIME: [1]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="missing column"):
        stream_split(tmp_path / "bad.parquet", 2**24, tmp_path / "w")
    assert parse_size("512M") == 512 * 2**20 and parse_size("2g") == 2 * 2**30
    with pytest.raises(DataError, match="not a memory size"):
        parse_size("lots")
    with pytest.raises(DataError, match="below the minimum"):
        parse_size("1K")


def test_sine_train_accepts_a_partition_directory_in_memory_and_streamed(tmp_path, partitioned):
    runner = CliRunner()
    results = {}
    for name, extra in (("memory", []), ("stream", ["--memory-budget", "16M", "--eval-users", "150"])):
        out = tmp_path / name
        result = runner.invoke(app, ["train", "-d", str(partitioned), "-o", str(out), "--epochs", "1",
                                     "--dim", "8", "--prototypes", "8", "--threads", "1", *extra])
        assert result.exit_code == 0, result.output + result.stderr
        results[name] = json.loads((out / "metrics.json").read_text())["dataset"]
    assert results["memory"]["clicks"] == results["stream"]["clicks"] == len(read_log(partitioned))
    assert results["memory"]["train_examples"] == results["stream"]["train_examples"]
    assert results["stream"]["evaluated_users"] == 150
    assert results["memory"]["evaluated_users"] > 150


def test_a_run_interrupted_in_its_first_epoch_is_still_loadable(tmp_path, synthetic_csv, monkeypatch):
    """Ctrl-C before any validation keeps the weights so far: the run must have a checkpoint
    (bench/scale_e2e.py stops a million-item epoch this way, then exports the run)."""
    import trainer.fit
    from trainer.config import TrainConfig
    from trainer.run import load_run, train_run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.fit, "train_step", interrupted)
    metrics = train_run(synthetic_csv, tmp_path / "run", TrainConfig(dim=8, prototypes=8, epochs=2,
                                                                     threads=1))
    assert metrics["interrupted"] and metrics["epochs"] == 0
    assert load_run(tmp_path / "run").encoder is not None
