"""deploy/stack-job.sh: which log the first model and the nightly retrain train on.

Run with a stand-in `sine` on PATH that records how it was called, so the rules are
checked without training: a configured log that is missing fails and names the path
(never a silent fall-back to synthetic data); no log configured is the demo, on one
synthetic log that bootstrap makes and the nightly reuses.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "stack-job.sh"

FAKE_SINE = """#!/bin/sh
echo "$* | SINE_BASE_LOG=${SINE_BASE_LOG:-}" >> "$CALLS"
if [ "$1" = synth ]; then
  while [ "$1" != --out ]; do shift; done
  echo "user_id,item_id,timestamp" > "$2"
fi
"""


@pytest.fixture()
def stack(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sine").write_text(FAKE_SINE)
    (bin_dir / "sine").chmod(0o755)
    for job in ("sine-bootstrap", "sine-nightly"):
        (bin_dir / job).symlink_to(SCRIPT)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(tmp_path / "calls"),
           "SINE_DATA_DIR": str(tmp_path / "data"), "SINE_STORE": str(tmp_path / "bundles"),
           "SINE_INPUT_DIR": str(tmp_path / "input")}
    (tmp_path / "input").mkdir()

    def run(job: str, **extra: str) -> tuple[subprocess.CompletedProcess, list[str]]:
        calls = tmp_path / "calls"
        calls.unlink(missing_ok=True)
        result = subprocess.run([job], env={**env, **extra}, capture_output=True, text=True, timeout=30)
        return result, calls.read_text().splitlines() if calls.exists() else []

    run.tmp = tmp_path
    return run


def test_demo_mode_bootstrap_makes_the_synthetic_log_and_the_nightly_reuses_it(stack):
    synthetic = stack.tmp / "data" / "synthetic.csv"
    result, calls = stack("sine-bootstrap", SINE_RETRAIN_ARGS="--epochs 3", SINE_SYNTH_ARGS="--users 50")
    assert result.returncode == 0, result.stderr
    assert calls[0].startswith("synth --users 50 --out") and synthetic.exists()
    assert calls[1] == f"retrain --epochs 3 | SINE_BASE_LOG={synthetic}"
    result, calls = stack("sine-nightly")
    assert result.returncode == 0, result.stderr
    assert calls == [f"retrain --warm-start | SINE_BASE_LOG={synthetic}"]


def test_nightly_before_bootstrap_says_what_is_missing(stack):
    result, calls = stack("sine-nightly")
    assert result.returncode == 1 and calls == []
    assert "synthetic.csv does not exist" in result.stderr and "sine-bootstrap" in result.stderr


@pytest.mark.parametrize("job", ["sine-bootstrap", "sine-nightly"])
def test_a_configured_log_that_is_missing_fails_and_never_trains_on_synthetic_data(stack, job):
    missing = str(stack.tmp / "input" / "clicks.csv.gz")
    result, calls = stack(job, SINE_BASE_LOG=missing)
    assert result.returncode == 1 and calls == []
    assert missing in result.stderr
    result, calls = stack(job, SINE_LOG_FILE="clicks.csv.gz")
    assert result.returncode == 1 and calls == []
    assert missing in result.stderr and "SINE_LOG_DIR" in result.stderr


def test_a_mounted_log_is_used_by_both_jobs(stack):
    log = stack.tmp / "input" / "clicks.csv.gz"
    log.write_bytes(b"")
    for job, warm in (("sine-bootstrap", ""), ("sine-nightly", " --warm-start")):
        result, calls = stack(job, SINE_LOG_FILE="clicks.csv.gz")
        assert result.returncode == 0, result.stderr
        assert calls == [f"retrain{warm} | SINE_BASE_LOG={log}"], job


@pytest.mark.parametrize(("setting", "warm"), [(None, True), ("1", True), ("TRUE", True), ("yes", True),
                                               ("On", True), ("0", False), ("false", False), ("No", False),
                                               ("off", False)])
def test_the_nightly_warm_starts_unless_told_not_to_and_bootstrap_never_does(stack, setting, warm):
    log = stack.tmp / "input" / "clicks.csv.gz"
    log.write_bytes(b"")
    extra = {"SINE_LOG_FILE": "clicks.csv.gz", "SINE_RETRAIN_ARGS": "--epochs 5"}
    if setting is not None:
        extra["SINE_NIGHTLY_WARM_START"] = setting
    result, calls = stack("sine-nightly", **extra)
    assert result.returncode == 0, result.stderr
    assert calls == [f"retrain {'--warm-start ' if warm else ''}--epochs 5 | SINE_BASE_LOG={log}"]
    result, calls = stack("sine-bootstrap", **extra)
    assert result.returncode == 0, result.stderr
    assert calls == [f"retrain --epochs 5 | SINE_BASE_LOG={log}"]


def test_a_garbled_warm_start_setting_fails_and_says_what_it_takes(stack):
    (stack.tmp / "input" / "clicks.csv.gz").write_bytes(b"")
    result, calls = stack("sine-nightly", SINE_LOG_FILE="clicks.csv.gz", SINE_NIGHTLY_WARM_START="warm")
    assert result.returncode == 1 and calls == []
    assert "SINE_NIGHTLY_WARM_START=warm: give 1, true, yes or on" in result.stderr


def test_bootstrap_does_nothing_once_a_model_is_live(stack):
    (stack.tmp / "bundles").mkdir()
    (stack.tmp / "bundles" / "CURRENT").write_text("v1\n")
    result, calls = stack("sine-bootstrap")
    assert result.returncode == 0 and calls == []
    assert "live already" in result.stdout


def test_the_script_is_posix_sh():
    assert subprocess.run(["sh", "-n", str(SCRIPT)]).returncode == 0
    assert os.access(SCRIPT, os.X_OK)
