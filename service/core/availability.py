"""Items that must not be served right now (out of stock, withdrawn), between retrains.

The set of unavailable raw item ids lives in Redis, shared by every replica and kept
across restarts; without Redis it lives in the process (one replica, lost at restart):

====================================== =================================================
``{prefix}items:unavailable``          set of raw item ids not to serve
``{prefix}items:unavailable:version``  counter, incremented with every change
====================================== =================================================

`POST /admin/items` changes both in one MULTI/EXEC and announces the change on the
pub/sub channel ``{prefix}items:changed``; an operator may also write the set directly
(``SADD``/``SREM``, then ``INCR`` the version). Every replica reads the set again (SSCAN,
in pages) as soon as an announcement arrives, and otherwise polls the version and the
set's size every `SINE_AVAILABILITY_POLL_SECONDS` (0.5 s) with one pipelined round trip,
reading the set when either changed, and regardless every `FULL_READ_SECONDS` (a direct
SADD + SREM of the same count, without INCR, changes neither). So a change reaches every
replica within one read of the announcement, or one poll interval when the
announcement is lost (pub/sub does not queue), with no reload. The ids are raw ids, so any bundle, a retrained
one included, is filtered by the same set (`rows_for`); ids the bundle does not know
are ignored. While Redis does not answer, the last set read keeps applying.

Bounds: at most `SINE_MAX_UNAVAILABLE` ids (a write that would pass it is refused; a
larger set written directly is read up to the bound, with an error in the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Iterable

import numpy as np

log = logging.getLogger("sine.service")

FULL_READ_SECONDS = 30.0
SCAN_PAGE = 10_000


class TooMany(Exception):
    """The set would pass its bound (`SINE_MAX_UNAVAILABLE`)."""


class Availability:
    def __init__(self, client=None, prefix: str = "sine:", poll_seconds: float = 0.5,
                 max_items: int = 1_000_000):
        self.client = client  # redis.asyncio.Redis (decode_responses=True), or None: in-process
        self.key = f"{prefix}items:unavailable"
        self.version_key = f"{prefix}items:unavailable:version"
        self.channel = f"{prefix}items:changed"
        self.poll_seconds = poll_seconds
        self.max_items = max_items
        self.ids: frozenset[str] = frozenset()
        self.tag = 0  # counts the changes this replica has seen: caches are keyed by it
        self.read_at: float | None = None  # monotonic time of the last successful read
        self._seen: tuple | None = None  # (version, size) at the last read
        self._readable = True
        self._rows: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @property
    def kind(self) -> str:
        return "memory" if self.client is None else "redis"

    def _set(self, ids: Iterable[str]) -> None:
        ids = frozenset(ids)
        if ids != self.ids:
            self.ids = ids
            self.tag += 1

    # ------------------------------------------------------------------ reading

    async def refresh(self, force: bool = False) -> bool:
        """Read the set if it changed (or `force`); True when this replica's set changed.

        Raises the client's error when Redis does not answer (the watcher logs it)."""
        if self.client is None:
            return False
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(self.version_key)
            pipe.scard(self.key)
            version, size = await pipe.execute()
        seen = (version, int(size))
        if not force and seen == self._seen:
            self.read_at = time.monotonic()
            return False
        ids: list[str] = []
        async for member in self.client.sscan_iter(self.key, count=SCAN_PAGE):
            ids.append(member)
            if len(ids) >= self.max_items:
                log.error("%s holds more than SINE_MAX_UNAVAILABLE=%d ids: only the first %d are "
                          "applied", self.key, self.max_items, self.max_items)
                break
        before = self.tag
        self._set(ids)
        self._seen = seen
        self.read_at = time.monotonic()
        return self.tag != before

    async def watch(self) -> None:
        """Follow announcements and poll until cancelled; a Redis outage is logged once and
        keeps the last set."""
        if self.client is None:
            return
        pubsub = None
        last_full = time.monotonic()
        try:
            while True:
                announced = False
                try:
                    if pubsub is None:
                        pubsub = self.client.pubsub()
                        await pubsub.subscribe(self.channel)
                    # wakes at an announcement, or after one poll interval
                    announced = await pubsub.get_message(ignore_subscribe_messages=True,
                                                         timeout=self.poll_seconds) is not None
                except asyncio.CancelledError:
                    raise
                except Exception:  # no pub/sub now: poll, and subscribe again next time
                    pubsub = await _close(pubsub)
                    await asyncio.sleep(self.poll_seconds)
                full = time.monotonic() - last_full >= FULL_READ_SECONDS
                try:
                    if await self.refresh(force=full or announced):
                        log.info("unavailable items: %d (change %d)", len(self.ids), self.tag)
                    if full:
                        last_full = time.monotonic()
                    if not self._readable:
                        log.info("the unavailable-items set in Redis is readable again")
                    self._readable = True
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the last set read keeps applying
                    (log.warning if self._readable else log.debug)(
                        "cannot read the unavailable-items set from Redis (the last one read, %d ids, "
                        "keeps applying): %s", len(self.ids), exc)
                    self._readable = False
        finally:
            await _close(pubsub)

    # ------------------------------------------------------------------ writing

    async def mark(self, unavailable: list[str], available: list[str]) -> int:
        """Add `unavailable`, remove `available`; returns the set's size. Raises `TooMany`."""
        if self.client is None:
            after = (set(self.ids) | set(unavailable)) - set(available)
            if len(after) > self.max_items:
                raise TooMany(f"the set would hold {len(after):,} ids, more than SINE_MAX_UNAVAILABLE="
                              f"{self.max_items:,}")
            self._set(after)
            return len(self.ids)
        if unavailable:
            size = int(await self.client.scard(self.key))
            if size + len(unavailable) - len(available) > self.max_items:
                raise TooMany(f"the set holds {size:,} ids; adding {len(unavailable):,} may pass "
                              f"SINE_MAX_UNAVAILABLE={self.max_items:,}: mark items available first")
        async with self.client.pipeline(transaction=True) as pipe:
            if unavailable:
                pipe.sadd(self.key, *unavailable)
            if available:
                pipe.srem(self.key, *available)
            pipe.incr(self.version_key)
            pipe.scard(self.key)
            pipe.publish(self.channel, "changed")
            results = await pipe.execute()
        await self.refresh(force=True)  # this replica at once; the others on the announcement
        return int(results[-2])

    # ------------------------------------------------------------------ applying

    def rows_for(self, model) -> tuple[int, np.ndarray]:
        """(tag, rows of `model` that are unavailable), computed once per model and change."""
        cached = self._rows.get(model)
        if cached is not None and cached[0] == self.tag:
            return cached
        row_of = model.row_of
        rows = np.fromiter((row for item in self.ids if (row := row_of.get(item)) is not None),
                           dtype=np.int64)
        result = (self.tag, np.sort(rows))
        self._rows[model] = result
        return result


async def _close(pubsub) -> None:
    """Close a pub/sub connection without waiting long on a dead Redis; returns None."""
    if pubsub is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pubsub.aclose(), timeout=1)
