"""The bundle store and the live-model pointer: the one definition of how a version goes live.

Every writer and reader of "which model is live" goes through this module: the retrain
job publishes, the service follows (and moves the pointer on an explicit reload or a
rollback), the CLI rolls back. It is torch-free; `redis` is imported only when a Redis
client is made.

A bundle store is a directory of bundle versions (``store/<name>/``, names sort by
creation time, hidden names are work in progress) and two pointer files:

========== ==================================================================
CURRENT    the live version's directory name (replaced by an atomic rename)
PREVIOUS   the version that was live before it (the rollback target)
========== ==================================================================

In a multi-replica deployment the pointer is mirrored in Redis: the key
``{prefix}model:current`` holds the live bundle's path, and a message with that path on
the channel ``{prefix}model:reload`` tells every replica to follow at once (replicas also
poll the key). The file pointer is written first, then the Redis key, then the message,
so a replica never follows a pointer the store does not agree with.

A pointer moves only to a version that has been verified (by `read_bundle`, and by the
service's load and smoke test where the service moves it): `publish` and `rollback`
verify before they write.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sine.atomic import atomic_write
from sine.bundle import MANIFEST, read_bundle
from sine.errors import BundleError

CURRENT = "CURRENT"
"""Pointer file: the live version's directory name."""
PREVIOUS = "PREVIOUS"
"""Pointer file: the version live before CURRENT, the rollback target."""


def redis_key(prefix: str) -> str:
    """The Redis key holding the live bundle's path."""
    return f"{prefix}model:current"


def reload_channel(prefix: str) -> str:
    """The Redis pub/sub channel on which a new live bundle path is announced."""
    return f"{prefix}model:reload"


# ------------------------------------------------------------------ file pointers


def is_bundle(path: str | Path) -> bool:
    """True if `path` is a single bundle directory (not a store of versions)."""
    return (Path(path) / MANIFEST).is_file()


def current_version_name(store: str | Path) -> str | None:
    """The live version's name, or None when nothing has been published yet."""
    return _read_pointer(Path(store), CURRENT)


def previous_version_name(store: str | Path) -> str | None:
    """The version live before the current one (the rollback target), or None."""
    return _read_pointer(Path(store), PREVIOUS)


def live_bundle_path(store: str | Path) -> Path | None:
    """Where the live bundle is: `store` itself if it is a bundle, else its CURRENT version.

    None when `store` is a store with nothing published yet (a first rollout: the service
    waits for the retrain's first publish instead of failing).
    """
    store = Path(store)
    if is_bundle(store):
        return store
    name = current_version_name(store)
    return store / name if name else None


def current_bundle_path(store: str | Path) -> Path:
    """Like `live_bundle_path`, but a store with no live version is an error."""
    path = live_bundle_path(store)
    if path is None:
        raise BundleError(f"{store}: neither a bundle nor a bundle store with a {CURRENT} pointer "
                          "(nothing published yet?)")
    return path


def versions(store: str | Path) -> list[str]:
    """Bundle directories of a store, oldest first (names sort by creation time)."""
    store = Path(store)
    if not store.is_dir():
        return []
    return sorted(d.name for d in store.iterdir() if d.is_dir() and (d / MANIFEST).is_file()
                  and not d.name.startswith("."))


def in_store(store: str | Path, bundle_dir: str | Path) -> bool:
    """True if `bundle_dir` is a version directory directly inside `store`."""
    return Path(bundle_dir).resolve().parent == Path(store).resolve()


def point_to(store: str | Path, name: str) -> str | None:
    """Make version `name` live: CURRENT names it, PREVIOUS the version it replaces.

    The caller has verified the version (this only moves pointers). Returns the name
    that was live before, or None.
    """
    store = Path(store)
    if not (store / name / MANIFEST).is_file():
        raise BundleError(f"{store / name}: not a bundle version of the store {store}")
    before = current_version_name(store)
    atomic_write(store / CURRENT, name + "\n")
    if before and before != name:
        atomic_write(store / PREVIOUS, before + "\n")
    return before


def publish(store: str | Path, bundle_dir: str | Path, keep: int = 5) -> str:
    """Verify `bundle_dir` (a version inside `store`), make it live, prune old versions.

    A reader sees the old or the new CURRENT, never neither. All but the newest `keep`
    versions are deleted, never the live or the previous one.
    """
    store, bundle_dir = Path(store), Path(bundle_dir)
    if not in_store(store, bundle_dir):
        raise BundleError(f"{bundle_dir} is not inside the store {store}")
    read_bundle(bundle_dir)
    point_to(store, bundle_dir.name)
    prune(store, keep)
    return bundle_dir.name


def prune(store: str | Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` versions; the live and previous ones always stay."""
    store = Path(store)
    protected = {current_version_name(store), previous_version_name(store)}
    doomed = [v for v in versions(store)[: -max(keep, 1)] if v not in protected]
    for name in doomed:
        shutil.rmtree(store / name, ignore_errors=True)
    return doomed


def rollback_target(store: str | Path, verify: bool = True) -> Path:
    """The previous version's directory, verified unless the caller loads (and so verifies)
    it next; nothing is moved."""
    store = Path(store)
    previous = previous_version_name(store)
    if previous is None or not (store / previous).is_dir():
        raise BundleError(f"{store}: no previous version to roll back to")
    if verify:
        read_bundle(store / previous)
    return store / previous


def rollback(store: str | Path) -> str:
    """Make the previous version live again (verified first); returns its name."""
    target = rollback_target(store)
    point_to(store, target.name)
    return target.name


def _read_pointer(store: Path, name: str) -> str | None:
    try:
        return (store / name).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


# ------------------------------------------------------------------ Redis mirror


def redis_client(url: str) -> Any:
    """A synchronous Redis client for the pointer (the retrain job and the CLI)."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


def announce(client: Any, prefix: str, bundle_dir: str | Path) -> None:
    """Point every replica at `bundle_dir`: the Redis key, then the reload message."""
    client.set(redis_key(prefix), str(bundle_dir))
    client.publish(reload_channel(prefix), str(bundle_dir))


async def announce_async(client: Any, prefix: str, bundle_dir: str | Path) -> None:
    """`announce` through a ``redis.asyncio`` client (the service's)."""
    await client.set(redis_key(prefix), str(bundle_dir))
    await client.publish(reload_channel(prefix), str(bundle_dir))


def reconcile(store: str | Path, redis_url: str | None, prefix: str = "sine:") -> str | None:
    """Make the store's CURRENT agree with the Redis key, which is what replicas serve.

    An API replica whose store is mounted read-only moves only the Redis key on an explicit
    reload or rollback; the retrain (which can write the store) calls this first, so that it
    gates against, and records as PREVIOUS, the version really live. Returns the live name.
    """
    store = Path(store)
    current = current_version_name(store)
    if not redis_url:
        return current
    value = redis_client(redis_url).get(redis_key(prefix))
    if not value:
        return current
    named = Path(value.decode() if isinstance(value, bytes) else value)
    if in_store(store, named) and named.name != current and (named / MANIFEST).is_file():
        read_bundle(named)
        point_to(store, named.name)
        return named.name
    return current


def publish_everywhere(store: str | Path, bundle_dir: str | Path, keep: int = 5,
                       redis_url: str | None = None, prefix: str = "sine:") -> str:
    """`publish`, then `announce` when Redis is used; if the announcement fails, the file
    pointer goes back, so the two pointers never disagree, and the error is raised."""
    store = Path(store)
    before = current_version_name(store)
    name = publish(store, bundle_dir, keep)
    if redis_url:
        try:
            announce(redis_client(redis_url), prefix, store / name)
        except Exception:
            if before and before != name and (store / before).is_dir():
                point_to(store, before)
            raise
    return name


def rollback_everywhere(store: str | Path, redis_url: str | None = None, prefix: str = "sine:") -> str:
    """`sine rollback`: the previous version live again, in the store and in Redis."""
    store = Path(store)
    name = rollback(store)
    if redis_url:
        announce(redis_client(redis_url), prefix, store / name)
    return name
