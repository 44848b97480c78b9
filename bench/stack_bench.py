"""Serving through the container against serving on the host: the same bundle, one run.

    .venv/bin/python bench/stack_bench.py --bundle bundles/video      # needs wrk and the api image

Two servers of one bundle, started the same way (`sine serve`, one uvicorn worker, one
onnxruntime and one faiss thread, no Redis), each pinned to CPU 0: the api image of the
stack (`sine-api:latest`, `docker run --cpuset-cpus 0`, the port published on 127.0.0.1 as
compose does), and a process of this checkout's virtual environment. wrk runs on CPU 1
and alternates between them, round after round, so that both see the same machine; the
result is the ratio of the medians of /recommend requests/s (container / host).
Writes bench/results/stack.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serve_bench import LUA, request_bodies, wrk  # noqa: E402
from sine.bundle import read_bundle  # noqa: E402

SETTINGS = {"SINE_ONNX_THREADS": "1", "SINE_FAISS_THREADS": "1", "SINE_LOG_LEVEL": "warning",
            "SINE_RELOAD_POLL_SECONDS": "0"}


def wait_ready(port: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"no server became ready on port {port} within {timeout:.0f} s")


def start_host(bundle: Path, port: int) -> subprocess.Popen:
    sine = Path(sys.executable).parent / "sine"
    env = {**os.environ, **SETTINGS, "SINE_BUNDLE": str(bundle.resolve())}
    env.pop("SINE_REDIS_URL", None)
    log = open(Path(tempfile.gettempdir()) / "stack-bench-host.log", "w")  # noqa: SIM115
    process = subprocess.Popen(["taskset", "-c", "0", str(sine), "serve", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_ready(port)
    return process


def start_container(bundle: Path, port: int, image: str, extra: list[str]) -> str:
    settings = [arg for key, value in SETTINGS.items() for arg in ("-e", f"{key}={value}")]
    container = subprocess.run(
        ["docker", "run", "-d", "--rm", "--cpuset-cpus", "0", "--read-only", "--tmpfs", "/tmp",
         "-p", f"127.0.0.1:{port}:8000", "-v", f"{bundle.resolve()}:/srv/bundles/bench:ro",
         "-e", "SINE_BUNDLE=/srv/bundles/bench", *settings, *extra, image],
        capture_output=True, text=True, check=True).stdout.strip()
    wait_ready(port)
    return container


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True, help="an indexed bundle (sine build-index)")
    parser.add_argument("--image", default="sine-api:latest")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--top-n", type=int, default=50)
    parser.add_argument("--docker-arg", action="append", default=[], dest="docker_args",
                        help="extra `docker run` argument, e.g. --docker-arg=--cpu-shares=262144 (repeatable)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stack.json")
    args = parser.parse_args()
    for tool in ("wrk", "docker", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (Debian/Ubuntu: apt install wrk docker.io util-linux)")
    bundle = read_bundle(args.bundle)
    ports = {"host": 8811, "container": 8812}
    proxy = json.loads(Path("/etc/docker/daemon.json").read_text()).get("userland-proxy", True) \
        if Path("/etc/docker/daemon.json").exists() else True
    report = {"bundle": str(args.bundle), "items": bundle.num_items, "index": bundle.manifest["index"]["type"],
              "image": args.image, "docker_args": args.docker_args, "docker_userland_proxy": proxy,
              "connections": args.connections,
              "clicks": args.clicks, "top_n": args.top_n, "seconds": args.seconds,
              "runs": {"host": [], "container": []}}
    report["load_average"] = " ".join(Path("/proc/loadavg").read_text().split()[:3]) \
        if Path("/proc/loadavg").exists() else "unknown"
    host = container = None
    with tempfile.TemporaryDirectory() as tmp:
        bodies = Path(tmp) / "bodies.jsonl"
        bodies.write_text("\n".join(request_bodies(args.bundle, args.clicks, args.top_n)) + "\n")
        script = Path(tmp) / "post.lua"
        script.write_text(LUA % bodies)
        try:
            host = start_host(args.bundle, ports["host"])
            container = start_container(args.bundle, ports["container"], args.image, args.docker_args)
            order = ["host", "container"]
            for name in order:  # warm up
                wrk(ports[name], "/recommend", script, 3, args.connections, 1)
            for round_ in range(args.rounds):
                for name in (order if round_ % 2 == 0 else order[::-1]):
                    result = wrk(ports[name], "/recommend", script, args.seconds, args.connections, 1)
                    report["runs"][name].append(result)
                    print(name, json.dumps(result), flush=True)
        finally:
            if host is not None:
                host.terminate()
                host.wait(timeout=30)
            if container is not None:
                subprocess.run(["docker", "stop", "-t", "10", container], capture_output=True)
    for name, runs in report["runs"].items():
        report[name] = {key: statistics.median(r[key] for r in runs)
                        for key in ("requests_per_second", "p50_ms", "p99_ms")}
        report[name]["errors"] = sum(r["non_2xx"] + r["socket_errors"] for r in runs)
    report["ratio"] = report["container"]["requests_per_second"] / report["host"]["requests_per_second"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = [f"Bundle {report['bundle']} ({report['items']:,} items, {report['index']} index); "
             f"{report['connections']} connections, {report['clicks']} clicks, top_n {report['top_n']}; "
             f"server pinned to CPU 0, wrk to CPU 1; {len(report['runs']['host'])} alternating rounds of "
             f"{report['seconds']} s; docker userland proxy {'on' if report['docker_userland_proxy'] else 'off'}"
             f"{'; docker run ' + ' '.join(report['docker_args']) if report['docker_args'] else ''}; "
             f"load average at the start {report['load_average']}.",
             "", "| server | /recommend req/s (median) | p50 ms | p99 ms | errors |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name in ("host", "container"):
        r = report[name]
        lines.append(f"| {name} | {r['requests_per_second']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
                     f"| {r['errors']} |")
    lines += ["", f"Ratio container / host: **{report['ratio']:.2f}**."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
