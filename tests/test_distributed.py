"""Data-parallel training under torchrun (trainer/distributed.py), on gloo and two CPU
processes: the command users run, one writer, the same model as one process at the same
global batch, and evaluation sharded without changing a single rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sine.data.synthetic import SyntheticSpec, synthetic_log
from sine.errors import SineError
from trainer import distributed
from trainer.config import TrainConfig
from trainer.distributed import Group

ROOT = Path(__file__).resolve().parents[1]
# Dropout off (sine's default), full softmax in fp32 (bf16 products would round each
# process's share of the item-table gradient apart): one process and two compute the same
# batches. The log has 19,391 training examples, so the epoch's one short batch has 11
# (split 6 + 5: the weighting of unequal shares), and 1,030 evaluated users: two
# evaluation batches of up to 1,024, one per process.
SMALL = {"model": "sine", "dim": 32, "prototypes": 24, "interests": 4, "batch_size": 60,
         "max_len": 20, "epochs": 1, "seed": 5, "threads": 1, "device": "cpu",
         "precision": "fp32"}


@pytest.fixture(scope="module")
def ddp_log(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp-log") / "clicks.csv"
    synthetic_log(SyntheticSpec(num_users=1030, num_items=300, num_groups=12, seed=3)).to_csv(
        path, index=False)
    return path


def _flags(values: dict) -> list[str]:
    return [part for key, value in values.items()
            for part in (f"--{key.replace('_', '-')}", str(value))]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, ddp_log):
    """`sine train` under the real torchrun CLI, two gloo processes on this machine."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               "2", "-m", "sine_cli", "train", "--data", str(ddp_log), "--out", str(out),
               *_flags(SMALL)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, done


def test_torchrun_trains_one_run_written_by_rank_zero(two_process_run):
    out, done = two_process_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["global_batch"] == SMALL["batch_size"]
    assert metrics["config"]["batch_size"] == SMALL["batch_size"]
    # one writer: nothing beside the run (no second copy, no abandoned staging directory)
    assert sorted(p.name for p in out.parent.iterdir()) == ["run"]
    # one voice: the epoch line and the printed metrics once, not once per process
    logged = done.stdout + done.stderr
    assert logged.count("epoch   1  loss") == 1, logged[-3000:]
    assert logged.count("distributed: 2 processes (gloo)") == 1


def test_two_processes_train_the_model_one_process_trains(two_process_run, ddp_log, tmp_path):
    """Same seed, same global batch, no dropout: after an epoch the two-process weights are
    the one-process weights up to the order of floating-point sums."""
    from trainer.models import build_encoder
    from trainer.run import load_run, train_run

    out, _ = two_process_run
    single = tmp_path / "single"
    metrics = train_run(ddp_log, single, TrainConfig(**SMALL))
    assert metrics["world_size"] == 1
    assert metrics["dataset"]["train_examples"] % SMALL["batch_size"] == 11  # as planned
    one = load_run(single).encoder.state_dict()
    two = load_run(out).encoder.state_dict()
    # Adam divides each coordinate's step by its gradient's running size, so where a gradient
    # is near zero a rounding-level difference between the two sums can become a step of up
    # to lr: a few coordinates may differ by that much (wk1: 3.3e-4 on one machine with
    # AMX), while 99 % of every tensor agrees to rounding (at most 8.5e-6 measured). Weighting
    # the ranks' shares of the last, unequal batch wrongly moves the 99th percentile of
    # every tensor to 8.7e-5 .. 3.4e-3.
    lr = TrainConfig(**SMALL).lr
    for name, tensor in one.items():
        diff = (two[name] - tensor).abs().flatten().double()
        assert float(diff.quantile(0.99)) <= 3e-5, name
        assert float(diff.max()) <= 2 * lr, name
    # ... and training did move them: the check would not pass for an untrained copy
    torch.manual_seed(SMALL["seed"])  # as train_run seeds before building the model
    start = build_encoder("sine", load_run(single).info["architecture"]).state_dict()
    assert float((one["prototypes"] - start["prototypes"]).abs().max()) > 1e-2
    ddp = json.loads((out / "metrics.json").read_text())
    assert ddp["valid"]["ndcg@10"] == pytest.approx(metrics["valid"]["ndcg@10"], abs=2e-3)


def test_sharded_evaluation_equals_one_process_exactly(two_process_run, ddp_log):
    """The run's metrics (ranked by two processes, one batch of users each, the ranks summed)
    are exactly what one process computes from the saved weights."""
    from trainer.run import evaluate_all, load_data, load_run

    out, _ = two_process_run
    run = load_run(out)
    data = load_data(ddp_log, run.config)
    assert len(data.eval_users) > 1024  # two evaluation batches: each process ranks one
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the two processes: the same products, the same scores
    try:
        alone = evaluate_all(run.scorer(), data, run.config.max_len, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    for split in ("valid", "test", "test_history_kept"):
        assert run.metrics[split] == alone[split], split


def test_a_batch_that_does_not_split_fails_before_reading_the_log(tmp_path, monkeypatch):
    from trainer.run import train_run

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SineError, match="--batch-size 61 is the global batch and must divide "
                                        "by the 2 processes"):
        train_run(tmp_path / "missing.csv", tmp_path / "run", TrainConfig(batch_size=61))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("rank", "local_rank", "speaks"), [
    ("1", "1", False), ("0", "0", True), (None, None, True),
    ("1", None, False),  # a launcher that sets RANK only
    ("2", "0", True),  # the first process of the second node (2 nodes x 2): its terminal hears it
    ("3", "1", False),
])
def test_only_the_first_process_of_each_node_prints_a_bad_option(tmp_path, monkeypatch, rank, local_rank,
                                                                 speaks):
    """Under torchrun every rank meets the same bad option: the first process of each node
    (or no launcher) prints the one line, the others exit with the same code and say nothing."""
    from typer.testing import CliRunner

    from sine_cli.app import app

    monkeypatch.setenv("WORLD_SIZE", "4")
    for name, value in (("RANK", rank), ("LOCAL_RANK", local_rank)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "missing.csv"), "--out",
                                      str(tmp_path / "run"), "--batch-size", "0"])
    assert result.exit_code == 2
    if not speaks:
        assert result.stderr == "" and result.stdout == ""
    else:
        assert result.stderr == "error: --batch-size must be at least 1\n", result.stderr


def test_a_process_not_launched_always_speaks(monkeypatch):
    """A stray LOCAL_RANK/RANK (a shell inside another launched job) must not silence the
    error of a process that no launcher started (WORLD_SIZE unset or 1)."""
    from sine.launch import speaks_for_launch

    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("RANK", "3")
    for world in (None, "1"):
        if world is None:
            monkeypatch.delenv("WORLD_SIZE", raising=False)
        else:
            monkeypatch.setenv("WORLD_SIZE", world)
        assert speaks_for_launch()
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert not speaks_for_launch()


def test_settings_that_cannot_be_sharded_are_refused(monkeypatch):
    two = Group(rank=0, world_size=2, local_rank=0)
    assert distributed.check_shardable(two, 128, 1000) == 64
    assert distributed.check_shardable(distributed.SINGLE, 127, 1) == 127
    with pytest.raises(SineError, match="only 1 training example"):
        distributed.check_shardable(two, 128, 1)
    with pytest.raises(SineError, match="must divide by the 2 processes"):
        distributed.check_shardable(two, 127, 1000)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    with pytest.raises(SineError, match="give --device cuda"):
        distributed.rank_device("cuda:1")
    assert distributed.rank_device("cpu") == "cpu"


def test_shards_cover_a_batch_once():
    batch = torch.arange(7)
    parts = [distributed.shard(batch, Group(r, 3, r)) for r in range(3)]
    assert torch.equal(torch.cat(parts), batch)
    assert [len(p) for p in parts] == [2, 3, 2]


def test_ranks_other_than_zero_write_nothing(tmp_path, monkeypatch, ddp_log):
    """Rank 1's view of a run (its process group faked): metrics returned, no directory."""
    from contextlib import contextmanager

    from trainer import run

    @contextmanager
    def rank_one(device):
        yield Group(rank=1, world_size=2, local_rank=1)

    monkeypatch.setattr(distributed, "session", rank_one)
    metrics = run.train_run(ddp_log, tmp_path / "run", TrainConfig(model="pop"))
    assert metrics["test"]["hr@10"] > 0
    assert list(tmp_path.iterdir()) == []


def test_kubernetes_job_meets_at_pod_zero_of_its_headless_service():
    """deploy/k8s/50-train-distributed.yaml (its schema: tests/test_deploy_files.py): the
    node count in its three places agrees, and torchrun's master is pod 0's DNS name."""
    import re

    import yaml

    documents = list(yaml.safe_load_all(
        (ROOT / "deploy" / "k8s" / "50-train-distributed.yaml").read_text()))
    service = next(d for d in documents if d["kind"] == "Service")
    job = next(d for d in documents if d["kind"] == "Job")
    pod = job["spec"]["template"]["spec"]
    command = " ".join(pod["containers"][0]["args"])
    assert service["spec"]["clusterIP"] == "None" and pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["selector"] == {"job-name": job["metadata"]["name"]}
    assert job["spec"]["completionMode"] == "Indexed"
    nodes = int(re.search(r"--nnodes (\d+)", command).group(1))
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == nodes
    assert f"--master_addr {job['metadata']['name']}-0.{service['metadata']['name']}" in command
    assert '--node_rank "$JOB_COMPLETION_INDEX"' in command and "-m sine_cli train" in command
