"""The nightly cycle, timed step by step on a real log (issue #5: under 15 minutes on video).

    .venv/bin/python bench/retrain_cycle.py --run runs/bench/video/sine/seed1 \\
        --log ../shared/data/video.csv.gz [--retrain-args=--warm-start]

1. Exports the trained run as the live bundle (indexed, published in a fresh bundle
   store) and starts a throwaway Redis.
2. Records --events click events in the Redis stream the way the service does (known
   users clicking popular items, after the log's last timestamp).
3. Runs `sine retrain` as a separate process (same settings as the live model) and reads
   its JSON report: the seconds of every step, the gate's decision, the index.
Writes bench/results/retrain.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.processes import RedisProcess  # noqa: E402


def record_events(url: str, log_path: Path, count: int, seed: int = 0) -> int:
    """Clicks of known users on popular items, through the service's own store code."""
    from service.store import Click, RedisStore
    from sine.data.logs import read_log

    frame = read_log(log_path)
    rng = np.random.default_rng(seed)
    users = rng.choice(frame["user_id"].unique(), size=max(1, count // 10), replace=False)
    popular = frame["item_id"].value_counts().index[:500].to_numpy()
    start = float(frame["timestamp"].max()) + 1
    clicks = [Click(str(users[i % len(users)]), str(rng.choice(popular)), start + i) for i in range(count)]

    async def send() -> int:
        store = RedisStore(url, "sine:", history_cap=200, timeout=5)
        try:
            stored = 0
            for first in range(0, len(clicks), 500):
                stored += len(await store.record(clicks[first:first + 500]))
            return stored
        finally:
            await store.close()

    return asyncio.run(send())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="the trained run that is live")
    parser.add_argument("--log", type=Path, required=True, help="its base interaction log")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--retrain-args", default="",
                        help="extra `sine retrain` options, with '=': --retrain-args='--warm-start --warm-recent 5'")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "retrain.json")
    args = parser.parse_args()
    sine = [sys.executable, "-m", "sine_cli"]
    with tempfile.TemporaryDirectory(dir=ROOT / "runs") as tmp:
        work = Path(tmp)
        store, data_dir = work / "store", work / "data"
        started = time.perf_counter()
        subprocess.run([*sine, "-q", "export", str(args.run), "--out", str(work / "live")], check=True)
        subprocess.run([*sine, "-q", "build-index", str(work / "live")], check=True)
        store.mkdir()
        shutil.move(work / "live", store / "v0-live")
        from sine.bundle_store import publish
        publish(store, store / "v0-live")
        setup_seconds = time.perf_counter() - started

        redis = RedisProcess(work)
        redis.start()
        try:
            stored = record_events(redis.url, args.log, args.events)
            env = {**os.environ, "SINE_REDIS_URL": redis.url}
            started = time.perf_counter()
            load_before = os.getloadavg()
            process = subprocess.run([*sine, "retrain", "--data-dir", str(data_dir), "--store", str(store),
                                      "--base-log", str(args.log), *args.retrain_args.split()], env=env)
            wall = time.perf_counter() - started
        finally:
            redis.stop()
        report = json.loads(max((data_dir / "reports").glob("retrain-*.json")).read_text())
    result = {
        "log": str(args.log), "events_recorded": stored, "exit_code": process.returncode,
        "status": report["status"], "wall_seconds": round(wall, 1),
        "setup_seconds": round(setup_seconds, 1),
        "steps": {name: {k: v for k, v in step.items() if k in ("seconds", "status", "events", "clicks",
                                                              "epochs", "best_epoch", "promote", "reason",
                                                              "type", "recall", "train_examples",
                                                              "valid_ndcg10", "warm_start")}
                  for name, step in report["steps"].items()},
        "cpu_count": os.cpu_count(), "retrain_args": args.retrain_args,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    lines = [f"`sine retrain {args.retrain_args}` on {args.log.name} + {stored:,} recorded events, "
             f"{os.cpu_count()} cores: **{result['status']}** (exit {result['exit_code']}) in {wall / 60:.1f} min "
             f"wall time; load average {load_before[0]:.1f} before, {result['load_average_after'][0]:.1f} after "
             "(1 min; a shared machine).", "",
             "| step | seconds | detail |", "| --- | ---: | --- |"]
    for name, step in result["steps"].items():
        detail = ", ".join(f"{k} {v}" for k, v in step.items() if k not in ("seconds", "status"))
        lines.append(f"| {name} | {step.get('seconds', '')} | {detail} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
