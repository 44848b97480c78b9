"""Marking 1,000 items unavailable under load: how soon every replica stops serving them.

    .venv/bin/python bench/availability_bench.py --bundle bundles/video

Real processes: a throwaway redis-server and two service replicas (uvicorn, one worker
each, `harness.processes`) sharing it, both serving the bundle. Client threads post
/recommend (real validation click windows, top_n 50) to the replicas in turn without
pause. After a warm-up, the 1,000 items the replicas served most often are marked
unavailable with one `POST /admin/items` to the first replica; the load goes on. Then
they are marked available again.

Reported: requests failed (transport error or a status other than 200), and for each
replica the last moment, after the POST was sent, at which an answer still held a
marked item (by the time the request was sent) and how many requests sent more than
1 s after the POST was sent (the target: zero) or answered held one. Writes bench/results/availability.json/.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.processes import RedisProcess, ServiceProcess  # noqa: E402
from sine.bundle import read_bundle  # noqa: E402

TOKEN = "bench-token-0123456789"


def bodies_of(bundle_path: Path, count: int = 2000) -> list[dict]:
    bundle = read_bundle(bundle_path)
    return [{"clicks": [bundle.items[i - 1] for i in row if i > 0], "top_n": 50}
            for row in bundle.sample_queries()[:count] if (row > 0).any()]


class Load:
    """Threads posting /recommend to the replicas in turn; every answer is logged."""

    def __init__(self, urls: list[str], bodies: list[dict], threads: int):
        self.urls, self.bodies, self.threads = urls, bodies, threads
        self.log: list[tuple[int, float, float, list[str]]] = []  # replica, sent, received, items
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.workers = [threading.Thread(target=self.hammer, args=(t,)) for t in range(threads)]

    def hammer(self, number: int) -> None:
        rng = np.random.default_rng(number)
        with httpx.Client(timeout=10) as client:
            turn = number
            while not self.stop.is_set():
                replica = turn % len(self.urls)
                turn += 1
                body = self.bodies[int(rng.integers(len(self.bodies)))]
                sent = time.monotonic()
                try:
                    response = client.post(f"{self.urls[replica]}/recommend", json=body)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(repr(exc))
                    continue
                received = time.monotonic()
                if response.status_code != 200:
                    with self.lock:
                        self.failures.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                items = [i["item_id"] for i in response.json()["items"]]
                with self.lock:
                    self.log.append((replica, sent, received, items))

    def __enter__(self) -> Load:
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join()


def run(bundle: Path, threads: int, warmup: float, after: float, count: int, poll: float) -> dict:
    bodies = bodies_of(bundle)
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisProcess(Path(tmp), persist=False)
        redis.start()
        env = {"SINE_BUNDLE": str(bundle), "SINE_REDIS_URL": redis.url, "SINE_ADMIN_TOKEN": TOKEN,
               "SINE_AVAILABILITY_POLL_SECONDS": str(poll), "SINE_LOG_LEVEL": "warning"}
        replicas = [ServiceProcess(env, ready="/readyz"), ServiceProcess(env, ready="/readyz")]
        try:
            for replica in replicas:
                replica.start(timeout=120)
            urls = [r.url for r in replicas]
            auth = {"authorization": f"Bearer {TOKEN}"}
            with Load(urls, bodies, threads) as load:
                time.sleep(warmup)
                with load.lock:
                    served = collections.Counter(i for *_, items in load.log for i in items)
                marked = [item for item, _ in served.most_common(count)]
                if len(marked) < count:  # top up with popular items never served in the warm-up
                    popular = read_bundle(bundle)
                    order = np.argsort(-popular.popularity, kind="stable")
                    marked += [popular.items[r] for r in order if popular.items[r] not in set(marked)][
                        : count - len(marked)]
                posted = time.monotonic()
                response = httpx.post(f"{urls[0]}/admin/items", json={"unavailable": marked}, headers=auth,
                                      timeout=30)
                answered = time.monotonic()
                assert response.status_code == 200, response.text
                time.sleep(after)
                restored_at = time.monotonic()
                back = httpx.post(f"{urls[0]}/admin/items", json={"available": marked}, headers=auth, timeout=30)
                assert back.status_code == 200, back.text
                time.sleep(after)
        finally:
            for replica in replicas:
                replica.stop()
            redis.stop()
    marked_set = set(marked)
    per_replica = []
    for number in range(len(replicas)):
        entries = [e for e in load.log if e[0] == number]
        during = [e for e in entries if posted <= e[1] < restored_at]
        holding = [e for e in during if marked_set & set(e[3])]
        back_again = [e for e in entries if e[1] >= restored_at and marked_set & set(e[3])]
        per_replica.append({
            "replica": number,
            "requests": len(entries),
            "requests_before_post_with_marked": sum(1 for e in entries if e[1] < posted and marked_set & set(e[3])),
            "requests_while_unavailable": len(during),
            "last_marked_served_after_post_s": (max(e[1] for e in holding) - posted) if holding else None,
            "requests_sent_1s_after_post_with_marked": sum(1 for e in holding if e[1] >= posted + 1.0),
            "requests_sent_1s_after_answer_with_marked": sum(1 for e in holding if e[1] >= answered + 1.0),
            "first_marked_served_after_restore_s": (min(e[1] for e in back_again) - restored_at)
            if back_again else None,
        })
    seconds = max(e[2] for e in load.log) - min(e[1] for e in load.log)
    return {
        "bundle": str(bundle), "replicas": len(replicas), "threads": threads, "marked": len(marked),
        "post_seconds": answered - posted, "poll_seconds": poll, "requests": len(load.log),
        "requests_per_second": len(load.log) / seconds, "failed": len(load.failures),
        "failures": load.failures[:10], "per_replica": per_replica,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
    }


def markdown(reports: list[dict]) -> str:
    first = reports[0]
    lines = [
        f"{first['marked']:,} items marked unavailable with one `POST /admin/items` while {first['threads']} "
        f"client threads load {first['replicas']} service replicas (uvicorn, one worker each, real processes, "
        f"one throwaway Redis) with /recommend (top_n 50, real validation sequences) on `{first['bundle']}`; "
        f"SINE_AVAILABILITY_POLL_SECONDS={first['poll_seconds']}; {len(reports)} runs, each with fresh "
        "processes. Replica 0 gets the POST, replica 1 learns of it from Redis (the pub/sub announcement, "
        "or its poll). Times are by when a request was sent.",
        "",
        "| run | replica | requests (failed: run total) | req/s | POST took, s | requests while unavailable "
        "| last marked item served, s after the POST was sent | requests sent > 1 s after the POST was sent "
        "with a marked item | ... > 1 s after it was answered | marked available again: first served after, s "
        "| load average |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for run_number, report in enumerate(reports, 1):
        for r in report["per_replica"]:
            last = r["last_marked_served_after_post_s"]
            again = r["first_marked_served_after_restore_s"]
            lines.append(
                f"| {run_number} | {r['replica']} | {r['requests']:,} ({report['failed']}) "
                f"| {report['requests_per_second']:.0f} | {report['post_seconds']:.3f} "
                f"| {r['requests_while_unavailable']:,} | {'none' if last is None else f'{last:.3f}'} "
                f"| {r['requests_sent_1s_after_post_with_marked']} | {r['requests_sent_1s_after_answer_with_marked']} "
                f"| {'none' if again is None else f'{again:.3f}'} "
                f"| {', '.join(f'{x:.1f}' for x in report['machine']['load_average'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--after", type=float, default=5.0, help="Seconds of load after each POST.")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--poll", type=float, default=0.5, help="SINE_AVAILABILITY_POLL_SECONDS.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    reports = [run(args.bundle, args.threads, args.warmup, args.after, args.count, args.poll)
               for _ in range(args.runs)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "availability.json").write_text(json.dumps(reports, indent=2))
    (args.out / "availability.md").write_text(markdown(reports))
    print(markdown(reports))


if __name__ == "__main__":
    main()
