"""Item attributes: what each item is (category, brand, price, available, ...).

The user's attribute file is CSV/TSV (optionally gzip) or Parquet with an ``item_id``
column and one column per attribute, e.g. ``item_id,category,brand,available``. Every
attribute is a set of labels per item (strings, compared exactly):

* a cell may hold several labels separated by ``|`` (ml-100k's ``Action|Comedy``), or be
  a list in Parquet; an empty cell is an item without that attribute;
* numbers and booleans become their text (``1995``, ``true``), so that a request filters
  them as it would any label;
* ``available`` is normalised to ``true`` / ``false`` (from true/false, 1/0, yes/no, t/f,
  y/n in any case): the service never serves an item whose bundle says ``false``.

Two shapes of the same facts:

* `AttributeTable`, keyed by raw item id (what a file says; survives a retrain whose
  catalog differs: `carry_forward`);
* `ItemAttributes`, aligned with a bundle's item rows: per attribute the sorted distinct
  labels and, per row, the codes of its labels (CSR: ``offsets`` [M + 1], ``codes``).
  Its JSON form is the bundle's ``item_attributes.json`` (format in `sine.bundle`).

Torch-free: numpy, pandas for reading the file, the standard library.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sine.errors import BundleError, DataError

log = logging.getLogger("sine.attributes")

ITEM_COLUMN = "item_id"
SEPARATOR = "|"
AVAILABLE = "available"
FORMAT = 1
RUN_FILE = "item_attributes.json"  # in a run directory (`sine train --attributes`), same format
TRUE_WORDS = frozenset({"true", "1", "yes", "t", "y"})
FALSE_WORDS = frozenset({"false", "0", "no", "f", "n"})

AttributeTable = dict[str, dict[str, tuple[str, ...]]]
"""attribute -> raw item id -> its labels (items without labels are left out)."""


# ----------------------------------------------------------------------- reading files


def read_attribute_file(path: str | Path, columns: Sequence[str] | None = None,
                        sep: str | None = None) -> AttributeTable:
    """Read the user's attribute file; raises `DataError` naming the file and what to fix."""
    from sine.data.logs import _format_of, _read_delimited, _read_parquet

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such attribute file")
    fmt = _format_of(path)
    if fmt == "parquet":
        frame, first_line = _read_parquet(path), 0
    else:
        frame, first_line = _read_delimited(path, sep if sep is not None else ("\t" if fmt == "tsv" else ",")), 2
    names = [str(c) for c in frame.columns]
    if ITEM_COLUMN not in names:
        raise DataError(f"{path}: no {ITEM_COLUMN} column; the file has: {', '.join(names) or '(none)'} "
                        f"(an attribute file is {ITEM_COLUMN} plus one column per attribute)")
    wanted = [c for c in names if c != ITEM_COLUMN] if columns is None else list(columns)
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(f"{path}: no column {', '.join(missing)}; the file has: {', '.join(names)}")
    if not wanted:
        raise DataError(f"{path}: only an {ITEM_COLUMN} column; add attribute columns (category, ...)")
    if len(frame) == 0:
        raise DataError(f"{path}: the attribute file has a header but no rows")
    ids = frame[ITEM_COLUMN]
    where = (lambda row: f"line {row + first_line}") if first_line else (lambda row: f"row {row}")
    bad = ids.isna() | (ids.astype(str).str.strip() == "")
    if bad.any():
        raise DataError(f"{path}: empty {ITEM_COLUMN} at {where(int(np.flatnonzero(bad.to_numpy())[0]))}")
    ids = ids.astype(str)
    duplicated = ids.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise DataError(f"{path}: item {ids.iloc[row]!r} appears twice (again at {where(row)}); "
                        "give each item one row, several labels as a|b")
    table: AttributeTable = {}
    for column in wanted:
        labels_of: dict[str, tuple[str, ...]] = {}
        for row, (item, cell) in enumerate(zip(ids.tolist(), frame[column].tolist(), strict=True)):
            try:
                labels = labels_in(cell, column)
            except ValueError as exc:
                raise DataError(f"{path}: {exc} at {where(row)}") from None
            if labels:
                labels_of[item] = labels
        table[column] = labels_of
    return table


def labels_in(cell: object, column: str) -> tuple[str, ...]:
    """The labels of one cell, in first-seen order, without duplicates."""
    if cell is None:
        return ()
    if isinstance(cell, float) and np.isnan(cell):
        return ()
    listed = isinstance(cell, list | tuple | np.ndarray)  # a Parquet list column
    parts = [_text(v) for v in cell] if listed else _text(cell).split(SEPARATOR)
    labels = tuple(dict.fromkeys(p.strip() for p in parts if p is not None and p.strip()))
    if column == AVAILABLE:
        return tuple(dict.fromkeys(_flag(label) for label in labels))
    return labels


def _text(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _flag(label: str) -> str:
    low = label.lower()
    if low in TRUE_WORDS:
        return "true"
    if low in FALSE_WORDS:
        return "false"
    raise ValueError(f"{AVAILABLE} must be true or false (or 1/0, yes/no), not {label!r}")


# ------------------------------------------------------------- aligned with bundle rows


@dataclass
class Column:
    """One attribute over a bundle's rows: labels of row r are values[codes[offsets[r]:offsets[r+1]]]."""

    values: list[str]
    offsets: np.ndarray  # int64 [M + 1]
    codes: np.ndarray  # int32 [number of (row, label) pairs]
    _postings: list[np.ndarray] | None = field(default=None, repr=False)
    _code_of: dict[str, int] | None = field(default=None, repr=False)

    @property
    def num_rows(self) -> int:
        return len(self.offsets) - 1

    def code_of(self, value: str) -> int | None:
        if self._code_of is None:
            self._code_of = {v: i for i, v in enumerate(self.values)}
        return self._code_of.get(value)

    def row_of_pair(self) -> np.ndarray:
        """The row of each (row, label) pair: codes[i] belongs to row row_of_pair()[i]."""
        return np.repeat(np.arange(self.num_rows, dtype=np.int64), np.diff(self.offsets))

    def rows_with(self, code: int) -> np.ndarray:
        """Rows that carry label `code` (sorted), from postings built once."""
        if self._postings is None:
            order = np.argsort(self.codes, kind="stable")
            rows = self.row_of_pair()[order]
            bounds = np.searchsorted(self.codes[order], np.arange(len(self.values) + 1))
            self._postings = [rows[bounds[i]:bounds[i + 1]] for i in range(len(self.values))]
        return self._postings[code]

    def mask(self, values: Iterable[str]) -> np.ndarray:
        """bool [M]: rows with at least one of `values` (all known: the caller checked)."""
        out = np.zeros(self.num_rows, dtype=bool)
        for value in values:
            out[self.rows_with(self.code_of(value))] = True
        return out

    def labels(self, row: int) -> list[str]:
        return [self.values[c] for c in self.codes[self.offsets[row]:self.offsets[row + 1]]]


@dataclass
class ItemAttributes:
    """Every attribute of a catalog, aligned with a bundle's item rows."""

    columns: dict[str, Column]

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def unavailable_rows(self) -> np.ndarray:
        """Rows whose ``available`` attribute says false (the catalog's own stock flag)."""
        column = self.columns.get(AVAILABLE)
        if column is None or column.code_of("false") is None:
            return np.zeros(0, dtype=np.int64)
        rows = column.rows_with(column.code_of("false"))
        true = column.code_of("true")
        if true is not None:  # an item marked both ways is available (a|b means "any of")
            rows = np.setdiff1d(rows, column.rows_with(true))
        return rows

    def summary(self) -> dict[str, int]:
        """attribute -> number of distinct labels (for GET /model and error messages)."""
        return {name: len(column.values) for name, column in self.columns.items()}

    def to_table(self, items: Sequence[str]) -> AttributeTable:
        """Back to raw ids (what a retrain re-aligns on its new catalog)."""
        return {name: {items[row]: tuple(labels) for row in range(column.num_rows)
                       if (labels := column.labels(row))}
                for name, column in self.columns.items()}


def align(table: Mapping[str, Mapping[str, Sequence[str]]], items: Sequence[str]) -> ItemAttributes:
    """The attributes of `items` (a bundle's rows, in order); ids not in `items` are ignored."""
    columns = {}
    for name, labels_of in table.items():
        values = sorted({label for labels in labels_of.values() for label in labels})
        code = {v: i for i, v in enumerate(values)}
        offsets, codes = [0], []
        for item in items:
            codes.extend(code[label] for label in labels_of.get(item, ()))
            offsets.append(len(codes))
        columns[name] = Column(values, np.asarray(offsets, dtype=np.int64), np.asarray(codes, dtype=np.int32))
    described = {item for labels_of in table.values() for item in labels_of}
    known = sum(1 for item in items if item in described)
    if items and known < len(items):
        log.info("item attributes: %d of %d catalog items have none (they match no include filter)",
                 len(items) - known, len(items))
    return ItemAttributes(columns)


def carry_forward(previous: ItemAttributes, previous_items: Sequence[str],
                  items: Sequence[str]) -> ItemAttributes:
    """A retrained catalog's attributes from the previous bundle's, matched by raw item id."""
    return align(previous.to_table(previous_items), items)


# ------------------------------------------------------------------ the bundle's file


def to_json(attributes: ItemAttributes) -> bytes:
    """The bundle file: {"format": 1, "columns": {name: {"values": [...], "rows": [[code, ...], ...]}}}."""
    columns = {}
    for name, column in attributes.columns.items():
        codes = column.codes.tolist()
        bounds = column.offsets.tolist()
        columns[name] = {"values": column.values,
                         "rows": [codes[bounds[r]:bounds[r + 1]] for r in range(column.num_rows)]}
    return json.dumps({"format": FORMAT, "columns": columns}, ensure_ascii=False,
                      separators=(",", ":")).encode()


def from_json(data: bytes, num_items: int, where: str = "item attributes") -> ItemAttributes:
    """Parse and check the bundle file; any inconsistency raises `BundleError`."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BundleError(f"{where}: unknown format {document.get('format') if isinstance(document, dict) else None!r}"
                          f" (this release reads format {FORMAT})")
    raw = document.get("columns")
    if not isinstance(raw, dict):
        raise BundleError(f"{where}: 'columns' must be an object")
    columns = {}
    for name, spec in raw.items():
        values, rows = (spec.get("values"), spec.get("rows")) if isinstance(spec, dict) else (None, None)
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values) \
                or len(set(values)) != len(values):
            raise BundleError(f"{where}: {name}: 'values' must be a list of distinct strings")
        if not isinstance(rows, list) or len(rows) != num_items:
            raise BundleError(f"{where}: {name}: 'rows' must list the labels of each of the "
                              f"{num_items} items")
        lengths = np.fromiter((len(r) if isinstance(r, list) else -1 for r in rows), dtype=np.int64,
                              count=len(rows))
        if (lengths < 0).any():
            raise BundleError(f"{where}: {name}: every row must be a list of label codes")
        flat = [c for r in rows for c in r]
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in flat):
            raise BundleError(f"{where}: {name}: label codes must be integers")
        codes = np.asarray(flat, dtype=np.int64)
        if codes.size and (codes.min() < 0 or codes.max() >= len(values)):
            raise BundleError(f"{where}: {name}: a label code is outside 0..{len(values) - 1}")
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        columns[name] = Column(values, offsets, codes.astype(np.int32))
    return ItemAttributes(columns)
