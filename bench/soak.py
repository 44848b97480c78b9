"""Sustained load: minutes at half the measured maximum, with faults and bad inputs.

    .venv/bin/python bench/soak.py --bundle bundles/video --minutes 10

1. Starts a throwaway Redis (append-only, fsync always) and one uvicorn worker pinned to
   CPU 0, and measures the maximum /recommend throughput with wrk (CPU 1).
2. Holds an open-loop load of --fraction (0.5) of that maximum from CPU 1 for --minutes:
   80 % /recommend (half with a user_id, so histories are read), 15 % /events, 5 % bad
   requests of a dozen kinds. Latency is measured from each request's scheduled start,
   so a stalled server cannot hide behind a slow client (no coordinated omission).
3. Midway, stops Redis for --outage seconds and starts it again.
4. Reports per minute: requests/s, p50/p99 latency, unexpected statuses, server RSS; and
   events acknowledged vs events in the stream afterwards (they must be equal).
Writes bench/results/soak.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serve_bench import LUA, request_bodies, start_server, wrk  # noqa: E402
from harness.processes import RedisProcess, free_port  # noqa: E402

BAD = [
    (b'{"clicks": "x"}', "application/json"),
    (b'{"top_n": 0}', "application/json"),
    (b'{"top_n": 5000}', "application/json"),
    (b'{"clicks": [1, 2', "application/json"),
    (b"\xff\xfe\xfd", "application/json"),
    (b'{"clicks": ["a"]}', "text/plain"),
    (b"[" * 3000 + b"]" * 3000, "application/json"),
    (b'{"clicks": ["a"], "extra": true}', "application/json"),
    (json.dumps({"clicks": ["a"] * 2000}).encode(), "application/json"),
    (b"", "application/json"),
    (b'{"user_id": ""}', "application/json"),
    (b'{"clicks": [null]}', "application/json"),
]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Connections:
    """A minimal keep-alive HTTP/1.1 client for the load (Content-Length bodies only).

    httpx spent about 2 ms of client CPU per request on a slow core, so the load generator
    itself saturated below the rate it had to hold, and its latencies measured itself.
    This one writes a prebuilt request and reads the status line, the headers and the
    body: tens of microseconds. A connection the server closes is replaced.
    """

    def __init__(self, port: int, size: int, timeout: float = 10.0):
        self.port, self.size, self.timeout = port, size, timeout
        self.idle: asyncio.Queue = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            self.idle.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))

    async def post(self, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        reader, writer = await self.idle.get()
        try:
            writer.write(f"POST {path} HTTP/1.1\r\nHost: soak\r\nContent-Type: {content_type}\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            async with asyncio.timeout(self.timeout):  # a stalled server counts as errors, not a hang
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
                status = int(head[9:12])
                length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
                data = await reader.readexactly(length)
        except BaseException:
            writer.close()
            self.idle.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))
            raise
        if "connection: close" in head:
            writer.close()
            self.idle.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))
        else:
            self.idle.put_nowait((reader, writer))
        return status, data


async def load(port: int, rate: float, seconds: float, bodies: list[str], items: list[str], users: int,
               record: dict, stop_event: asyncio.Event) -> None:
    client = Connections(port, 64)
    await client.open()
    start = time.perf_counter()
    tasks = set()
    n = 0
    while True:
        scheduled = start + n / rate
        if scheduled - start > seconds:
            break
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(client, scheduled, start, n, bodies, items, users, record))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    await asyncio.gather(*tasks)
    stop_event.set()


async def one(client: Connections, scheduled, start, n, bodies, items, users, record) -> None:
    roll = random.random()
    try:
        if roll < 0.80:
            body = bodies[n % len(bodies)]
            if n % 2:  # with a user id: the stored history is read and merged
                body = body[:-1] + f', "user_id": "soak-u{n % users}"}}'
            kind = "recommend"
            status, _ = await client.post("/recommend", body.encode())
            ok = status == 200
        elif roll < 0.95:
            kind = "events"
            event = {"user_id": f"soak-u{n % users}", "item_id": items[n % len(items)]}
            status, data = await client.post("/events", json.dumps(event).encode())
            ok = status in (200, 503)
            if status == 200:
                record["acknowledged"] += json.loads(data)["stored"]
            elif status == 503:
                record["events_refused"] += 1
        else:
            kind = "bad"
            content, content_type = BAD[n % len(BAD)]
            status, data = await client.post("/recommend", content, content_type)
            ok = 400 <= status < 500 and "error" in json.loads(data)
            record["bad_kinds"].add(n % len(BAD))
    except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
        kind, ok, status = "transport", False, type(exc).__name__
    latency = time.perf_counter() - scheduled
    minute = int((scheduled - start) // 60)
    bucket = record["minutes"].setdefault(minute, {"latency": [], "unexpected": 0, "requests": 0})
    bucket["requests"] += 1
    if kind == "recommend":
        bucket["latency"].append(latency)
    if not ok:
        bucket["unexpected"] += 1
        record["unexpected"].append(str(status))


async def outage(redis: RedisProcess, at: float, seconds: float, record: dict) -> None:
    await asyncio.sleep(at)
    record["fault"] = {"redis_stopped_at_s": at}
    await asyncio.to_thread(redis.stop)  # in a thread: the load goes on meanwhile
    await asyncio.sleep(seconds)
    await asyncio.to_thread(redis.start)
    record["fault"]["redis_down_s"] = seconds


async def sample_rss(pid: int, record: dict, stop_event: asyncio.Event) -> None:
    start = time.perf_counter()
    while not stop_event.is_set():
        record["rss"].append((time.perf_counter() - start, rss_kb(pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--outage", type=float, default=10, help="seconds Redis is down midway (0: none)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisProcess(Path(tmp))
        redis.start()
        port = free_port()
        server = start_server(args.bundle, port, 0, {"SINE_REDIS_URL": redis.url,
                                                     "SINE_REDIS_TIMEOUT_SECONDS": "0.3"})
        try:
            bodies = request_bodies(args.bundle, 20, 50)
            body_file = Path(tmp) / "bodies.jsonl"
            body_file.write_text("\n".join(bodies) + "\n")
            script = Path(tmp) / "post.lua"
            script.write_text(LUA % body_file)
            wrk(port, "/recommend", script, 5, 16, 1)
            maximum = wrk(port, "/recommend", script, 20, 16, 1)["requests_per_second"]
            rate = maximum * args.fraction
            print(f"maximum {maximum:,.0f} req/s; holding {rate:,.0f} req/s for {args.minutes} min", flush=True)
            items = json.loads((args.bundle / "items.json").read_text())
            record = {"acknowledged": 0, "events_refused": 0, "unexpected": [], "minutes": {}, "rss": [],
                      "bad_kinds": set()}
            seconds = args.minutes * 60

            async def run():
                stop_event = asyncio.Event()
                jobs = [load(port, rate, seconds, bodies, items, 5000, record, stop_event),
                        sample_rss(server.process.pid, record, stop_event)]
                if args.outage:
                    jobs.append(outage(redis, seconds / 2, args.outage, record))
                await asyncio.gather(*jobs)

            subprocess.run(["taskset", "-cp", "1", str(__import__("os").getpid())], capture_output=True)
            asyncio.run(run())
            import redis as redis_client

            stored = redis_client.Redis.from_url(redis.url).xlen("sine:events")
        finally:
            server.stop()
            redis.stop()
    minutes = []
    for minute, bucket in sorted(record["minutes"].items()):
        lat = np.array(bucket["latency"]) * 1e3
        minutes.append({"minute": minute, "requests_per_second": bucket["requests"] / 60,
                        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
                        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
                        "unexpected": bucket["unexpected"]})
    full = [m for m in minutes if m["requests_per_second"] > 0.5 * rate]
    rss = record["rss"]
    report = {
        "bundle": str(args.bundle), "max_requests_per_second": maximum, "held_requests_per_second": rate,
        "minutes": minutes, "fault": record.get("fault"), "bad_request_kinds": len(record["bad_kinds"]),
        "unexpected_statuses": dict(zip(*np.unique(record["unexpected"], return_counts=True), strict=True))
        if record["unexpected"] else {},
        "events_acknowledged": record["acknowledged"], "events_in_stream": stored,
        "events_refused_503": record["events_refused"],
        "p99_last_over_first": (full[-1]["p99_ms"] / full[0]["p99_ms"]) if len(full) > 1 else None,
        "rss_kb_first": rss[1][1] if len(rss) > 1 else None, "rss_kb_last": rss[-1][1] if rss else None,
    }
    if report["rss_kb_first"]:
        report["rss_growth"] = report["rss_kb_last"] / report["rss_kb_first"] - 1
    report["unexpected_statuses"] = {str(k): int(v) for k, v in report["unexpected_statuses"].items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(r: dict) -> str:
    fault = (f"Redis down {r['fault']['redis_down_s']:.0f} s at {r['fault']['redis_stopped_at_s']:.0f} s"
             if r["fault"] else "none")
    lines = [
        "| load held | faults injected | bad inputs tried | unexpected statuses | events acknowledged | "
        "events stored | p99 last/first minute | RSS growth |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |",
        f"| {r['held_requests_per_second']:,.0f} req/s "
        f"({r['held_requests_per_second'] / r['max_requests_per_second']:.0%} of "
        f"{r['max_requests_per_second']:,.0f}) for {len(r['minutes'])} min | {fault} "
        f"({r['events_refused_503']} events refused with 503 meanwhile) | {r['bad_request_kinds']} kinds | "
        f"{r['unexpected_statuses'] or 'none'} | {r['events_acknowledged']:,} | {r['events_in_stream']:,} | "
        f"{(r['p99_last_over_first'] or 0):.2f} | {r.get('rss_growth', 0):+.1%} |",
        "", "| minute | req/s | p50 ms | p99 ms | unexpected |", "| ---: | ---: | ---: | ---: | ---: |"]
    for m in r["minutes"]:
        lines.append(f"| {m['minute']} | {m['requests_per_second']:,.0f} | {m['p50_ms'] or 0:.2f} | "
                     f"{m['p99_ms'] or 0:.2f} | {m['unexpected']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
