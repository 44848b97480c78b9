"""The event store: click events moved from the Redis stream to Parquet, exactly once.

Layout under the data directory::

    events/day=2026-11-27/events-1764201600000_0-1764205199999_3.parquet

A file holds a contiguous range of stream entries (its name gives the first and last
stream id) and sits in the partition of the day those entries reached Redis (stream ids
are arrival times, so partitions follow id order). Export is idempotent and loses
nothing, whatever point it is killed at:

1. read the entries after the last exported id (the largest id in any file name);
2. write each day's part to a temporary name, fsync, rename (atomic), fsync the folder;
3. only then trim the exported entries from the stream (XTRIM MINID).

Killed before 2 completes: the renamed files cover a prefix of the range and the next
run continues after it. Killed between 2 and 3: the next run finds everything exported,
writes nothing twice and trims. Entries are never deleted before they are on disk by
the export; the service caps the stream (SINE_EVENT_STREAM_MAXLEN), and if the retrain
stalled long enough for that cap to drop entries that were never exported, the export
counts them (`ExportResult.lost`, an error in the log) from Redis 7's counter of
entries ever added (see `lost_since_last_export`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sine.atomic import atomic_write, fsync_directory, publish_mode
from sine.data.logs import ITEM, TIME, USER, seconds_scale

log = logging.getLogger("sine.retrain")

FILE_PATTERN = re.compile(r"events-(\d+)_(\d+)-(\d+)_(\d+)\.parquet$")
BATCH = 50_000


def parse_id(stream_id: str) -> tuple[int, int]:
    ms, seq = stream_id.split("-")
    return int(ms), int(seq)


def format_id(stream_id: tuple[int, int]) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


@dataclass
class ExportResult:
    events: int
    files: list[str]
    last_id: str | None
    trimmed: int
    lost: int = 0  # entries the stream cap dropped before they were exported


STATE = ".stream-state.json"


def _stream_counts(redis_client, stream_key: str) -> tuple[int, int] | None:
    """(entries ever added, entries now) of the stream; None without Redis 7's counter."""
    from redis.exceptions import ResponseError

    try:
        info = redis_client.xinfo_stream(stream_key)
    except ResponseError:  # no stream yet
        return None
    info = {(k.decode() if isinstance(k, bytes) else k): v for k, v in info.items()}
    if "entries-added" not in info:
        return None
    return int(info["entries-added"]), int(info["length"])


def lost_since_last_export(redis_client, stream_key: str, events_dir: Path) -> int:
    """Entries dropped by the stream cap since the last export, never exported.

    The last export recorded the stream's counters right after its trim: entries ever
    added (A1) and entries left (L1). Now (A2, L2): A2 - A1 entries were added since,
    so L1 + A2 - A1 should be there; fewer means the cap dropped the difference. (A
    retrain killed between its trim and this record over-counts once.)
    """
    counts = _stream_counts(redis_client, stream_key)
    state = events_dir / STATE
    if counts is None or not state.is_file():
        return 0
    try:
        before = json.loads(state.read_text())
        expected = int(before["length"]) + counts[0] - int(before["entries_added"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return max(0, expected - counts[1])


def _record_counts(redis_client, stream_key: str, events_dir: Path) -> None:
    counts = _stream_counts(redis_client, stream_key)
    if counts is not None:
        atomic_write(events_dir / STATE, json.dumps({"entries_added": counts[0], "length": counts[1]}))


def last_exported_id(events_dir: Path) -> tuple[int, int] | None:
    """The largest stream id in the event store (from the file names alone)."""
    best = None
    if events_dir.is_dir():
        for file in events_dir.glob("day=*/events-*.parquet"):
            match = FILE_PATTERN.search(file.name)
            if match:
                last = (int(match.group(3)), int(match.group(4)))
                best = last if best is None or last > best else best
    return best


def _write_part(events_dir: Path, rows: list[tuple[str, dict]]) -> Path:
    first, last = parse_id(rows[0][0]), parse_id(rows[-1][0])
    day = datetime.fromtimestamp(first[0] / 1000, UTC).strftime("%Y-%m-%d")
    folder = events_dir / f"day={day}"
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table({
        USER: [f["user_id"] for _, f in rows],
        ITEM: [f["item_id"] for _, f in rows],
        TIME: [float(f.get("timestamp", first[0] / 1000)) for _, f in rows],
        "stream_id": [i for i, _ in rows],
    })
    target = folder / f"events-{first[0]}_{first[1]}-{last[0]}_{last[1]}.parquet"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".events-", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        publish_mode(Path(tmp), directory=False)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(folder)
    return target


def export_events(redis_client, stream_key: str, events_dir: Path, batch: int = BATCH) -> ExportResult:
    """Move every entry of the stream into the event store (see the module doc)."""
    events_dir.mkdir(parents=True, exist_ok=True)
    after = last_exported_id(events_dir)
    lost = lost_since_last_export(redis_client, stream_key, events_dir)
    if lost:
        log.error("%d events were dropped by the stream cap before they were exported "
                  "(SINE_EVENT_STREAM_MAXLEN too small for the time since the last export)", lost)
    start = f"({format_id(after)}" if after else "-"
    files, total, last = [], 0, after
    while True:
        entries = redis_client.xrange(stream_key, min=start, max="+", count=batch)
        if not entries:
            break
        entries = [(i.decode() if isinstance(i, bytes) else i,
                    {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                     for k, v in fields.items()}) for i, fields in entries]
        # one file per arrival day, in id order
        day_of = [datetime.fromtimestamp(parse_id(i)[0] / 1000, UTC).date() for i, _ in entries]
        begin = 0
        for position in range(1, len(entries) + 1):
            if position == len(entries) or day_of[position] != day_of[begin]:
                files.append(str(_write_part(events_dir, entries[begin:position])))
                begin = position
        total += len(entries)
        last = parse_id(entries[-1][0])
        start = f"({entries[-1][0]}"
    trimmed = 0
    if last is not None:
        # everything up to `last` is on disk: drop it from the stream
        trimmed = int(redis_client.xtrim(stream_key, minid=format_id((last[0], last[1] + 1)),
                                         approximate=False))
    _record_counts(redis_client, stream_key, events_dir)
    log.info("exported %d events in %d files; trimmed %d from the stream", total, len(files), trimmed)
    return ExportResult(total, files, format_id(last) if last else None, trimmed, lost)


def read_events(events_dir: Path, base_times: pd.Series | None = None) -> pd.DataFrame:
    """Every stored event as a log frame (user_id, item_id, timestamp), possibly empty.

    Events carry Unix seconds (the service's clock, or the client's, in seconds). Given
    the base log's timestamps, they are put on its scale (`seconds_scale`: a millisecond
    log gets event times x 1000), so merged histories stay in time order.
    """
    files = sorted(events_dir.glob("day=*/events-*.parquet")) if events_dir.is_dir() else []
    if not files:
        return pd.DataFrame({USER: pd.Series(dtype=str), ITEM: pd.Series(dtype=str),
                             TIME: pd.Series(dtype=float)})
    frames = [pq.read_table(f, columns=[USER, ITEM, TIME, "stream_id"]).to_pandas() for f in files]
    frame = pd.concat(frames, ignore_index=True)
    if base_times is not None:
        frame[TIME] = frame[TIME] * seconds_scale(base_times)
    return frame
