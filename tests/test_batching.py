"""The request coalescer: concurrent submits share a batch, each gets its own answer."""

from __future__ import annotations

import asyncio

import pytest

from service.batching import Coalescer


def doubled(items):
    return [2 * item for item in items]


@pytest.mark.parametrize("in_thread", [False, True])
def test_concurrent_requests_share_batches_and_get_their_own_answers(in_thread):
    sizes = []

    def compute(items):
        sizes.append(len(items))
        return doubled(items)

    async def main():
        coalescer = Coalescer(compute, max_batch=8, in_thread=in_thread)
        try:
            return await asyncio.gather(*(coalescer.submit(i) for i in range(20)))
        finally:
            coalescer.close()

    assert asyncio.run(main()) == [2 * i for i in range(20)]
    assert sum(sizes) == 20 and max(sizes) <= 8
    assert len(sizes) < 20, "20 concurrent requests were computed one at a time"


def test_a_lone_request_is_answered_at_once():
    async def main():
        coalescer = Coalescer(doubled, max_batch=8)
        return await asyncio.wait_for(coalescer.submit(21), timeout=1), coalescer.batches

    assert asyncio.run(main()) == (42, 1)


def test_a_failing_batch_fails_its_requests_and_the_next_batch_works():
    def compute(items):
        if -1 in items:
            raise ValueError("bad batch")
        return doubled(items)

    async def main():
        coalescer = Coalescer(compute, max_batch=4)
        first = await asyncio.gather(coalescer.submit(-1), coalescer.submit(3), return_exceptions=True)
        second = await coalescer.submit(5)
        return first, second

    first, second = asyncio.run(main())
    assert all(isinstance(r, ValueError) for r in first)
    assert second == 10


def test_a_closed_coalescer_works_again_when_its_app_restarts():
    # an app's lifespan may run more than once (test clients): close() must not leave it dead
    async def main(coalescer):
        return await coalescer.run([1, 2]), await coalescer.submit(3)

    coalescer = Coalescer(doubled, max_batch=4)
    assert asyncio.run(main(coalescer)) == ([2, 4], 6)
    coalescer.close()
    assert asyncio.run(main(coalescer)) == ([2, 4], 6)
    coalescer.close()


def test_a_full_queue_is_computed_without_waiting_for_quiet_loop_turns():
    # under a flood every loop turn is long: a queue at its admission limit cannot grow,
    # so the drain must not wait `settle_turns` more turns before computing it
    turns = [0]
    seen_at = []

    def compute(items):
        seen_at.append(turns[0])
        return doubled(items)

    async def ticker():
        while True:
            turns[0] += 1
            await asyncio.sleep(0)

    async def main():
        tick = asyncio.get_running_loop().create_task(ticker())
        coalescer = Coalescer(compute, max_batch=64, in_thread=False, settle_turns=1000, max_waiting=4)
        try:
            return await asyncio.gather(*(coalescer.submit(i) for i in range(4)))
        finally:
            tick.cancel()

    assert asyncio.run(main()) == [0, 2, 4, 6]
    assert seen_at[0] < 10, f"computed after {seen_at[0]} loop turns"
