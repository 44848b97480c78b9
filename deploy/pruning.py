"""Pruning what the nightly retrain leaves in its data directory, so nothing grows forever.

Every retrain adds a training run (``runs/``), a report (``reports/``), possibly a
refused candidate (``refused/``), and the event store (``events/day=...``) grows with
the clicks. `prune` applies one rule per folder, from the environment:

========================= ======= ====================================================
``SINE_KEEP_RUNS``        10      newest training runs kept; a run that a bundle in the
                                  store was exported from is always kept (warm starts
                                  and ``GET /model`` refer to it)
``SINE_KEEP_REFUSED``     5       newest refused candidates kept (run + bundle + why)
``SINE_KEEP_REPORTS``     90      newest retrain reports kept
``SINE_EVENT_RETENTION_DAYS`` 365 event partitions older than this many days are
                                  deleted (0: keep every event); the retrain trains on
                                  the base log plus the events kept
========================= ======= ====================================================

Folder names sort by time (``runs/20261127T030000Z``, ``events/day=2026-11-27``), so
"newest" is by name. Pruning never raises: a folder it cannot delete is logged and
left for the next run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

log = logging.getLogger("sine.retrain")


@dataclass(frozen=True)
class PruneRules:
    keep_runs: int = 10
    keep_refused: int = 5
    keep_reports: int = 90
    event_retention_days: int = 365

    @classmethod
    def from_env(cls) -> PruneRules:
        def number(name: str, default: int) -> int:
            raw = os.environ.get(name, "").strip()
            try:
                value = int(raw) if raw else default
            except ValueError:
                log.error("%s=%r is not a whole number: using %d", name, raw, default)
                return default
            return max(0, value)

        return cls(number("SINE_KEEP_RUNS", cls.keep_runs), number("SINE_KEEP_REFUSED", cls.keep_refused),
                   number("SINE_KEEP_REPORTS", cls.keep_reports),
                   number("SINE_EVENT_RETENTION_DAYS", cls.event_retention_days))


def runs_in_use(store: Path | None) -> set[Path]:
    """Runs that a bundle in the store (live, rollback or any kept version) came from."""
    used: set[Path] = set()
    if store is None or not store.is_dir():
        return used
    for manifest in store.glob("*/manifest.json"):
        try:
            path = json.loads(manifest.read_text()).get("run", {}).get("path")
        except (OSError, ValueError, AttributeError):
            continue
        if path:
            used.add(Path(path).resolve())
    return used


def _remove(path: Path, removed: list[str]) -> None:
    try:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(str(path))
    except OSError as exc:
        log.error("could not prune %s: %s (left for the next run)", path, exc)


def _keep_newest(paths: list[Path], keep: int, protected: set[Path], removed: list[str]) -> None:
    for path in sorted(paths, key=lambda p: p.name)[: max(0, len(paths) - keep)]:
        if path.resolve() not in protected:
            _remove(path, removed)


def prune(data_dir: Path, store: Path | None = None, rules: PruneRules | None = None,
          today: date | None = None) -> dict[str, list[str]]:
    """Apply the rules to `data_dir`; returns what was removed, per folder."""
    rules = rules or PruneRules.from_env()
    today = today or datetime.now(UTC).date()
    removed: dict[str, list[str]] = {"runs": [], "refused": [], "reports": [], "events": []}
    try:
        runs = data_dir / "runs"
        if runs.is_dir():
            _keep_newest([p for p in runs.iterdir() if p.is_dir()], rules.keep_runs, runs_in_use(store),
                         removed["runs"])
        refused = data_dir / "refused"
        if refused.is_dir():
            _keep_newest([p for p in refused.iterdir() if p.is_dir()], rules.keep_refused, set(),
                         removed["refused"])
        reports = data_dir / "reports"
        if reports.is_dir():
            _keep_newest(list(reports.glob("retrain-*.json")), rules.keep_reports, set(), removed["reports"])
        events = data_dir / "events"
        if rules.event_retention_days and events.is_dir():
            oldest = today - timedelta(days=rules.event_retention_days)
            for day in events.glob("day=*"):
                try:
                    when = date.fromisoformat(day.name.removeprefix("day="))
                except ValueError:
                    continue
                if when < oldest:
                    _remove(day, removed["events"])
    except OSError as exc:  # e.g. a folder vanished while listed
        log.error("pruning %s stopped: %s", data_dir, exc)
    counts = {k: len(v) for k, v in removed.items() if v}
    if counts:
        log.info("pruned %s", ", ".join(f"{n} {k}" for k, n in counts.items()))
    return removed
