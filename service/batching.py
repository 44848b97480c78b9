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

Admission: at most `max_waiting` requests wait for a batch (queued, not yet being
computed). One more is refused at once with `Overloaded` (the API answers 503 with
Retry-After) instead of queueing without bound: under overload the admitted requests
keep a bounded wait, and the caller learns at once to retry elsewhere or later.

`run` computes a whole batch (POST /recommend/batch) in the same worker thread, so
the event loop never computes and the index is searched by one thread at a time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Overloaded(Exception):
    """Too many requests are waiting for the encoder and index: refuse, do not queue."""

    def __init__(self, waiting: int, limit: int):
        super().__init__(f"the service is overloaded: {waiting} requests are waiting for the model "
                         f"(at most {limit}, SINE_MAX_WAITING); retry shortly")
        self.waiting, self.limit = waiting, limit


class Coalescer(Generic[T, R]):
    def __init__(self, compute: Callable[[Sequence[T]], Sequence[R]], max_batch: int,
                 in_thread: bool = True, settle_turns: int = 2, max_waiting: int | None = None):
        self.compute = compute
        self.max_batch = max_batch
        self.settle_turns = settle_turns
        self.max_waiting = max_waiting
        self.queue: list[tuple[T, asyncio.Future[R]]] = []
        self.draining = False
        self.in_thread = in_thread
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None
        self.batches = 0
        self.items = 0
        self.waiting_in_runs = 0  # items of whole batches admitted but not yet started
        self._runs_lock = threading.Lock()  # the worker thread decrements it

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The worker thread; whole batches (`run`) use it even when coalesced ones do not.

        Made on first use and again after `close`, so an app whose lifespan runs more
        than once (test clients) gets a working one each time.
        """
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sine-batch")
        return self._executor

    @property
    def waiting(self) -> int:
        """Requests admitted and not yet being computed."""
        return len(self.queue) + self.waiting_in_runs

    def admit(self) -> None:
        if self.max_waiting is not None and self.waiting >= self.max_waiting:
            raise Overloaded(self.waiting, self.max_waiting)

    async def run(self, items: Sequence[T]) -> Sequence[R]:
        """Compute `items` as one batch in the worker thread (admitted like one request)."""
        self.admit()
        with self._runs_lock:
            self.waiting_in_runs += len(items)
        counted = [True]

        def started() -> None:  # exactly once: when the worker takes it, or when abandoned
            with self._runs_lock:
                if counted[0]:
                    counted[0] = False
                    self.waiting_in_runs -= len(items)

        def job() -> Sequence[R]:
            started()
            return self.compute(items)

        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, job)
        finally:
            started()

    async def submit(self, item: T) -> R:
        self.admit()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self.queue.append((item, future))
        if not self.draining:
            self.draining = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _settle(self) -> None:
        """Yield to the loop until the queue stops growing for `settle_turns` turns.

        A full queue cannot grow (a batch's worth, or the admission limit): no waiting
        then. Under a flood of requests a loop turn is long, and settling turns would
        delay every admitted request by several of them.
        """
        full = min(self.max_batch, self.max_waiting or self.max_batch)
        quiet = 0
        while quiet < self.settle_turns and len(self.queue) < full:
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
                    if not self.in_thread:
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
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
