"""User histories and click events: in-process, or in Redis shared by every replica.

Redis layout (every key starts with the configured prefix, ``sine:`` by default):

================================ ===================================================
``{prefix}history:{user_id}``    list of item ids, oldest first, capped (LTRIM)
``{prefix}events``               stream of clicks: fields user_id, item_id, timestamp
                                 (Unix seconds); the nightly retrain exports and trims
                                 it; capped at about SINE_EVENT_STREAM_MAXLEN entries
``{prefix}model:current``        the live bundle (path), set by the retrain job
``{prefix}model:reload``         pub/sub channel: a new live bundle was published
================================ ===================================================

(The unavailable-items set and its version counter: `service.core.availability`.)

A batch of events is written in one MULTI/EXEC transaction (history pushes, trims and
stream entries), so it is stored whole or not at all, and it is acknowledged only after
Redis answered.

Bounds: each history is capped (LTRIM); the stream is capped with XADD MAXLEN ~ (so a
retrain that stalls for days cannot run Redis out of memory; the oldest unexported
events are then lost, which the export reports, and `sine_event_stream_entries` lets
an alert fire well before: see the README). The in-process store keeps at most
`max_users` histories (least recently written dropped first) and `max_events` events.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
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
    stream_length: int | None  # events in the stream after the last write, when known

    async def histories(self, user_ids: list[str]) -> list[list[str]]: ...

    async def record(self, clicks: list[Click]) -> list[str]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryStore:
    """Process-local store for a laptop: histories and events vanish with the process."""

    kind = "memory"

    def __init__(self, history_cap: int, max_users: int = 100_000, max_events: int = 100_000):
        self.history_cap = history_cap
        self.max_users = max_users
        self.users: OrderedDict[str, deque[str]] = OrderedDict()  # least recently written first
        self.events: deque[tuple[str, Click]] = deque(maxlen=max_events)  # oldest dropped first
        self._sequence = 0
        self.stream_length: int | None = None

    async def histories(self, user_ids: list[str]) -> list[list[str]]:
        return [list(self.users.get(u, ())) for u in user_ids]

    async def record(self, clicks: list[Click]) -> list[str]:
        ids = []
        for click in clicks:
            history = self.users.get(click.user_id)
            if history is None:
                history = self.users[click.user_id] = deque(maxlen=self.history_cap)
                if len(self.users) > self.max_users:
                    self.users.popitem(last=False)
            else:
                self.users.move_to_end(click.user_id)
            history.append(click.item_id)
            self._sequence += 1
            event_id = f"{int(time.time() * 1000)}-{self._sequence}"
            self.events.append((event_id, click))
            ids.append(event_id)
        self.stream_length = len(self.events)
        return ids

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


class RedisStore:
    kind = "redis"

    def __init__(self, url: str, prefix: str, history_cap: int, timeout: float,
                 stream_maxlen: int = 10_000_000):
        import redis.asyncio as redis

        self.prefix = prefix
        self.history_cap = history_cap
        self.stream_maxlen = stream_maxlen
        self.stream_length: int | None = None  # after the last write (XLEN), for the gauge
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

    async def histories(self, user_ids: list[str]) -> list[list[str]]:
        """Several users' histories in one round trip (a pipeline, not a transaction)."""
        if not user_ids:
            return []
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for user in user_ids:
                    pipe.lrange(self.history_key(user), 0, -1)
                return list(await pipe.execute())
        except self._errors as exc:
            raise StoreUnavailable(str(exc)) from None

    async def record(self, clicks: list[Click]) -> list[str]:
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                for click in clicks:
                    pipe.xadd(self.stream_key, {"user_id": click.user_id, "item_id": click.item_id,
                                                "timestamp": repr(float(click.timestamp))},
                              maxlen=self.stream_maxlen, approximate=True)
                    pipe.rpush(self.history_key(click.user_id), click.item_id)
                for user in {c.user_id for c in clicks}:
                    pipe.ltrim(self.history_key(user), -self.history_cap, -1)
                pipe.xlen(self.stream_key)
                results = await pipe.execute()
        except self._errors as exc:
            raise StoreUnavailable(str(exc)) from None
        self.stream_length = int(results[-1])
        return [str(r) for r in results[0 : 2 * len(clicks) : 2]]

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except self._errors:
            return False

    async def close(self) -> None:
        await self.client.aclose()
