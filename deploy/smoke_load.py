"""A light, bounded load on POST /recommend for the stack test (deploy/smoke.sh).

Standard library only (it runs with the host's python3, no project install). Sends
requests from a few threads at a steady pace to a loopback address until the stop file
appears or the time limit passes, and writes what it saw as JSON: requests sent, answers
that were not 200 (or not a full list of items), connection errors, and the model
versions that answered, in order of first appearance.

    python3 deploy/smoke_load.py --port 18000 --out load.json --stop-file stop \\
        --clicks i1 i2 i3 [--threads 2 --rate 20 --max-seconds 900]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stop-file", type=Path, required=True)
    parser.add_argument("--clicks", nargs="+", required=True)
    parser.add_argument("--top-n", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second, all threads")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()

    url = f"http://127.0.0.1:{args.port}/recommend"
    body = json.dumps({"clicks": args.clicks, "top_n": args.top_n}).encode()
    lock = threading.Lock()
    seen: dict = {"sent": 0, "ok": 0, "failed": 0, "errors": [], "versions": []}
    deadline = time.monotonic() + args.max_seconds
    pause = args.threads / args.rate

    def record(ok: bool, version: str | None = None, error: str | None = None) -> None:
        with lock:
            seen["sent"] += 1
            seen["ok" if ok else "failed"] += 1
            if error and len(seen["errors"]) < 20:
                seen["errors"].append(error)
            if version and version not in seen["versions"]:
                seen["versions"].append(version)

    def worker() -> None:
        while not args.stop_file.exists() and time.monotonic() < deadline:
            started = time.monotonic()
            request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    payload = json.load(answer)
                full = len(payload["items"]) == args.top_n
                record(full, payload["model_version"], None if full else f"{len(payload['items'])} items")
            except urllib.error.HTTPError as exc:
                record(False, error=f"HTTP {exc.code}: {exc.read()[:200]!r}")
            except Exception as exc:  # connection refused / reset / timeout: a failed request
                record(False, error=f"{type(exc).__name__}: {exc}")
            time.sleep(max(0.0, pause - (time.monotonic() - started)))

    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen["capped"] = time.monotonic() >= deadline
    args.out.write_text(json.dumps(seen, indent=2))


if __name__ == "__main__":
    main()
