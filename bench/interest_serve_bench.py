"""Serving cost of retrieval "interests" (and explain) against "aggregate", in one run.

    .venv/bin/python bench/interest_serve_bench.py --bundle bundles/ml-100k   # needs wrk

One uvicorn worker pinned to CPU 0, wrk pinned to CPU 1 (as bench/serve_bench.py), the
same request bodies (real validation sequences topped up to 20 clicks, top_n 50) sent
with ``retrieval`` "aggregate", "interests" and "interests" + ``explain``, in interleaved
rounds (the order rotates each round). The figure is the server's CPU time per request:
the worker's user + system CPU seconds (/proc/PID/stat) over the run divided by the
requests answered. CPU time, unlike requests/s, is not lowered by other processes
sharing the core, which on the shared development machines they do. Writes
bench/results/interest_serve.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serve_bench import LUA, request_bodies, start_server, wrk  # noqa: E402
from sine.bundle import read_bundle  # noqa: E402

VARIANTS = {"aggregate": {}, "interests": {"retrieval": "interests"},
            "interests + explain": {"retrieval": "interests", "explain": True}}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its finished children waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True, help="a SINE bundle exported by this release")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--top-n", type=int, default=50)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "interest_serve.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt install wrk (or brew install wrk)")
    bundle = read_bundle(args.bundle)
    section = bundle.manifest.get("index") or {"type": "flat (none built)"}
    report = {"bundle": str(args.bundle), "items": bundle.num_items, "index": section["type"],
              "interests": bundle.manifest.get("hyperparameters", {}).get("interests"),
              "connections": args.connections, "clicks": args.clicks, "top_n": args.top_n,
              "seconds": args.seconds, "rounds": args.rounds,
              "load_before": os.getloadavg(), "runs": {name: [] for name in VARIANTS}}
    with tempfile.TemporaryDirectory() as tmp:
        base = [json.loads(b) for b in request_bodies(args.bundle, args.clicks, args.top_n)]
        scripts = {}
        for name, extra in VARIANTS.items():
            bodies = Path(tmp) / f"{len(scripts)}.jsonl"
            bodies.write_text("\n".join(json.dumps({**b, **extra}) for b in base) + "\n")
            scripts[name] = Path(tmp) / f"{len(scripts)}.lua"
            scripts[name].write_text(LUA % bodies)
        server = start_server(args.bundle, args.port, 0, {})
        try:
            pid = server.process.pid
            for name in VARIANTS:  # warm up every path
                wrk(args.port, "/recommend", scripts[name], 2, args.connections, 1)
            names = list(VARIANTS)
            for round_ in range(args.rounds):
                for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                    before = cpu_seconds(pid)
                    result = wrk(args.port, "/recommend", scripts[name], args.seconds, args.connections, 1)
                    result["cpu_seconds"] = cpu_seconds(pid) - before
                    result["cpu_ms_per_request"] = 1000 * result["cpu_seconds"] / max(result["requests"], 1)
                    report["runs"][name].append(result)
                    print(name, json.dumps(result), flush=True)
        finally:
            server.stop()
    report["load_after"] = os.getloadavg()
    summary = {}
    for name, runs in report["runs"].items():
        summary[name] = {key: statistics.median(r[key] for r in runs)
                         for key in ("cpu_ms_per_request", "requests_per_second", "p50_ms", "p99_ms")}
        summary[name]["errors"] = sum(r["non_2xx"] + r["socket_errors"] for r in runs)
    for name in summary:
        summary[name]["cpu_vs_aggregate"] = (summary[name]["cpu_ms_per_request"]
                                             / summary["aggregate"]["cpu_ms_per_request"])
    report["summary"] = summary
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    load = ", ".join(f"{x:.1f}" for x in report["load_before"])
    lines = [f"Bundle {report['bundle']} ({report['items']:,} items, {report['index']} index, "
             f"K={report['interests']}); {report['connections']} connections, {report['clicks']} clicks, "
             f"top_n {report['top_n']}; {report['rounds']} interleaved rounds of {report['seconds']} s, "
             f"medians. Load average before: {load} (2 cores). Target: interests at most 1.5x the "
             "aggregate CPU per request.", "",
             "| retrieval | server CPU ms / request | vs aggregate | req/s | p50 ms | p99 ms | errors |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, s in report["summary"].items():
        lines.append(f"| {name} | {s['cpu_ms_per_request']:.3f} | {s['cpu_vs_aggregate']:.2f}x | "
                     f"{s['requests_per_second']:,.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['errors']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
