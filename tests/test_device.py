"""Device selection and the per-epoch batch plan the training loop (CPU or CUDA) runs."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from sine.errors import SineError
from sine_cli.app import app
from trainer.config import TrainConfig
from trainer.fit import epoch_batches, epoch_plan, resolve_device

runner = CliRunner()


def test_cuda_without_cuda_is_a_one_line_cli_error(tmp_path, synthetic_csv, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = runner.invoke(app, ["train", "-d", str(synthetic_csv), "-o", str(tmp_path / "run"),
                                 "--device", "cuda", "--epochs", "1"])
    assert result.exit_code == 2
    assert "--device cuda was asked for, but torch sees no CUDA device" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output + result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("name", "message"), [
    ("gpu", "--device must be cpu, cuda, cuda:N or auto, not 'gpu'"),
    ("mps", "only cpu and cuda devices are supported"),
    ("cuda:3", "torch sees 1 CUDA device(s), cuda:0 to cuda:0"),
])
def test_devices_this_machine_cannot_use_are_named(name, message, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(SineError) as caught:
        resolve_device(name)
    assert message in str(caught.value)


def test_auto_and_cpu_resolve_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("bucketed", [True, False])
def test_epoch_plan_is_the_epochs_batches_with_their_widths(bucketed):
    lengths = torch.randint(1, 21, (1000,), generator=torch.Generator().manual_seed(1))
    config = TrainConfig(batch_size=64, max_len=20, length_buckets=bucketed)
    plan = epoch_plan(lengths, config, torch.Generator().manual_seed(5), torch.device("cpu"))
    batches = epoch_batches(lengths, 64, torch.Generator().manual_seed(5), bucketed)
    assert len(plan) == len(batches)
    for (indices, width), batch in zip(plan, batches, strict=True):
        assert torch.equal(indices, batch)
        # no column that a row of the batch needs is cut, and none is all padding
        assert width == (int(lengths[batch].max()) if bucketed else 20)
    assert torch.equal(torch.cat([i for i, _ in plan]).sort().values, torch.arange(1000))
