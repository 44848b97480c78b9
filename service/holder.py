"""The live model, its hot swap, and how this replica follows the live-model pointer.

A request takes `holder.model` once and uses that object to the end, so requests in
flight finish on the version they started with. A reload loads and smoke-tests the new
bundle beside the old one (in a worker thread, the event loop keeps serving), then
swaps the reference in one assignment. A bundle that cannot be loaded, for any reason
(verification, an unknown index type, a faiss index that does not deserialize), is
refused: the old model keeps serving and the refusal is remembered, so the watcher does
not verify the same refused files again on every poll.

Where the live version comes from is the pointer (`sine.bundle_store`): the Redis key
when Redis is configured and answers, else the CURRENT file of the configured store (or
the configured bundle directory itself). The watcher follows it. An explicit
`/admin/reload` or `/admin/rollback` must not be undone by the watcher a few seconds
later, so after one of them succeeds:

- a version inside the configured store is made the pointer's target: the store's
  CURRENT/PREVIOUS files (when the store is writable) and the Redis key, announced on the
  reload channel so that every replica follows;
- anything else (a bundle outside the store, an in-memory rollback, a read-only store
  without Redis) pins this replica: the watcher ignores the pointer until it names
  something new.

Pointers move only after the load succeeded, never before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from service.core.config import Settings
from service.recommender import LoadedModel
from sine import bundle_store
from sine.bundle import read_manifest
from sine.errors import BundleError, SineError

log = logging.getLogger("sine.service")

REFUSED_MEMORY = 64
"""How many refused bundles are remembered (oldest forgotten first)."""

Identity = tuple[str, str | None]
"""What the pointer names: a resolved path and the bundle version there (None: unreadable)."""


def identity_of(path: Path) -> Identity:
    try:
        version = str(read_manifest(path)["version"])
    except SineError:
        version = None
    return str(Path(path).resolve()), version


def files_fingerprint(path: Path) -> tuple:
    """Names, sizes and modification times of a bundle's files: a change means re-verify."""
    try:
        with os.scandir(path) as entries:
            return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries))
    except OSError:
        return ()


class PointerUnavailable(Exception):
    """The Redis pointer cannot be read right now (the watcher then changes nothing)."""


class ModelHolder:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.model: LoadedModel | None = None
        self.previous: LoadedModel | None = None
        self.redis = None  # redis.asyncio client for the pointer, when configured
        self._lock = asyncio.Lock()
        self.last_error: str | None = None
        self.waiting: str | None = None  # why no model is loaded yet, when none is
        self.pinned_over: Identity | None = None  # the pointer target this replica ignores
        self._pointer_readable = True
        self._refused: OrderedDict[tuple[str, tuple], str] = OrderedDict()
        # called with the new model after every swap (metrics, heap), whatever caused it
        self.listeners: list[Callable[[LoadedModel], None]] = []
        # called with "swapped", "unchanged", "refused" or "rollback" after every attempt
        self.outcome_listeners: list[Callable[[str], None]] = []

    # ------------------------------------------------------------------ pointer

    @property
    def store(self) -> Path | None:
        """The configured bundle store, or None when SINE_BUNDLE is a single bundle (or unset)."""
        path = self.settings.bundle
        if path is None or bundle_store.is_bundle(path):
            return None
        return Path(path)

    async def _pointer(self, keep_on_outage: bool = False) -> Path | None:
        """Where the live bundle should come from now; None if nothing is published yet.

        With Redis configured the Redis key is the pointer. While Redis cannot be read the
        file pointer stands in, except for the watcher of a replica that serves a model
        (`keep_on_outage`): it keeps that model (`PointerUnavailable`), because the file
        pointer may be behind the key (a read-only store), and a Redis blip must not swap models.
        """
        if self.redis is not None:
            try:
                value = await self.redis.get(bundle_store.redis_key(self.settings.redis_prefix))
            except Exception as exc:  # logged once per outage, not on every poll
                (log.warning if self._pointer_readable else log.debug)(
                    "cannot read the model pointer from Redis: %s", exc)
                self._pointer_readable = False
                if keep_on_outage and self.model is not None:
                    raise PointerUnavailable(str(exc)) from None
                value = None
            else:
                if not self._pointer_readable:
                    log.info("the model pointer in Redis is readable again")
                self._pointer_readable = True
            if value:
                return Path(value.decode() if isinstance(value, bytes) else value)
        if self.settings.bundle is not None:
            return bundle_store.live_bundle_path(self.settings.bundle)
        return None

    async def _move_pointer_to(self, target: Path) -> None:
        """After an explicit swap to `target`: make the pointer name it, or pin this replica."""
        store, prefix = self.store, self.settings.redis_prefix
        if store is not None and bundle_store.in_store(store, target):
            try:
                await asyncio.to_thread(bundle_store.point_to, store, target.name)
            except OSError as exc:  # e.g. the store is mounted read-only in this replica
                log.warning("cannot move the store's %s pointer (%s)", bundle_store.CURRENT, exc)
            if self.redis is not None:
                try:
                    await bundle_store.announce_async(self.redis, prefix, target)
                except Exception as exc:
                    log.warning("cannot announce %s on Redis: %s", target, exc)
        pointer = await self._pointer()
        named = identity_of(pointer) if pointer is not None else None
        if named is not None and named == identity_of(target):
            self.pinned_over = None
        else:
            self.pinned_over = named if named is not None else ("", None)
            log.info("serving %s until the live-model pointer names a new version (now: %s)",
                     target, pointer)

    # ------------------------------------------------------------------ loading

    def _load(self, path: Path) -> LoadedModel:
        s = self.settings
        return LoadedModel.load(path, s.onnx_threads, s.faiss_threads, s.gpu)

    def _notify(self, outcome: str) -> None:
        for listener in self.outcome_listeners:
            with contextlib.suppress(Exception):
                listener(outcome)

    def _swap(self, loaded: LoadedModel) -> None:
        self.previous, self.model = self.model, loaded
        self.waiting = None
        for listener in self.listeners:
            try:
                listener(loaded)
            except Exception:  # a listener must never undo or block a swap
                log.exception("swap listener failed")

    async def _load_and_swap(self, target: Path, recheck: bool, force: bool = False) -> bool:
        """Load `target` and swap it in; False if it is already live or a remembered refusal.

        Any failure to load refuses the bundle with a `BundleError` naming the cause; the
        live model is untouched. `recheck` verifies a bundle refused before again.
        """
        def refusal_key() -> tuple[str, object]:  # a scan of the bundle's files: only when needed
            return str(Path(target).resolve()), files_fingerprint(target)

        if not recheck and self._refused and refusal_key() in self._refused:
            return False  # refused before and unchanged since: not verified again
        try:
            manifest = read_manifest(target)
            live = self.model
            if (not force and live is not None and manifest["version"] == live.version
                    and Path(target).resolve() == live.bundle.path.resolve()):
                if recheck:  # an explicit request; the watcher's polls are not counted
                    self._notify("unchanged")
                return False  # the same bundle at the same place: nothing to do
            loaded = await asyncio.to_thread(self._load, target)
        except Exception as exc:
            message = str(exc) if isinstance(exc, SineError) else \
                f"{target}: cannot be loaded ({type(exc).__name__}: {exc})"
            key = refusal_key()
            self._refused[key] = message
            self._refused.move_to_end(key)
            while len(self._refused) > REFUSED_MEMORY:
                self._refused.popitem(last=False)
            self.last_error = message
            self._notify("refused")
            log.error("refused bundle %s: %s", target, message)
            raise BundleError(message) from None
        self._swap(loaded)
        self.last_error = None
        self._notify("swapped")
        log.info("serving model version %s", loaded.version)
        return True

    # ------------------------------------------------------------------ entry points

    async def follow_pointer(self) -> bool:
        """The watcher's step: load what the pointer names, unless this replica is pinned.

        Returns True on a swap. A store with nothing published yet is not an error: the
        replica waits (``waiting`` says why) and loads the first version published.
        """
        async with self._lock:
            try:
                target = await self._pointer(keep_on_outage=True)
            except PointerUnavailable:
                return False  # the live model keeps serving until Redis answers again
            if target is None:
                if self.settings.bundle is None and self.redis is None:
                    raise BundleError("no bundle configured (set SINE_BUNDLE or publish one)")
                if self.model is None:
                    self.waiting = (f"nothing published yet in {self.settings.bundle or 'Redis'}; "
                                    "waiting for the first publish")
                return False
            if self.pinned_over is not None:
                if identity_of(target) == self.pinned_over:
                    return False
                log.info("the live-model pointer moved to %s: following it again", target)
                self.pinned_over = None
            return await self._load_and_swap(target, recheck=False)

    async def reload(self, path: Path | None = None, force: bool = False) -> bool:
        """`/admin/reload`: load `path` (or what the pointer names) and make it stick.

        With a path, the pointer is moved to it (or this replica pinned to it) once the
        load succeeded. Without one, any pin is dropped and the pointer is followed.
        Refused bundles are verified again (an operator may have fixed them). A bare name
        such as `v20261127T182555Z` is a version of the configured store: the name the
        store's CURRENT file and the retrain's report use.
        """
        if path is not None and len(Path(path).parts) == 1 and self.store is not None \
                and (self.store / path).is_dir():
            path = self.store / path
        if path is None:
            self.pinned_over = None
            async with self._lock:
                target = await self._pointer()
                if target is None:
                    raise BundleError("no bundle to load: nothing is published (set SINE_BUNDLE or "
                                      "publish one)")
                return await self._load_and_swap(target, recheck=True, force=force)
        async with self._lock:
            changed = await self._load_and_swap(path, recheck=True, force=force)
            await self._move_pointer_to(Path(path))
            return changed

    async def rollback(self) -> str:
        """Serve the previous version again: the store's PREVIOUS, or the one in memory.

        The previous version is loaded first; the store's pointers move (and Redis
        announces it) only after that succeeded.
        """
        async with self._lock:
            store = self.store
            if store is not None and bundle_store.previous_version_name(store) is not None:
                # Verified once, by the load below, not also while finding it.
                target = bundle_store.rollback_target(store, verify=False)
                await self._load_and_swap(target, recheck=True)
                await self._move_pointer_to(target)
            elif self.previous is not None:
                self._swap(self.previous)
                await self._move_pointer_to(self.model.bundle.path)
            else:
                raise BundleError("no previous model version to roll back to")
            self._notify("rollback")
            log.info("rolled back to model version %s", self.model.version)
            return self.model.version

    async def watch(self) -> None:
        """Follow pub/sub reload messages and poll the pointers; runs until cancelled."""
        pubsub = None
        if self.redis is not None:
            with contextlib.suppress(Exception):
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(bundle_store.reload_channel(self.settings.redis_prefix))
        interval = self.settings.reload_poll_seconds or 3600.0
        try:
            while True:
                message = None
                if pubsub is not None:
                    try:
                        message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                           timeout=interval)
                    except Exception:  # Redis went away: keep polling the file pointer
                        await asyncio.sleep(interval)
                else:
                    await asyncio.sleep(interval)
                if message is None and not self.settings.reload_poll_seconds:
                    continue
                try:
                    await self.follow_pointer()
                except BundleError:
                    pass  # logged when refused; the old model keeps serving
                except Exception as exc:  # never let the watcher die
                    log.error("reload check failed: %s", exc)
        finally:
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), timeout=1)
