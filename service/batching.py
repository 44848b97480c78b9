"""Coalescing concurrent /recommend requests into one encoder call and one index search.

No timer: while one batch is being computed (in a worker thread; onnxruntime and faiss
release the GIL), the requests that arrive queue up, and the next batch takes all of
them (up to `max_batch`). An idle service answers a lone request at once; a busy one
answers in batches that grow with the load, which is where batch encoding and batched
index search pay off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(self, compute: Callable[[Sequence[T]], Sequence[R]], max_batch: int):
        self.compute = compute
        self.max_batch = max_batch
        self.queue: list[tuple[T, asyncio.Future[R]]] = []
        self.draining = False
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sine-batch")
        self._task: asyncio.Task | None = None
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self.queue.append((item, future))
        if not self.draining:
            self.draining = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                batch, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
                self.batches += 1
                self.items += len(batch)
                try:
                    results = await loop.run_in_executor(self.executor, self.compute,
                                                         [item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self.draining = False

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
