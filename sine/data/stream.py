"""Logs larger than memory: a Parquet dataset split into sequences in bounded memory.

`read_log` + `leave_one_out` hold the whole log in a pandas frame (about 150 bytes per
click with string ids). This module produces the same `SplitData` from a Parquet file
or a partitioned Parquet directory (the event store's ``day=`` folders, or the
synthetic generator's), reading it with `pyarrow.dataset` in record batches, so that the
frame held at any time is one batch or one bucket of users, sized by `memory_budget`:

1. scan: click count of every item (and the log's fingerprint, order-independent);
2. scan: each click (minus items below `min_item_count`) is appended to one of B
   temporary Parquet spill files by a hash of its user id; B is chosen so that one
   bucket fits the budget (about `BYTES_PER_CLICK` per click as a pandas frame);
3. per bucket: sort by user, then time, then position in the scan (the stable sort of
   `read_log`), drop users below `min_user_count`, count the kept clicks per item;
4. the item vocabulary from those counts (the same rule as `ItemVocabulary.from_clicks`);
5. per bucket: encode items and append each user's sequence to int32 files on disk,
   which the returned `SplitData` maps (`numpy.memmap`) instead of holding.

What differs from the in-memory path, and why: users come out grouped by bucket (in id
order within a bucket) rather than in global id order, so the training examples are the
same set in another order (an epoch shuffles them anyway); and the fingerprint is a hash
of the multiset of clicks (``stream-sha256:``), since the in-memory one hashes the
globally sorted frame. Per user, the sequence, the split and the examples are identical
(tests/test_stream.py checks this against the in-memory path).

Memory that still grows with the log: the user ids and offsets (per user, not per
click), and, in training, the epoch's shuffled example order (8 bytes per example).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from tqdm import tqdm

from sine.data.logs import ITEM, TIME, USER, LogColumns, _parse_timestamps
from sine.data.split import SplitData
from sine.data.vocabulary import ItemVocabulary
from sine.errors import DataError

log = logging.getLogger("sine.data")

BYTES_PER_CLICK = 200
"""Peak bytes per click of a bucket held as a pandas frame with string ids and sorted
(frame, sort keys, encoded copy); measured in bench/stream_memory.py, rounded up."""
MIN_BUDGET = 16 * 2**20


def parse_size(text: str) -> int:
    """'512M', '2G', '1.5g', '100000' (bytes) -> bytes; `DataError` for anything else."""
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    cleaned = str(text).strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (cleaned[:-1], cleaned[-1]) if cleaned[-1:] in units else (cleaned, "")
    try:
        value = int(float(number) * units[unit])
    except ValueError:
        raise DataError(f"not a memory size: {text!r} (e.g. 512M, 2G)") from None
    if value < MIN_BUDGET:
        raise DataError(f"memory budget {text!r} is below the minimum of {MIN_BUDGET // 2**20}M")
    return value


@dataclass(frozen=True)
class StreamPlan:
    """How a log is cut to fit the budget (recorded with the run)."""

    clicks: int
    buckets: int
    batch_rows: int
    memory_budget: int
    largest_bucket: int = 0  # clicks in the largest bucket (known after the spill)


def open_dataset(path: str | Path) -> ds.Dataset:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if not (path.is_dir() or path.suffix.lower() in (".parquet", ".pq")):
        raise DataError(f"{path}: a log read within a memory budget must be Parquet (a file or a "
                        "directory of them); convert it once, e.g. with pandas' to_parquet")
    try:
        return ds.dataset(path, format="parquet", partitioning="hive")
    except Exception as exc:  # pyarrow raises many types for a bad dataset
        raise DataError(f"{path}: cannot read as a Parquet dataset: {exc}") from None


def _batches(dataset: ds.Dataset, columns: LogColumns, batch_rows: int, path: Path):
    """Record batches as pandas frames with canonical names, ids as strings, times as float."""
    wanted = [columns.user, columns.item, columns.timestamp]
    names = dataset.schema.names
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; the dataset has: "
                        f"{', '.join(names)}. Name the right ones with --user-col / --item-col / "
                        "--time-col.")
    row = 0
    for batch in _coalesced(dataset.to_batches(columns=wanted, batch_size=batch_rows), batch_rows):
        frame = batch.to_pandas().rename(columns=dict(zip(wanted, (USER, ITEM, TIME), strict=True)))
        for col in (USER, ITEM):
            bad = frame[col].isna() | (frame[col].astype(str).str.strip() == "")
            if bad.any():
                raise DataError(f"{path}: empty {col} at row {row + int(np.flatnonzero(bad)[0])}")
            frame[col] = frame[col].astype(str)
        frame[TIME] = _parse_timestamps(frame[TIME], path, 0).to_numpy()
        frame.index = pd.RangeIndex(row, row + len(frame))
        row += len(frame)
        yield frame


def _coalesced(batches, rows: int):
    """Record batches of about `rows` rows: a dataset of many small files (one per day and
    writer) yields small batches, and the per-batch work below has a fixed cost."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        held += batch.num_rows
        if held >= rows:
            yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
            pending, held = [], 0
    if pending:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def _add_counts(total: pd.Series | None, counts: pd.Series) -> pd.Series:
    """Sum two value counts (aligned on the id index)."""
    return counts if total is None else total.add(counts, fill_value=0).astype(np.int64)


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(frame[[USER, ITEM, TIME]], index=False).to_numpy()


def stream_split(
    path: str | Path,
    memory_budget: int,
    work_dir: str | Path,
    columns: LogColumns = LogColumns(),
    min_item_count: int = 0,
    min_user_count: int = 0,
    progress: bool = False,
) -> tuple[SplitData, StreamPlan]:
    """Split the Parquet log at `path` within about `memory_budget` bytes of frames.

    The sequences are written under `work_dir` (kept: the returned arrays map them);
    the spill files are deleted on return. Raises `DataError` as `read_log` does.
    """
    path, work_dir = Path(path), Path(work_dir)
    dataset = open_dataset(path)
    work_dir.mkdir(parents=True, exist_ok=True)
    batch_rows = max(1_000, memory_budget // (4 * BYTES_PER_CLICK))

    # 1. item counts and fingerprint
    counts: pd.Series | None = None
    total, digest_sum, digest_xor = 0, np.uint64(0), np.uint64(0)
    for frame in tqdm(_batches(dataset, columns, batch_rows, path), desc="count", unit="batch",
                      disable=not progress):
        hashes = _row_hashes(frame)
        with np.errstate(over="ignore"):
            digest_sum = np.uint64(digest_sum + hashes.sum(dtype=np.uint64))
        digest_xor ^= np.bitwise_xor.reduce(hashes)
        total += len(frame)
        batch_counts = frame[ITEM].value_counts()
        counts = _add_counts(counts, batch_counts)
    if counts is None:
        raise DataError(f"{path}: the log has no rows")
    fingerprint = "stream-sha256:" + hashlib.sha256(
        f"{total}:{int(digest_sum)}:{int(digest_xor)}".encode()).hexdigest()
    allowed = counts.index[counts >= min_item_count] if min_item_count > 1 else None
    del counts

    buckets = max(1, -(-total * BYTES_PER_CLICK // memory_budget))
    plan = StreamPlan(clicks=total, buckets=int(buckets), batch_rows=int(batch_rows),
                      memory_budget=int(memory_budget))
    log.info("%s: %s clicks, %d bucket(s) of users for a %s MiB budget", path, f"{total:,}",
             buckets, memory_budget // 2**20)
    spill = Path(tempfile.mkdtemp(prefix="spill-", dir=work_dir))
    try:
        data, largest = _split_buckets(dataset, path, columns, plan, spill, work_dir, allowed,
                                       min_user_count, fingerprint, progress)
        return data, replace(plan, largest_bucket=largest)
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _split_buckets(dataset, path, columns, plan, spill, work_dir, allowed, min_user_count,
                   fingerprint, progress) -> tuple[SplitData, int]:
    schema = pa.schema([(USER, pa.string()), (ITEM, pa.string()), (TIME, pa.float64()),
                        ("row", pa.int64())])
    # 2. spill clicks into buckets by a hash of the user id
    writers = [pq.ParquetWriter(spill / f"bucket-{b:05d}.parquet", schema)
               for b in range(plan.buckets)]
    try:
        for frame in tqdm(_batches(dataset, columns, plan.batch_rows, path), desc="spill",
                          unit="batch", disable=not progress):
            if allowed is not None:
                frame = frame[frame[ITEM].isin(allowed)]
            frame = frame.assign(row=frame.index.to_numpy(dtype=np.int64))
            bucket = pd.util.hash_array(frame[USER].to_numpy(dtype=object)) % np.uint64(plan.buckets)
            for b, part in frame.groupby(bucket, sort=False):
                writers[int(b)].write_table(pa.Table.from_pandas(part, schema=schema,
                                                                 preserve_index=False))
    finally:
        for writer in writers:
            writer.close()

    # 3. sort each bucket, filter short users, count items
    item_counts: pd.Series | None = None
    largest = 0
    for b in tqdm(range(plan.buckets), desc="sort", unit="bucket", disable=not progress):
        frame = pd.read_parquet(spill / f"bucket-{b:05d}.parquet")
        largest = max(largest, len(frame))
        frame = frame.sort_values([USER, TIME, "row"], kind="stable")
        if min_user_count > 1:
            frame = frame[frame[USER].map(frame[USER].value_counts()) >= min_user_count]
        frame[[USER, ITEM]].to_parquet(spill / f"sorted-{b:05d}.parquet", index=False)
        (spill / f"bucket-{b:05d}.parquet").unlink()
        bucket_counts = frame[ITEM].value_counts()
        item_counts = _add_counts(item_counts, bucket_counts)
    if item_counts is None or len(item_counts) == 0:
        raise DataError(f"{path}: no click is left after the count filters")

    # 4. the vocabulary, by the in-memory rule (descending count, then id)
    order = pd.DataFrame({"id": item_counts.index.astype(str), "n": item_counts.to_numpy()})
    order = order.sort_values(["n", "id"], ascending=[False, True], kind="stable")
    vocabulary = ItemVocabulary(order["id"].tolist())
    del order, item_counts

    # 5. encode and append every user's sequence to int32 files
    user_ids: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    items_path = work_dir / "items.int32"
    with open(items_path, "wb") as out:
        for b in tqdm(range(plan.buckets), desc="encode", unit="bucket", disable=not progress):
            frame = pd.read_parquet(spill / f"sorted-{b:05d}.parquet")
            users = frame[USER].to_numpy()
            encoded = vocabulary.encode_column(frame[ITEM]).astype(np.int32)
            out.write(encoded.tobytes())
            if len(users):
                starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
                user_ids.append(users[starts])
                lengths.append(np.diff(np.r_[starts, len(users)]))
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64)
    items = np.memmap(items_path, dtype=np.int32, mode="r", shape=(int(offsets[-1]),))
    data = SplitData(vocabulary=vocabulary, user_ids=np.concatenate(user_ids), items=items,
                     offsets=offsets, fingerprint=fingerprint)
    _check_splittable(data)
    return data, largest


def _check_splittable(data: SplitData) -> None:
    """The same refusals as `leave_one_out`."""
    if len(data.eval_users) == 0:
        raise DataError(
            f"the log is too small to split: {len(data.user_ids)} users, none with 3 or more "
            "clicks (each evaluated user needs training clicks, a validation and a test click)")
    if int(np.maximum(data.train_lengths - 1, 0).sum()) == 0:
        raise DataError(
            "the log is too small to split: no user has 2 or more training clicks, "
            "so there is no training example (a prefix and its next click)")
