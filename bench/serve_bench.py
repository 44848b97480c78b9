"""Serving benchmark: POST /recommend against the same app's trivial endpoint, in one run.

    .venv/bin/python bench/serve_bench.py --bundle bundles/video       # needs wrk (apt install wrk)

One uvicorn worker pinned to CPU 0, wrk pinned to CPU 1, loopback only, bounded
duration. Each variant (batching on/off, ...) starts a fresh server and alternates runs
of the trivial endpoint POST /_static (a precomputed 50-item answer: the ceiling of the
HTTP stack) with runs of POST /recommend (20 clicks, top_n 50), so the model's cost is a
ratio measured under the same conditions. Then it runs /recommend again while
/admin/reload swaps between two bundle versions every second, and counts failures.
Writes bench/results/serve.json and .md.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.processes import ServiceProcess  # noqa: E402
from sine.bundle import read_bundle  # noqa: E402

LUA = """
local bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""


def request_bodies(bundle_path: Path, clicks: int, top_n: int, count: int = 2000) -> list[str]:
    """Real validation sequences, topped up to `clicks` clicks with popular items."""
    bundle = read_bundle(bundle_path)
    rng = np.random.default_rng(0)
    p = bundle.popularity / bundle.popularity.sum()
    bodies = []
    for row in bundle.sample_queries()[:count]:
        real = [bundle.items[i - 1] for i in row if i > 0]
        extra = [bundle.items[i] for i in rng.choice(bundle.num_items, clicks, p=p)]
        sequence = (extra + real)[-clicks:]
        bodies.append(json.dumps({"clicks": sequence, "top_n": top_n}))
    return bodies


def start_server(bundle: Path, port: int, cpu: int, env_extra: dict[str, str]) -> ServiceProcess:
    """One uvicorn worker pinned to `cpu`, ready when the bundle is loaded."""
    env = {"SINE_BUNDLE": str(bundle), "SINE_STATIC_ENDPOINT": "true",
           "SINE_LOG_LEVEL": "warning", "SINE_ONNX_THREADS": "1", "SINE_FAISS_THREADS": "1",
           "SINE_ADMIN_TOKEN": "bench", "SINE_RELOAD_POLL_SECONDS": "0", **env_extra}
    server = ServiceProcess(env, cpu=cpu, port=port, ready="/readyz",
                            uvicorn_args=("--no-access-log", "--log-level", "warning"))
    server.start(timeout=30)
    return server


def wrk(port: int, path: str, script: Path, seconds: int, connections: int, cpu: int) -> dict:
    out = subprocess.run(["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
                          "--latency", "-s", str(script), f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    def ms(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": ms("50%"), "p90_ms": ms("90%"), "p99_ms": ms("99%"),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": sum(map(int, socket.groups())) if socket else 0,
    }


def reload_loop(port: int, bundles: list[Path], seconds: float) -> int:
    swaps, end, i = 0, time.time() + seconds, 0
    while time.time() < end:
        i += 1
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/admin/reload", method="POST",
            data=json.dumps({"bundle": str(bundles[i % 2])}).encode(),
            headers={"authorization": "Bearer bench", "content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            swaps += json.loads(r.read())["changed"]
        time.sleep(1.0)
    return swaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True, help="an indexed bundle (sine build-index)")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--top-n", type=int, default=50)
    parser.add_argument("--variants", nargs="+", default=["batching", "batching-loop", "no-batching"],
                        help="batching: coalesced, computed in a worker thread (the default); "
                        "batching-loop: coalesced, computed on the event loop; no-batching: one "
                        "request at a time")
    parser.add_argument("--compare-bundles", type=Path, nargs="*", default=[],
                        help="the same model with other indexes (e.g. sine build-index --type flat "
                        "--out ...), each run with batching")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt install wrk (or brew install wrk)")
    bundle = read_bundle(args.bundle)
    report = {"bundle": str(args.bundle), "items": bundle.num_items,
              "index": {k: bundle.manifest["index"][k] for k in ("type", "build", "search", "recall")},
              "connections": args.connections, "clicks": args.clicks, "top_n": args.top_n,
              "seconds": args.seconds, "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        bodies = Path(tmp) / "bodies.jsonl"
        bodies.write_text("\n".join(request_bodies(args.bundle, args.clicks, args.top_n)) + "\n")
        script = Path(tmp) / "post.lua"
        script.write_text(LUA % bodies)
        twin = Path(tmp) / "twin"  # a second version of the same bundle, for the swap test
        shutil.copytree(args.bundle, twin)
        manifest = json.loads((twin / "manifest.json").read_text())
        manifest["version"] += "-twin"
        (twin / "manifest.json").write_text(json.dumps(manifest))
        plan = [(variant, args.bundle) for variant in args.variants]
        plan += [(f"batching, {index_of(other)['type']} index", other) for other in args.compare_bundles]
        for variant, bundle_path in plan:
            env = {"SINE_BATCHING": "false" if variant == "no-batching" else "true",
                   "SINE_BATCH_IN_THREAD": "false" if variant == "batching-loop" else "true"}
            server = start_server(bundle_path, args.port, 0, env)
            try:
                wrk(args.port, "/_static", script, 3, args.connections, 1)  # warm up
                wrk(args.port, "/recommend", script, 3, args.connections, 1)
                runs = {"static": [], "recommend": []}
                for _ in range(args.rounds):
                    runs["static"].append(wrk(args.port, "/_static", script, args.seconds,
                                              args.connections, 1))
                    runs["recommend"].append(wrk(args.port, "/recommend", script, args.seconds,
                                                 args.connections, 1))
                entry = summarize(runs)
                if variant == plan[0][0]:
                    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                            "from bench.serve_bench import reload_loop; from pathlib import Path; "
                            f"print(reload_loop({args.port}, [Path({str(args.bundle)!r}), "
                            f"Path({str(twin)!r})], {args.seconds - 2}))")
                    swap = subprocess.Popen([sys.executable, "-c", code],
                        stdout=subprocess.PIPE, text=True)
                    during = wrk(args.port, "/recommend", script, args.seconds, args.connections, 1)
                    swaps = int(swap.communicate()[0].strip() or 0)
                    entry["during_reloads"] = {**during, "swaps": swaps}
                entry["index"] = index_of(bundle_path)
                report["variants"][variant] = entry
            finally:
                server.stop()
            print(json.dumps({variant: report["variants"][variant]}, indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def index_of(bundle_path: Path) -> dict:
    section = read_bundle(bundle_path).manifest["index"]
    return {"type": section["type"], "search": section.get("search"),
            "recall@50": section["recall"].get("recall@50")}


def summarize(runs: dict[str, list[dict]]) -> dict:
    out: dict = {"runs": runs}
    for name, results in runs.items():
        out[name] = {key: statistics.median(r[key] for r in results)
                     for key in ("requests_per_second", "p50_ms", "p90_ms", "p99_ms")}
        out[name]["errors"] = sum(r["non_2xx"] + r["socket_errors"] for r in results)
    out["ratio"] = out["recommend"]["requests_per_second"] / out["static"]["requests_per_second"]
    out["p99_over_p50"] = out["recommend"]["p99_ms"] / out["recommend"]["p50_ms"]
    return out


def markdown(report: dict) -> str:
    lines = [f"Bundle {report['bundle']} ({report['items']:,} items, {report['index']['type']} index, "
             f"recall@50 {report['index']['recall'].get('recall@50', 0):.4f}); {report['connections']} "
             f"connections, {report['clicks']} clicks, top_n {report['top_n']}.", "",
             "| variant | index (recall@50) | static req/s | /recommend req/s | ratio | p50 ms | p90 ms | "
             "p99 ms | p99/p50 | errors | during reloads: req/s, errors, swaps |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for variant, e in report["variants"].items():
        r = e["recommend"]
        swap = e.get("during_reloads")
        swap_text = (f"{swap['requests_per_second']:,.0f}, {swap['non_2xx'] + swap['socket_errors']}, "
                     f"{swap['swaps']}") if swap else ""
        index = e.get("index") or {"type": report["index"]["type"], "recall@50": 0.0}
        lines.append(f"| {variant} | {index['type']} ({index['recall@50']:.4f}) | "
                     f"{e['static']['requests_per_second']:,.0f} | "
                     f"{r['requests_per_second']:,.0f} | "
                     f"{e['ratio']:.2f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{e['p99_over_p50']:.2f} | {r['errors'] + e['static']['errors']} | {swap_text} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
