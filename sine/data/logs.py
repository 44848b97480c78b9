"""Reading interaction logs (CSV, TSV, optionally gzip, and Parquet).

A log has one row per click with a user id, an item id and a timestamp; the column
names are configurable and any extra columns (``category``, ...) are kept. Ids are read
as strings, because real ids are opaque (leading zeros, hashes) and must round-trip
exactly to the service. Timestamps may be numbers (Unix time, or positions) or dates.

Every problem a user can fix is raised as `DataError` naming the file and, for a bad
row, its line number, so that the CLI never shows a traceback for a bad log.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sine.errors import DataError

USER, ITEM, TIME = "user_id", "item_id", "timestamp"
"""Canonical column names of a loaded log, whatever the file called them."""


@dataclass(frozen=True)
class LogColumns:
    """Names of the three required columns in the user's file."""

    user: str = USER
    item: str = ITEM
    timestamp: str = TIME


def _format_of(path: Path) -> str:
    """'parquet', 'tsv' or 'csv', from the file name (a directory is read as Parquet)."""
    if path.is_dir():
        return "parquet"
    name = path.name.lower()
    for suffix in (".gz", ".bz2", ".zst", ".xz", ".zip"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".tsv", ".tab")):
        return "tsv"
    return "csv"


def read_log(
    path: str | Path,
    columns: LogColumns = LogColumns(),
    sep: str | None = None,
) -> pd.DataFrame:
    """Read a log into a frame with columns ``user_id, item_id, timestamp`` (+ extras).

    Rows are sorted by user, then time; the sort is stable, so clicks with equal
    timestamps keep their order in the file. Raises `DataError` for a missing file or
    column, an empty log, a malformed row or an unparsable timestamp.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    fmt = _format_of(path)
    if fmt == "parquet":
        frame = _read_parquet(path)
        first_line = 0  # rows are reported as 'row N' (0-based), not as lines
    else:
        frame = _read_delimited(path, sep if sep is not None else ("\t" if fmt == "tsv" else ","))
        first_line = 2  # line 1 is the header

    wanted = {columns.user: USER, columns.item: ITEM, columns.timestamp: TIME}
    missing = [name for name in wanted if name not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "(none)"
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; the file has: {found}. "
            "Name the right ones with --user-col / --item-col / --time-col."
        )
    if len(frame) == 0:
        raise DataError(f"{path}: the log has a header but no rows")

    extras = [c for c in frame.columns if c not in wanted]
    clash = [c for c in extras if c in (USER, ITEM, TIME)]
    frame = frame.drop(columns=clash).rename(columns=wanted)
    extras = [c for c in extras if c not in clash]

    for col in (USER, ITEM):
        ids = frame[col]
        bad = ids.isna() | (ids.astype(str).str.strip() == "")
        if bad.any():
            where = _where(int(np.flatnonzero(bad.to_numpy())[0]), first_line)
            raise DataError(f"{path}: empty {col} at {where}")
        frame[col] = ids.astype(str)

    frame[TIME] = _parse_timestamps(frame[TIME], path, first_line)
    frame = frame[[USER, ITEM, TIME, *extras]]
    return frame.sort_values([USER, TIME], kind="stable").reset_index(drop=True)


def _where(row: int, first_line: int) -> str:
    return f"line {row + first_line}" if first_line else f"row {row}"


def _read_delimited(path: Path, sep: str) -> pd.DataFrame:
    try:
        return pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            compression="infer",
            engine="c",
            quoting=csv.QUOTE_MINIMAL,
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (no header, no rows)") from None
    except pd.errors.ParserError as exc:
        # pandas says e.g. "Error tokenizing data. C error: Expected 3 fields in line 7, saw 4"
        detail = str(exc).split("C error: ")[-1].strip()
        raise DataError(f"{path}: malformed row: {detail}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason}); is this the right file?") from None
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the file: {exc}") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a bad file
        raise DataError(f"{path}: cannot read as Parquet: {exc}") from None
    return frame


def _parse_timestamps(values: pd.Series, path: Path, first_line: int) -> pd.Series:
    """Numbers stay numbers; date strings become Unix seconds (float64)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return _unix_seconds(values)
    if pd.api.types.is_numeric_dtype(values) and not values.isna().any():
        return values.astype("float64")
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        dates = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        if dates.notna().sum() > numbers.notna().sum():
            bad = dates.isna().to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{path}: unparsable timestamp {values.iloc[row]!r} at "
                    f"{_where(row, first_line)}"
                )
            return _unix_seconds(dates)
        row = int(np.flatnonzero(numbers.isna().to_numpy())[0])
        raise DataError(
            f"{path}: unparsable timestamp {values.iloc[row]!r} at {_where(row, first_line)} "
            "(expected a number or a date)"
        )
    if not np.isfinite(numbers.to_numpy(dtype="float64")).all():
        row = int(np.flatnonzero(~np.isfinite(numbers.to_numpy(dtype="float64")))[0])
        raise DataError(f"{path}: non-finite timestamp at {_where(row, first_line)}")
    return numbers.astype("float64")


def _unix_seconds(dates: pd.Series) -> pd.Series:
    """Seconds since 1970 (float), whatever the datetime resolution pandas chose."""
    if dates.dt.tz is None:
        dates = dates.dt.tz_localize("UTC")
    return ((dates - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).astype("float64")


def seconds_scale(times: pd.Series) -> float:
    """How many of a log's time units make one second: 1, 1e3 (ms), 1e6 (us) or 1e9 (ns).

    Detected from the magnitude of the median timestamp: Unix seconds of the years 1973
    to 5138 lie in [1e8, 1e11), milliseconds in [1e11, 1e14), and so on. Anything below
    (positions, small counters) is taken as seconds. Used to put events recorded by the
    service (Unix seconds) on the base log's scale, so that a millisecond log does not
    sort every new event before the old clicks.
    """
    if len(times) == 0:
        return 1.0
    median = float(np.median(np.asarray(times, dtype="float64")))
    for scale, floor in ((1e9, 1e17), (1e6, 1e14), (1e3, 1e11)):
        if median >= floor:
            return scale
    return 1.0


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of the clicks (user, item, timestamp), independent of file format.

    The same log saved as CSV or Parquet, or with its rows shuffled, has the same
    fingerprint, because the frame is hashed after `read_log` has sorted it.
    """
    hashed = pd.util.hash_pandas_object(frame[[USER, ITEM, TIME]], index=False).to_numpy()
    return "sha256:" + hashlib.sha256(hashed.tobytes()).hexdigest()


def filter_min_counts(frame: pd.DataFrame, min_item_count: int, min_user_count: int) -> pd.DataFrame:
    """Drop rare items, then short users (one pass, in that order, as documented)."""
    if min_item_count > 1:
        counts = frame[ITEM].map(frame[ITEM].value_counts())
        frame = frame[counts >= min_item_count]
    if min_user_count > 1:
        counts = frame[USER].map(frame[USER].value_counts())
        frame = frame[counts >= min_user_count]
    return frame.reset_index(drop=True)
