"""Admission benchmark: /recommend overloaded past SINE_MAX_WAITING, latency of the admitted.

    .venv/bin/python bench/admission_bench.py --bundle bundles/video

One uvicorn worker pinned to CPU 0; a closed-loop client pinned to CPU 1 keeps
`--connections` requests outstanding (far more than the service computes at once), so
the waiting limit is hit all the time. Refused requests (503 + Retry-After) come back at
once; the target is on the admitted ones: p99 within 3x p50. The client is asyncio on raw
keep-alive sockets, recording each request's status and latency (wrk reports one
latency distribution for every status together). Writes bench/results/admission.json
and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serve_bench import request_bodies, start_server  # noqa: E402


async def connection(port: int, bodies: list[bytes], offset: int, until: float, out: list,
                     backoff: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < until:
            body = bodies[i % len(bodies)]
            i += 1
            started = time.perf_counter()
            writer.write(b"POST /recommend HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            out.append((status, time.perf_counter() - started))
            if b"connection: close" in head.lower():
                break
            if status == 503 and backoff:  # a well-behaved client honours Retry-After
                await asyncio.sleep(1.0)
    finally:
        writer.close()


async def load(port: int, bodies: list[bytes], connections: int, seconds: float, backoff: bool) -> list:
    out: list = []
    until = time.perf_counter() + seconds
    await asyncio.gather(*(connection(port, bodies, k * 7, until, out, backoff) for k in range(connections)),
                         return_exceptions=True)
    return out


def summary(results: list, seconds: float) -> dict:
    admitted = np.array([t for s, t in results if s == 200]) * 1e3
    refused = np.array([t for s, t in results if s == 503]) * 1e3
    other = sum(1 for s, _ in results if s not in (200, 503))
    entry = {"admitted": len(admitted), "refused": len(refused), "other_status": other,
             "admitted_per_second": len(admitted) / seconds}
    if len(admitted):
        entry.update({f"admitted_{name}_ms": float(np.percentile(admitted, q))
                      for name, q in (("p50", 50), ("p90", 90), ("p99", 99))})
        entry["admitted_p99_over_p50"] = entry["admitted_p99_ms"] / entry["admitted_p50_ms"]
    if len(refused):
        entry["refused_p50_ms"] = float(np.percentile(refused, 50))
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--max-waiting", type=int, default=32)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--top-n", type=int, default=50)
    parser.add_argument("--no-backoff", dest="backoff", action="store_false",
                        help="retry a refused request at once instead of after Retry-After (worst case)")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "admission.json")
    args = parser.parse_args()
    bodies = [b.encode() for b in request_bodies(args.bundle, args.clicks, args.top_n)]
    server = start_server(args.bundle, args.port, 0, {"SINE_MAX_WAITING": str(args.max_waiting)})
    try:
        os.sched_setaffinity(0, {1})
        asyncio.run(load(args.port, bodies, args.connections, 3, args.backoff))  # warm up
        results = asyncio.run(load(args.port, bodies, args.connections, args.seconds, args.backoff))
    finally:
        server.stop()
    report = {"bundle": str(args.bundle), "connections": args.connections, "max_waiting": args.max_waiting,
              "clients_honour_retry_after": args.backoff,
              "seconds": args.seconds, "clicks": args.clicks, "top_n": args.top_n,
              **summary(results, args.seconds)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    r = report
    md = (f"Bundle {r['bundle']}; {r['connections']} connections against SINE_MAX_WAITING={r['max_waiting']}, "
          f"{r['seconds']:.0f} s, one pinned worker; clients honour Retry-After: "
          f"{r['clients_honour_retry_after']}.\n\n"
          "| admitted | refused (503) | other | admitted/s | p50 ms | p90 ms | p99 ms | p99/p50 |\n"
          "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
          f"| {r['admitted']} | {r['refused']} | {r['other_status']} | {r['admitted_per_second']:,.0f} | "
          f"{r.get('admitted_p50_ms', 0):.2f} | {r.get('admitted_p90_ms', 0):.2f} | "
          f"{r.get('admitted_p99_ms', 0):.2f} | {r.get('admitted_p99_over_p50', 0):.2f} |\n")
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
