"""`sine retrain`: the nightly cycle. Export events, retrain, gate, publish, hot swap.

1. **Export** new click events from the Redis stream to the event store (exactly once,
   see deploy/events.py).
2. **Train** on the base log plus every stored event, with the live model's training
   options unless a config file or flags say otherwise. With a warm start the candidate
   begins from the live model's run (known items keep their rows, new items get fresh
   ones, every other weight is carried), trains with its own epochs and patience on the
   stored events plus each user's last `warm_recent` clicks (trainer/recent.py), and
   its untrained starting point is scored too (kept if no epoch beats it).
3. **Gate**: the candidate is exported as a bundle and scored, as served, on the same
   validation split as the live bundle; it is promoted only if its metric (default
   NDCG@10) is not worse than the live one's by more than the margin. A refused
   candidate (run and bundle) is moved to ``refused/`` with the report saying why.
4. **Publish**: move the bundle into the store, build and verify its index, switch the
   store's CURRENT pointer (atomic rename), set the Redis pointer and announce it on the
   reload channel so every replica swaps. The last `keep` versions stay for rollback.
5. **Report**: a JSON report under ``reports/`` and an exit code say what happened.

Nothing touches the live model before step 4's pointer switch, so a failure anywhere
leaves it serving; a second retrain started while one runs exits at once (a lock file).

Exit codes: 0 promoted, 3 refused by the gate, 1 failed (see the report), 4 another
retrain holds the lock, 2 bad options.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from deploy.events import export_events, read_events
from deploy.gate import decide, evaluate_bundle
from deploy.pruning import prune
from sine import bundle_store
from sine.atomic import atomic_write
from sine.attributes import AttributeTable, read_attribute_file
from sine.bundle import Bundle, read_bundle
from sine.data.logs import ITEM, TIME, USER, LogColumns, filter_min_counts, read_log
from sine.data.split import leave_one_out
from sine.errors import SineError

log = logging.getLogger("sine.retrain")

PROMOTED, FAILED, REFUSED, LOCKED = 0, 1, 3, 4


@dataclass
class RetrainSettings:
    data_dir: Path
    store: Path
    base_log: Path | None = None
    columns: LogColumns = field(default_factory=LogColumns)
    redis_url: str | None = None
    redis_prefix: str = "sine:"
    metric: str = "ndcg@10"
    margin: float = 0.001
    keep: int = 5
    warm_start: bool = False
    warm_recent: int = 5
    """A warm start trains on each user's last this many training clicks, plus every
    stored event (trainer/recent.py); 0: on the whole log."""
    warm_epochs: int = 5
    warm_patience: int = 1
    config_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    index_type: str = "auto"
    gpu: str = "auto"
    recall_floor: float = 0.95
    attributes: Path | None = None  # item attribute file; None: the live bundle's, carried forward


class Step:
    """Times a step of the report and records its outcome."""

    def __init__(self, report: dict[str, Any], name: str):
        self.report, self.name = report, name

    def __enter__(self) -> dict[str, Any]:
        self.started = time.perf_counter()
        self.entry: dict[str, Any] = {"status": "running"}
        self.report["steps"][self.name] = self.entry
        log.info("retrain: %s", self.name)
        return self.entry

    def __exit__(self, kind, exc, tb) -> None:
        self.entry["seconds"] = round(time.perf_counter() - self.started, 2)
        self.entry["status"] = "failed" if exc else "done"


@contextlib.contextmanager
def exclusive(data_dir: Path) -> Iterator[bool]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".retrain.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_frame(settings: RetrainSettings) -> tuple[pd.DataFrame, int]:
    """Base log + stored events, sorted by user then time; and the number of events."""
    frame, events = load_frame_and_events(settings)
    return frame, len(events)


def load_frame_and_events(settings: RetrainSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Base log + stored events, sorted by user then time; and the events alone."""
    frames = []
    if settings.base_log is not None:
        frames.append(read_log(settings.base_log, settings.columns)[[USER, ITEM, TIME]])
    events = read_events(settings.data_dir / "events", frames[0][TIME] if frames else None)
    frames.append(events[[USER, ITEM, TIME]])
    frame = pd.concat(frames, ignore_index=True)
    if frame.empty:
        raise SineError("nothing to train on: no base log and no stored events")
    frame = frame.sort_values([USER, TIME], kind="stable").reset_index(drop=True)
    return frame, events


def training_config(settings: RetrainSettings, live: Bundle | None):
    from trainer.config import TrainConfig, load_config_file

    if settings.config_file is not None:
        values = load_config_file(settings.config_file)
    elif live is not None and "training" in live.manifest:
        values = dict(live.manifest["training"])
    else:
        values = {}
    values["init_from"] = None
    if settings.warm_start and live is not None and "run" in live.manifest:
        run_path = Path(live.manifest["run"].get("path", ""))
        if run_path.is_dir():
            values.update(init_from=str(run_path), epochs=settings.warm_epochs,
                          patience=settings.warm_patience)
        else:
            log.warning("warm start asked for, but the live model's run %s is gone: cold start", run_path)
    values.update(settings.overrides)
    return TrainConfig.from_dict(values)


def run_retrain(settings: RetrainSettings,
                transform: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> dict[str, Any]:
    """Run the cycle; returns the report (its ``exit_code`` is the process exit status).

    `transform` edits the training frame before the split (tests use it to build a
    deliberately broken candidate).
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict[str, Any] = {"started_at": stamp, "settings": _public(settings), "steps": {},
                              "status": "running"}
    started = time.perf_counter()
    with exclusive(settings.data_dir) as acquired:
        if not acquired:
            report.update(status="locked", exit_code=LOCKED,
                          error=f"another retrain holds {settings.data_dir / '.retrain.lock'}")
            return report
        try:
            _cycle(settings, report, stamp, transform)
        except Exception as exc:
            report.update(status="failed", exit_code=FAILED, error=f"{type(exc).__name__}: {exc}",
                          traceback=traceback.format_exc(limit=8))
            log.error("retrain failed: %s (the live model is untouched)", exc)
        report["pruned"] = {k: len(v) for k, v in prune(settings.data_dir, settings.store).items()}
        report["total_seconds"] = round(time.perf_counter() - started, 2)
        report["live_version_after"] = bundle_store.current_version_name(settings.store)
        path = settings.data_dir / "reports" / f"retrain-{stamp}.json"
        atomic_write(path, json.dumps(report, indent=2, default=str))
        report["report_path"] = str(path)
    return report


def _cycle(settings: RetrainSettings, report: dict[str, Any], stamp: str, transform) -> None:
    from index_builder.build import build_for_bundle
    from trainer.export import export_bundle
    from trainer.recent import recent_only
    from trainer.run import train_split

    # candidates of runs that were killed are garbage now (we hold the lock: none is in use)
    if settings.store.is_dir():
        for stale in settings.store.glob(".candidate-*"):
            shutil.rmtree(stale, ignore_errors=True)
    # what the replicas serve: an explicit reload or rollback may have moved only the Redis key
    live_name = bundle_store.reconcile(settings.store, settings.redis_url, settings.redis_prefix)
    live = read_bundle(settings.store / live_name) if live_name else None
    report["live_version_before"] = live_name
    attributes = attribute_source(settings, live)  # a bad attribute file fails before training

    with Step(report, "export_events") as step:
        if settings.redis_url:
            client = bundle_store.redis_client(settings.redis_url)
            result = export_events(client, f"{settings.redis_prefix}events", settings.data_dir / "events")
            step.update(events=result.events, files=len(result.files), last_id=result.last_id,
                        trimmed=result.trimmed)
        else:
            step.update(skipped="no Redis configured")

    with Step(report, "train") as step:
        frame, new_events = load_frame_and_events(settings)
        events = len(new_events)
        config = training_config(settings, live)
        data = leave_one_out(filter_min_counts(frame, config.min_item_count, config.min_user_count))
        train_data = data
        if transform is not None:  # the gate below still scores on the untouched split
            train_data = leave_one_out(filter_min_counts(transform(frame), config.min_item_count,
                                                         config.min_user_count))
        if config.init_from and settings.warm_recent > 0:
            per_user = new_events[USER].value_counts()
            extra = per_user.reindex(train_data.user_ids, fill_value=0).to_numpy(dtype="int64")
            train_data = recent_only(train_data, settings.warm_recent, extra)
        run_dir = settings.data_dir / "runs" / stamp
        source = {"path": f"{settings.base_log} + {events} stored events", "events": events}
        metrics = train_split(train_data, source, run_dir, config)
        step.update(run=str(run_dir), clicks=len(frame), events=events, epochs=metrics["epochs"],
                    best_epoch=metrics["best_epoch"], warm_start=config.init_from,
                    train_examples=metrics["dataset"]["train_examples"],
                    valid_ndcg10=metrics["valid"]["ndcg@10"])

    # built inside the store (same file system: promotion is one rename) under a hidden
    # name that no reader and no pruning ever looks at
    candidate_dir = settings.store / f".candidate-v{stamp}"
    with Step(report, "export_bundle") as step:
        exported = export_bundle(run_dir, candidate_dir, attributes=attributes)
        step.update(bundle=str(candidate_dir), version=exported.version,
                    attributes=sorted(exported.attributes.columns) if exported.attributes else None)

    with Step(report, "gate") as step:
        # both models as served (ONNX encoder + item table), on the same validation split
        candidate_metrics = evaluate_bundle(exported, data, "valid")
        live_metrics = evaluate_bundle(live, data, "valid") if live is not None else None
        decision = decide(candidate_metrics, live_metrics, settings.metric, settings.margin)
        step.update(asdict(decision), candidate_valid=candidate_metrics, live_valid=live_metrics)
    if not decision.promote:
        refused = settings.data_dir / "refused" / stamp
        refused.mkdir(parents=True, exist_ok=True)
        shutil.move(run_dir, refused / "run")
        shutil.move(candidate_dir, refused / "bundle")
        atomic_write(refused / "refused.json", json.dumps(asdict(decision), indent=2))
        report.update(status="refused", exit_code=REFUSED, reason=decision.reason, kept_aside=str(refused))
        log.warning("candidate refused: %s", decision.reason)
        return

    name = f"v{stamp}"
    bundle_dir = settings.store / name
    candidate_dir.rename(bundle_dir)  # one atomic rename; not live until publish
    with Step(report, "build_index") as step:
        indexed = build_for_bundle(bundle_dir, settings.index_type, settings.gpu,
                                   recall_floor=settings.recall_floor)
        step.update(type=indexed.manifest["index"]["type"], recall=indexed.manifest["index"]["recall"])
    with Step(report, "publish") as step:
        bundle_store.publish_everywhere(settings.store, bundle_dir, settings.keep, settings.redis_url,
                                        settings.redis_prefix)
        step.update(version=name, announced=bool(settings.redis_url))
    report.update(status="promoted", exit_code=PROMOTED, version=name)
    log.info("promoted %s", name)


def attribute_source(settings: RetrainSettings, live: Bundle | None) -> AttributeTable | None:
    """The new bundle's item attributes: the configured file, else the live bundle's by raw id
    (items new to the catalog have none until a file describes them).

    Availability set at run time (`POST /admin/items`) lives in Redis by raw id and needs
    no carrying: every bundle is filtered by it.
    """
    if settings.attributes is not None:
        return read_attribute_file(settings.attributes)
    if live is not None and live.attributes is not None:
        return live.attributes.to_table(live.items)
    return None


def _public(settings: RetrainSettings) -> dict[str, Any]:
    values = asdict(settings)
    if values.get("redis_url"):
        values["redis_url"] = "(set)"
    return values
