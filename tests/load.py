"""A steady concurrent load on POST /recommend through a TestClient, for the swap tests."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoadResult:
    failures: list[object] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)


@contextlib.contextmanager
def steady_load(client: Any, clicks: list[str], threads: int = 3, top_n: int = 10) -> Iterator[LoadResult]:
    """Threads posting /recommend until the block ends. A failure is a transport error, a
    status other than 200 or fewer than `top_n` items; answered versions are collected."""
    result = LoadResult()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                answer = client.post("/recommend", json={"clicks": clicks, "top_n": top_n})
            except Exception as exc:  # a transport error is a failure too
                result.failures.append(repr(exc))
                continue
            if answer.status_code != 200 or len(answer.json()["items"]) != top_n:
                result.failures.append(answer.status_code)
            else:
                result.versions.add(answer.json()["model_version"])

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield result
    finally:
        stop.set()
        for worker in workers:
            worker.join()
