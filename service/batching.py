"""Coalescing concurrent /recommend requests into one encoder call and one index search.

No timer. The first request to arrive starts a drain task; before each batch the task
yields to the event loop until no more requests join the queue (requests already being
parsed get their turn), then computes everything queued (up to `max_batch`) at once. An
idle service answers a lone request after a few idle loop turns (microseconds); a busy
one answers in batches that grow with the load, which is where batch encoding and
batched index search pay off.

By default the batch is computed in one worker thread: onnxruntime and faiss release the
GIL, so the loop goes on parsing the next requests meanwhile, which overlaps on a worker
with a spare core or a GPU. `in_thread=False` computes on the event loop itself; on one
core the two measured the same (bench/serve_bench.py: 0.63 and 0.66 of the trivial
endpoint's requests/s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(self, compute: Callable[[Sequence[T]], Sequence[R]], max_batch: int,
                 in_thread: bool = True, settle_turns: int = 2):
        self.compute = compute
        self.max_batch = max_batch
        self.settle_turns = settle_turns
        self.queue: list[tuple[T, asyncio.Future[R]]] = []
        self.draining = False
        self.executor = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="sine-batch")
                         if in_thread else None)
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

    async def _settle(self) -> None:
        """Yield to the loop until the queue stops growing for `settle_turns` turns."""
        quiet = 0
        while quiet < self.settle_turns and len(self.queue) < self.max_batch:
            size = len(self.queue)
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self.queue) == size else 0

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                await self._settle()
                batch, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
                self.batches += 1
                self.items += len(batch)
                items = [item for item, _ in batch]
                try:
                    if self.executor is None:
                        results = self.compute(items)
                    else:
                        results = await loop.run_in_executor(self.executor, self.compute, items)
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
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
