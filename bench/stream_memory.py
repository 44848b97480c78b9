"""Peak memory of the training data path against log size: streamed vs in memory.

    nice -n 10 .venv/bin/python bench/stream_memory.py --sizes 1000000 5000000 10000000

For each log size (one industrial-shaped log, sine/data/industrial.py, 1M items; the
smaller logs are prefixes of the larger ones, the generator being chunked), each path
runs in a fresh process and reports its peak memory:

- stream: `stream_split` within `--budget`, then one epoch of training batches cut per
  batch from the mapped clicks (`LazyExamples`, as `sine train --memory-budget` does);
- memory: `read_log` + `leave_one_out`, then the epoch's batches from the windows
  materialised once (`DenseExamples`, the default `sine train`).

The model is left out on purpose: its memory depends on the catalog, not on the log
(measured end to end in bench/scale_e2e.py). Peak RSS is the kernel's ru_maxrss; it
counts the pages of mapped files the process touched, which the kernel may drop under
pressure, so the peak of anonymous memory (RssAnon, sampled every 20 ms) is given too.
"Baseline" is the process after its imports, before any data. Writes
bench/results/stream_memory.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class PeakSampler(threading.Thread):
    """Largest RssAnon seen, sampled every 20 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_anon = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            self.peak_anon = max(self.peak_anon, _status_kb("RssAnon"))
            time.sleep(0.02)


def child(mode: str, log: Path, budget: str, max_len: int, batch: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from sine.data.logs import filter_min_counts, read_log
    from sine.data.split import leave_one_out
    from sine.data.stream import parse_size, stream_split
    from trainer.examples import training_examples

    torch.set_num_threads(1)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    baseline_anon = _status_kb("RssAnon")
    sampler = PeakSampler()
    sampler.start()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as work:
        if mode == "stream":
            data, plan = stream_split(log, parse_size(budget), work)
            extra = {"buckets": plan.buckets, "largest_bucket": plan.largest_bucket}
        else:
            data, extra = leave_one_out(filter_min_counts(read_log(log), 0, 0)), {}
        prepared = time.perf_counter() - started
        examples = training_examples(data, max_len, torch.device("cpu"), lazy=mode == "stream")
        order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(0))
        checksum = 0
        for part in order.split(batch):
            clicks, targets = examples.batch(part, max_len)
            checksum += int(clicks[0, -1]) + int(targets[0])
        epoch = time.perf_counter() - started - prepared
        clicks_total = int(data.offsets[-1])
        num_examples = len(examples)
        del examples, data
    sampler.running = False
    sampler.join()
    return {"mode": mode, "clicks": clicks_total, "examples": num_examples,
            "baseline_rss_mb": round(baseline / 1024, 1),
            "baseline_anon_mb": round(baseline_anon / 1024, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_anon_mb": round(sampler.peak_anon / 1024, 1),
            "prepare_seconds": round(prepared, 1), "epoch_batches_seconds": round(epoch, 1),
            "checksum": checksum % 1000003, **extra, "numpy": np.__version__}


def ensure_log(clicks: int, items: int, root: Path, reuse: Path | None) -> Path:
    from sine.data.industrial import IndustrialSpec, write_parquet_dataset

    if reuse is not None and (reuse / ".complete").exists() and clicks == 10_000_000:
        return reuse
    out = root / f"clicks-{clicks}"
    if not (out / ".complete").exists():
        write_parquet_dataset(IndustrialSpec(num_items=items, num_clicks=clicks), out, progress=False)
        (out / ".complete").write_text("")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000, 10_000_000])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--budget", default="256M")
    parser.add_argument("--modes", nargs="+", default=["stream", "memory"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/sine-bench-stream"))
    parser.add_argument("--reuse", type=Path, default=Path("/tmp/sine-scale/log"),
                        help="the 10M-click log of bench/scale_e2e.py, if already generated")
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--append", action="store_true",
                        help="add the runs to bench/results/stream_memory.json instead of replacing it")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "LOG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), args.budget, 20, 2048)))
        return

    report: dict[str, Any] = {"budget": args.budget, "items": args.items, "runs": [],
                              "load_average_start": os.getloadavg()}
    if args.append and (RESULTS / "stream_memory.json").exists():
        report = json.loads((RESULTS / "stream_memory.json").read_text())
    for clicks in args.sizes:
        log = ensure_log(clicks, args.items, args.work, args.reuse)
        for mode in args.modes:
            cmd = [sys.executable, __file__, "--budget", args.budget, "--child", mode, str(log)]
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
                if out.returncode != 0:
                    row = {"mode": mode, "clicks": clicks, "error": out.stderr.strip().splitlines()[-1]}
                else:
                    row = json.loads(out.stdout.strip().splitlines()[-1])
            except subprocess.TimeoutExpired:
                row = {"mode": mode, "clicks": clicks, "capped": f"over {args.timeout:.0f} s"}
            row["log_clicks"] = clicks
            row["load_average"] = os.getloadavg()[0]
            report["runs"].append(row)
            print(json.dumps(row), flush=True)
            write(report)


def write(report: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stream_memory.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# Peak memory of the training data path against log size",
        "",
        f"Command: `nice -n 10 .venv/bin/python bench/stream_memory.py --budget {report['budget']}`; "
        f"industrial-shaped logs on {report['items']:,} items (sine/data/industrial.py); each row a "
        "fresh process: split the log, then cut one epoch of training batches (2048 examples, n = 20). "
        "The model is not included (its memory depends on the catalog, see scale_e2e.md). Load "
        f"average at start {report['load_average_start'][0]:.1f} (2 cores, shared).",
        "",
        "| clicks | path | peak RSS MB | peak anonymous MB | anonymous above baseline MB | split s | "
        "epoch batches s | buckets |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["runs"]:
        if "peak_rss_mb" not in r:
            lines.append(f"| {r['log_clicks']:,} | {r['mode']} | {r.get('capped') or r.get('error')} | | | | | |")
            continue
        lines.append(f"| {r['log_clicks']:,} | {r['mode']} | {r['peak_rss_mb']} | {r['peak_anon_mb']} | "
                     f"{r['peak_anon_mb'] - r['baseline_anon_mb']:.1f} | {r['prepare_seconds']} | "
                     f"{r['epoch_batches_seconds']} | "
                     f"{r.get('buckets', '')} |")
    for mode in ("stream", "memory"):
        done = [r for r in report["runs"] if r["mode"] == mode and "peak_anon_mb" in r]
        if len(done) >= 2:
            a, b = done[0], done[-1]
            slope = (b["peak_anon_mb"] - a["peak_anon_mb"]) * 2**20 / (b["clicks"] - a["clicks"])
            lines.append(f"\n{mode}: peak anonymous memory grows {slope:.0f} bytes per click between "
                         f"{a['log_clicks']:,} and {b['log_clicks']:,} clicks "
                         f"(x{b['peak_anon_mb'] / a['peak_anon_mb']:.2f} for x{b['clicks'] / a['clicks']:.0f} clicks).")
    (RESULTS / "stream_memory.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
