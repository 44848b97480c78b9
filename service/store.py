"""User histories and click events: in-process, or in Redis shared by every replica.

Redis layout (every key starts with the configured prefix, ``sine:`` by default):

================================ ===================================================
``{prefix}history:{user_id}``    list of item ids, oldest first, capped (LTRIM)
``{prefix}events``               stream of clicks: fields user_id, item_id, timestamp;
                                 the nightly retrain exports and trims it
``{prefix}model:current``        the live bundle (path), set by the retrain job
``{prefix}model:reload``         pub/sub channel: a new live bundle was published
================================ ===================================================

A batch of events is written in one MULTI/EXEC transaction (history pushes, trims and
stream entries), so it is stored whole or not at all, and it is acknowledged only after
Redis answered.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Protocol


class StoreUnavailable(Exception):
    """The history store (Redis) does not answer."""


@dataclass
class Click:
    user_id: str
    item_id: str
    timestamp: float


class HistoryStore(Protocol):
    kind: str

    async def history(self, user_id: str) -> list[str]: ...

    async def record(self, clicks: list[Click]) -> list[str]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryStore:
    """Process-local store for a laptop: histories and events vanish with the process."""

    kind = "memory"

    def __init__(self, history_cap: int):
        self.histories: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=history_cap))
        self.events: list[tuple[str, Click]] = []
        self._sequence = 0

    async def history(self, user_id: str) -> list[str]:
        return list(self.histories.get(user_id, ()))

    async def record(self, clicks: list[Click]) -> list[str]:
        ids = []
        for click in clicks:
            self.histories[click.user_id].append(click.item_id)
            self._sequence += 1
            event_id = f"{int(time.time() * 1000)}-{self._sequence}"
            self.events.append((event_id, click))
            ids.append(event_id)
        return ids

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


class RedisStore:
    kind = "redis"

    def __init__(self, url: str, prefix: str, history_cap: int, timeout: float):
        import redis.asyncio as redis

        self.prefix = prefix
        self.history_cap = history_cap
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True,
            health_check_interval=10, retry_on_timeout=False,
        )
        from redis.exceptions import RedisError

        self._errors = (RedisError, OSError, TimeoutError)

    def history_key(self, user_id: str) -> str:
        return f"{self.prefix}history:{user_id}"

    @property
    def stream_key(self) -> str:
        return f"{self.prefix}events"

    async def history(self, user_id: str) -> list[str]:
        try:
            return await self.client.lrange(self.history_key(user_id), 0, -1)
        except self._errors as exc:
            raise StoreUnavailable(str(exc)) from None

    async def record(self, clicks: list[Click]) -> list[str]:
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                for click in clicks:
                    pipe.xadd(self.stream_key, {"user_id": click.user_id, "item_id": click.item_id,
                                                "timestamp": repr(float(click.timestamp))})
                    pipe.rpush(self.history_key(click.user_id), click.item_id)
                for user in {c.user_id for c in clicks}:
                    pipe.ltrim(self.history_key(user), -self.history_cap, -1)
                results = await pipe.execute()
        except self._errors as exc:
            raise StoreUnavailable(str(exc)) from None
        return [str(r) for r in results[0 : 2 * len(clicks) : 2]]

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except self._errors:
            return False

    async def close(self) -> None:
        await self.client.aclose()
