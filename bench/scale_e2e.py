"""End to end at a million items: generate, train (streamed), export, index, serve.

    nice -n 10 .venv/bin/python bench/scale_e2e.py --work /tmp/sine-scale --deadline 00:50

Each stage runs as its own process; its wall time and peak RSS (the kernel's
ru_maxrss of that child, from os.wait4) are recorded, and the JSON is rewritten after
every stage, so a run cut short still reports what it measured. A stage that would run
past `--deadline` (UTC, HH:MM) is stopped: training with SIGINT, which `sine train`
turns into "finish with the weights so far" (the run is written, marked interrupted),
so the later stages still run on it; its epoch time is then projected from the
examples it did train, and marked as such. Generated data stays under --work.
Writes bench/results/scale_e2e.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable


def seconds_left(deadline: str) -> float:
    now = dt.datetime.now(dt.UTC)
    hour, minute = map(int, deadline.split(":"))
    end = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if end < now - dt.timedelta(hours=12):
        end += dt.timedelta(days=1)
    return (end - now).total_seconds()


def measured(cmd: list[str], log: Path, limit: float, grace: float = 600.0) -> dict[str, Any]:
    """Run `cmd`; after `limit` seconds send SIGINT (then wait up to `grace`, then kill)."""
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    capped, status, usage = False, None, None
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            break
        elapsed = time.perf_counter() - started
        if not capped and elapsed > limit:
            capped = True
            process.send_signal(signal.SIGINT)
        if capped and elapsed > limit + grace:
            process.kill()
        time.sleep(0.5)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"command": " ".join(cmd), "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "cpu_seconds":
            round(usage.ru_utime + usage.ru_stime, 1), "returncode": process.returncode,
            "capped": capped}


def train_child(args: list[str], progress: Path, cap: int) -> None:
    """`sine train` in this process, with the epoch bar replaced by a probe that writes the
    examples trained so far to `progress` (the bar is off without a terminal) and, past
    `cap` examples (0: none), stops the epoch as Ctrl-C does: the run is written with the
    weights so far, marked interrupted."""
    import trainer.fit

    # a process started in the background inherits SIGINT ignored: restore Ctrl-C
    signal.signal(signal.SIGINT, signal.default_int_handler)

    class Probe:
        def __init__(self, total: int, desc: str = "", **_: Any):
            self.total, self.desc, self.n, self.disable = total, desc, 0, True
            self.start = self.shown = time.perf_counter()

        def update(self, n: int) -> None:
            self.n += n
            if time.perf_counter() - self.shown > 5:
                self.write()
            if cap and self.n >= cap:
                self.write()
                raise KeyboardInterrupt

        def write(self) -> None:
            self.shown = time.perf_counter()
            progress.write_text(json.dumps({"epoch": self.desc, "examples": self.n, "total": self.total,
                                            "seconds": round(self.shown - self.start, 1)}))

        def set_postfix(self, **_: Any) -> None:
            pass

        def close(self) -> None:
            self.write()

    trainer.fit.tqdm = Probe
    from sine_cli.app import app
    sys.argv = ["sine", "train", *args]
    app()


def load_test(url: str, bodies: list[str], seconds: float, concurrency: int) -> dict[str, Any]:
    """Requests/s of POST /recommend from `concurrency` client coroutines (one process)."""
    import httpx

    latencies: list[float] = []
    errors = 0

    async def worker(client: httpx.AsyncClient, offset: int, end: float) -> None:
        nonlocal errors
        i = offset
        while time.perf_counter() < end:
            sent = time.perf_counter()
            r = await client.post("/recommend", content=bodies[i % len(bodies)],
                                  headers={"content-type": "application/json"})
            latencies.append(time.perf_counter() - sent)
            errors += r.status_code != 200
            i += concurrency

    async def main() -> float:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            await client.post("/recommend", content=bodies[0], headers={"content-type": "application/json"})
            start = time.perf_counter()
            await asyncio.gather(*(worker(client, k, start + seconds) for k in range(concurrency)))
            return time.perf_counter() - start

    elapsed = asyncio.run(main())
    latencies.sort()
    return {"requests": len(latencies), "errors": errors, "seconds": round(elapsed, 1),
            "requests_per_second": round(len(latencies) / elapsed, 1),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
            "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 2),
            "concurrency": concurrency}


def serve_stage(bundle: Path, seconds: float) -> dict[str, Any]:
    from harness.processes import ServiceProcess

    sys.path.insert(0, str(ROOT / "bench"))
    from serve_bench import request_bodies

    bodies = request_bodies(bundle, clicks=20, top_n=50, count=500)
    env = {"SINE_BUNDLE": str(bundle), "SINE_LOG_LEVEL": "warning", "SINE_ONNX_THREADS": "1",
           "SINE_FAISS_THREADS": "1", "SINE_RELOAD_POLL_SECONDS": "0"}
    server = ServiceProcess(env, cpu=0, ready="/readyz",
                            uvicorn_args=("--no-access-log", "--log-level", "warning"))
    started = time.perf_counter()
    server.start(timeout=600)
    load_seconds = time.perf_counter() - started
    try:
        status = Path(f"/proc/{server.process.pid}/status").read_text()
        rss_loaded = int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1])
        os.sched_setaffinity(0, {1})  # the client on the other core
        load = load_test(server.url, bodies, seconds, concurrency=8)
        status = Path(f"/proc/{server.process.pid}/status").read_text()
        peak = int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1])
    finally:
        server.stop()
    return {"load_seconds": round(load_seconds, 1), "rss_after_load_mb": round(rss_loaded / 1024, 1),
            "peak_rss_mb": round(peak / 1024, 1), **load}


def probe_summary(path: Path) -> dict[str, Any]:
    """Throughput of a training run from samples of its CPU ticks and examples trained."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("progress")]
    first, last = rows[0], rows[-1]
    examples = last["progress"]["examples"] - first["progress"]["examples"]
    cpu = (last["cpu_ticks"] - first["cpu_ticks"]) / os.sysconf("SC_CLK_TCK")
    wall = last["t"] - first["t"]
    return {"file": str(path), "examples": examples, "wall_seconds": wall, "cpu_seconds": round(cpu, 1),
            "examples_per_second": round(examples / wall, 1),
            "examples_per_cpu_second": round(examples / cpu, 1),
            "epoch_examples": last["progress"]["total"],
            "epoch_cpu_hours_projected": round(last["progress"]["total"] / (examples / cpu) / 3600, 2),
            "load_average": [float(r["load"]) for r in (first, last)]}


def du_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sine-scale"))
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--clicks", type=int, default=10_000_000)
    parser.add_argument("--deadline", default="00:50", help="UTC HH:MM by which every stage ends")
    parser.add_argument("--serve-seconds", type=float, default=30)
    parser.add_argument("--reserve", type=float, default=1200,
                        help="seconds kept for export, index and serving when training is capped")
    parser.add_argument("--train-args", default="--loss sampled --negatives 1024 --epochs 1 --dim 64 "
                        "--batch-size 1024 --threads 1 --eval-users 1000 --memory-budget 1G")
    parser.add_argument("--index-type", default="ivf")
    parser.add_argument("--train-examples", type=int, default=0,
                        help="stop the epoch after this many examples (0: the whole epoch)")
    parser.add_argument("--epoch-probe", type=Path, default=None,
                        help="JSON lines (t, cpu_ticks, progress) sampled from a longer training run "
                        "on the same data: its throughput is reported as well")
    parser.add_argument("--train-child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_child is not None:
        train_child(args.train_child[1:], Path(args.train_child[0]), args.train_examples)
        return

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    log_dir = work / "logs"
    log_dir.mkdir(exist_ok=True)
    report: dict[str, Any] = {"items": args.items, "clicks": args.clicks, "deadline_utc": args.deadline,
                              "argv": " ".join(sys.argv[1:]),
                              "load_average_start": os.getloadavg(), "stages": {},
                              "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}

    def save() -> None:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "scale_e2e.json").write_text(json.dumps(report, indent=2))
        (RESULTS / "scale_e2e.md").write_text(markdown(report))

    sine = [PYTHON, "-m", "sine_cli"]
    data = work / "log"
    if not (data / ".complete").exists():
        report["stages"]["generate"] = measured(
            [*sine, "synth", "--shape", "industrial", "--items", str(args.items), "--clicks",
             str(args.clicks), "--out", str(data)], log_dir / "generate.log", seconds_left(args.deadline))
        (data / ".complete").write_text("")
    else:
        report["stages"]["generate"] = json.loads((work / "generate.json").read_text())
    (work / "generate.json").write_text(json.dumps(report["stages"]["generate"]))
    report["log_mb"] = du_mb(data)
    save()

    run, progress = work / "run", work / "train-progress.json"
    limit = seconds_left(args.deadline) - args.reserve
    train = measured([PYTHON, str(Path(__file__).resolve()), "--train-examples", str(args.train_examples),
                      "--train-child", str(progress), "-d", str(data),
                      "-o", str(run), *args.train_args.split()], log_dir / "train.log", limit)
    if progress.exists():
        seen = json.loads(progress.read_text())
        train["examples_trained"] = seen["examples"]
        train["examples_per_epoch"] = seen["total"]
        train["epoch_seconds_measured"] = seen["seconds"]
        rate = seen["examples"] / max(seen["seconds"], 1e-9)
        train["examples_per_second"] = round(rate, 1)
        train["epoch_seconds"] = round(seen["total"] / rate, 1)
        train["epoch_seconds_projected"] = seen["examples"] < seen["total"]
    if (run / "metrics.json").exists():
        metrics = json.loads((run / "metrics.json").read_text())
        train["dataset"] = metrics["dataset"]
        train["test"] = metrics["test"]
        train["interrupted"] = metrics["interrupted"]
    report["stages"]["train"] = train
    if args.epoch_probe is not None and args.epoch_probe.exists():
        report["epoch_probe"] = probe_summary(args.epoch_probe)
    save()
    if not (run / "metrics.json").exists():
        return

    bundle = work / "bundle"
    report["stages"]["export"] = measured([*sine, "export", str(run), "--out", str(bundle)],
                                          log_dir / "export.log", seconds_left(args.deadline) - 300)
    report["bundle_mb"] = du_mb(bundle) if bundle.exists() else None
    save()
    if report["stages"]["export"]["returncode"] != 0:
        return
    index = measured([*sine, "build-index", str(bundle), "--type", args.index_type, "--threads", "1",
                      "--gpu", "off", "--force"], log_dir / "index.log",
                     seconds_left(args.deadline) - args.serve_seconds - 120, grace=30)
    try:
        from sine.bundle import read_bundle

        index["index"] = read_bundle(bundle).manifest.get("index")
    except Exception as exc:
        index["index_error"] = str(exc)
    report["stages"]["build_index"] = index
    report["indexed_bundle_mb"] = du_mb(bundle)
    save()
    report["stages"]["serve"] = serve_stage(bundle, args.serve_seconds)
    report["load_average_end"] = os.getloadavg()
    save()


def markdown(report: dict[str, Any]) -> str:
    stages = report["stages"]
    lines = [
        f"# End to end at {report['items']:,} items, {report['clicks']:,} clicks",
        "",
        f"Command: `{' '.join(filter(None, ['.venv/bin/python bench/scale_e2e.py', report.get('argv')]))}` "
        f"(started {report['started_utc']}, "
        f"load average at start {report['load_average_start'][0]:.1f} on this 2-core machine shared "
        "by several sessions; every stage is one process, peak RSS = its ru_maxrss).",
        "",
        "| stage | wall s | CPU s | peak RSS MB | notes |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, stage in stages.items():
        if name == "serve":
            continue
        note = "capped at the deadline" if stage.get("capped") else ""
        if name == "train" and "epoch_seconds" in stage:
            note += (f"; 1 epoch of {stage['examples_per_epoch']:,} examples: "
                     f"{stage['epoch_seconds']:,} s{' (projected from ' + format(stage['examples_trained'], ',') + ' examples trained)' if stage['epoch_seconds_projected'] else ''}, "  # noqa: E501
                     f"{stage['examples_per_second']:,} ex/s")
        if name == "build_index" and stage.get("index"):
            index = stage["index"]
            note += f"{index.get('type')}: recall {index.get('recall')}, " \
                    f"{index.get('latency', {}).get('batch1_p50_ms')} ms/query vs exact " \
                    f"{index.get('exact_latency', {}).get('batch1_p50_ms')} ms"
        lines.append(f"| {name} | {stage['seconds']} | {stage['cpu_seconds']} | {stage['peak_rss_mb']} | "
                     f"{note} |")
    lines += ["", f"Log on disk: {report.get('log_mb')} MB (Parquet, day= partitions); bundle: "
              f"{report.get('bundle_mb')} MB, with the index {report.get('indexed_bundle_mb')} MB."]
    if "serve" in stages:
        s = stages["serve"]
        lines += ["", f"Serving (one uvicorn worker on CPU 0, an httpx client with {s['concurrency']} "
                  f"concurrent requests on CPU 1, {s['seconds']} s): load time {s['load_seconds']} s, "
                  f"RSS after load {s['rss_after_load_mb']} MB (peak {s['peak_rss_mb']} MB), "
                  f"**{s['requests_per_second']} requests/s**, p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, "
                  f"{s['errors']} errors."]
    probe = report.get("epoch_probe")
    if probe:
        lines += ["", f"Training throughput, sampled over {probe['wall_seconds']} s of a longer run on the same "
                  f"data and settings (stopped by hand: a whole epoch does not fit this session): "
                  f"{probe['examples']:,} examples in {probe['cpu_seconds']} CPU s = "
                  f"**{probe['examples_per_cpu_second']:,} examples per CPU second** "
                  f"({probe['examples_per_second']} per wall second at load {probe['load_average']}); "
                  f"one epoch of {probe['epoch_examples']:,} examples projects to "
                  f"**{probe['epoch_cpu_hours_projected']} CPU hours** on one thread."]
    train = stages.get("train", {})
    if "test" in train:
        done = (f"{train['examples_trained']:,} training examples (interrupted)" if train.get("interrupted")
                else "1 epoch")
        lines += ["", f"Test metrics after {done} (sampled users): {json.dumps(train['test'])}"]
    for note in report.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
