"""Redis memory per stored history entry and per event-stream entry, measured.

    SINE_TEST_REDIS_DB=14 .venv/bin/python bench/redis_footprint.py

Writes histories and stream entries the way service/store.py does (RPUSH + LTRIM to the
history cap; XADD with fields user_id, item_id, timestamp), with ids shaped like the
paper's catalogs (Amazon ASIN-like 10-character item ids, 12-digit user ids), and reads
`MEMORY USAGE` of each key (SAMPLES 0: every element counted) and the server's
used_memory before and after. Only keys under a bench prefix in the given DB are
written, and they are deleted at the end. docs/scaling.md (via bench/capacity.py)
turns these bytes into the Redis memory of a deployment.

Writes bench/results/redis_footprint.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sine.search import DEFAULT_HISTORY_CAP  # noqa: E402

PREFIX = "sine-bench-footprint:"


def _item(i: int) -> str:
    return f"B{i:09d}"


def measure(client, users: int, lengths: tuple[int, ...], stream_entries: int, cap: int) -> dict:
    rng = np.random.default_rng(0)
    out: dict = {"history_cap": cap, "histories": {}, "stream": {}}
    for length in lengths:
        keys = []
        before = client.info("memory")["used_memory"]
        pipe = client.pipeline(transaction=False)
        for u in range(users):
            key = f"{PREFIX}history:{100000000000 + u}"
            keys.append(key)
            pipe.rpush(key, *[_item(int(i)) for i in rng.integers(0, 25_000_000, size=length)])
            pipe.ltrim(key, -cap, -1)
        pipe.execute()
        after = client.info("memory")["used_memory"]
        usage = [client.memory_usage(k, samples=0) for k in keys[:200]]
        stored = min(length, cap)
        out["histories"][str(length)] = {
            "users": users, "entries_per_history": stored,
            "memory_usage_bytes_per_key": float(np.mean(usage)),
            "bytes_per_entry_memory_usage": float(np.mean(usage)) / stored,
            "used_memory_delta_per_key": (after - before) / users,
            "bytes_per_entry_used_memory": (after - before) / users / stored,
        }
        client.delete(*keys)
    key = f"{PREFIX}events"
    before = client.info("memory")["used_memory"]
    start = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for n in range(stream_entries):
        pipe.xadd(key, {"user_id": str(100000000000 + int(rng.integers(0, 10**9))),
                        "item_id": _item(int(rng.integers(0, 25_000_000))),
                        "timestamp": repr(1.7e9 + n * 0.01)})
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    seconds = time.perf_counter() - start
    after = client.info("memory")["used_memory"]
    usage = client.memory_usage(key, samples=0)
    out["stream"] = {"entries": stream_entries, "memory_usage_bytes": usage,
                     "xadd_per_second_one_client_pipelined": stream_entries / seconds,
                     "load1": os.getloadavg()[0],
                     "bytes_per_entry_memory_usage": usage / stream_entries,
                     "bytes_per_entry_used_memory": (after - before) / stream_entries}
    client.delete(key)
    out["redis_version"] = client.info("server")["redis_version"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="redis://127.0.0.1:6379")
    parser.add_argument("--db", type=int, default=int(os.environ.get("SINE_TEST_REDIS_DB", "14")))
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--stream-entries", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "redis_footprint.json")
    args = parser.parse_args()
    import redis

    client = redis.Redis.from_url(args.url, db=args.db, decode_responses=True)
    # histories as short as a new user's and as long as the cap (lists change encoding with size)
    result = measure(client, args.users, (5, 20, 50, DEFAULT_HISTORY_CAP), args.stream_entries,
                     DEFAULT_HISTORY_CAP)
    result["db"] = args.db
    args.out.write_text(json.dumps(result, indent=2))
    lines = [f"Redis {result['redis_version']}, DB {args.db}: MEMORY USAGE (SAMPLES 0) per key and the "
             "used_memory delta, written as service/store.py writes them (item ids like 'B000012345', "
             "user ids 12 digits).", "",
             "| what | entries per key | bytes/entry (MEMORY USAGE) | bytes/entry (used_memory delta) |",
             "| --- | ---: | ---: | ---: |"]
    for h in result["histories"].values():
        lines.append(f"| history list | {h['entries_per_history']} | {h['bytes_per_entry_memory_usage']:.1f} | "
                     f"{h['bytes_per_entry_used_memory']:.1f} |")
    s = result["stream"]
    lines.append(f"| event stream (user_id, item_id, timestamp) | {s['entries']:,} | "
                 f"{s['bytes_per_entry_memory_usage']:.1f} | {s['bytes_per_entry_used_memory']:.1f} |")
    lines += ["", f"XADD rate, one client, pipelines of 5,000 (Python, this 2-core machine, load "
              f"{s['load1']:.1f}): {s['xadd_per_second_one_client_pipelined']:,.0f} entries/s (a floor: "
              "the client, not Redis, is the bottleneck here)."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
