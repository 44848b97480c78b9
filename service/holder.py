"""The live model and its hot swap.

A request takes `holder.model` once and uses that object to the end, so requests in
flight finish on the version they started with. A reload loads and smoke-tests the new
bundle beside the old one (in a worker thread, the event loop keeps serving), then
swaps the reference in one assignment; a bundle that fails verification raises and the
old one keeps serving. Where the live version comes from, in order: an explicit path
(``/admin/reload``), the Redis pointer ``{prefix}model:current`` (set by the retrain job),
the ``CURRENT`` pointer of the configured bundle store, the configured bundle directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from service.core.config import Settings
from service.recommender import LoadedModel
from sine import bundle as bundle_store
from sine.errors import BundleError

log = logging.getLogger("sine.service")


class ModelHolder:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.model: LoadedModel | None = None
        self.previous: LoadedModel | None = None
        self.redis = None  # redis.asyncio client for the pointer, when configured
        self._lock = asyncio.Lock()
        self.last_error: str | None = None
        # called with the new model after every swap (metrics, heap), whatever caused it
        self.listeners: list[Callable[[LoadedModel], None]] = []

    def _swap(self, loaded: LoadedModel) -> None:
        self.previous, self.model = self.model, loaded
        for listener in self.listeners:
            try:
                listener(loaded)
            except Exception:  # a listener must never undo or block a swap
                log.exception("swap listener failed")

    def _load(self, path: Path) -> LoadedModel:
        s = self.settings
        return LoadedModel.load(path, s.onnx_threads, s.faiss_threads, s.gpu)

    async def _pointer(self) -> Path | None:
        """Where the live bundle should come from now, or None if nothing is configured."""
        if self.redis is not None:
            try:
                value = await self.redis.get(f"{self.settings.redis_prefix}model:current")
            except Exception as exc:  # Redis down: fall back to the file pointer
                log.warning("cannot read the model pointer from Redis: %s", exc)
                value = None
            if value:
                return Path(value)
        if self.settings.bundle is not None:
            return bundle_store.current_bundle_path(self.settings.bundle)
        return None

    async def reload(self, path: Path | None = None, force: bool = False) -> bool:
        """Load `path` (or the pointer's target) and swap it in; False if already live."""
        async with self._lock:
            target = path if path is not None else await self._pointer()
            if target is None:
                raise BundleError("no bundle configured (set SINE_BUNDLE or publish one)")
            try:
                manifest = bundle_store.read_manifest(target)
                live = self.model
                if (not force and live is not None and manifest["version"] == live.version
                        and Path(target).resolve() == live.bundle.path.resolve()):
                    return False  # the same bundle at the same place: nothing to do
                loaded = await asyncio.to_thread(self._load, target)
            except BundleError as exc:
                self.last_error = str(exc)
                log.error("refused bundle %s: %s", target, exc)
                raise
            self._swap(loaded)
            self.last_error = None
            log.info("serving model version %s", loaded.version)
            return True

    async def rollback(self) -> str:
        """Serve the previous version again: the store's previous pointer, or the one in memory."""
        async with self._lock:
            store = self.settings.bundle
            if store is not None and (Path(store) / bundle_store.CURRENT).is_file():
                name = bundle_store.rollback(store)
                loaded = await asyncio.to_thread(self._load, Path(store) / name)
                if self.redis is not None:
                    with contextlib.suppress(Exception):
                        await self.redis.set(f"{self.settings.redis_prefix}model:current",
                                             str(Path(store) / name))
            elif self.previous is not None:
                loaded = self.previous
            else:
                raise BundleError("no previous model version to roll back to")
            self._swap(loaded)
            log.info("rolled back to model version %s", loaded.version)
            return loaded.version

    async def watch(self) -> None:
        """Follow pub/sub reload messages and poll the pointers; runs until cancelled."""
        pubsub = None
        if self.redis is not None:
            with contextlib.suppress(Exception):
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(f"{self.settings.redis_prefix}model:reload")
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
                    await self.reload()
                except BundleError:
                    pass  # logged in reload; the old model keeps serving
                except Exception as exc:  # never let the watcher die
                    log.error("reload check failed: %s", exc)
        finally:
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), timeout=1)
