"""`sine schedule`: run a command on a cron schedule (the compose stack's nightly retrain).

A process of its own rather than the host's cron, so that the same image runs
everywhere (compose, a VM, a laptop); on Kubernetes a CronJob does this instead. A run
that fails is logged with its exit code and the schedule goes on; SIGTERM stops the
loop between runs.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
from collections.abc import Sequence
from datetime import datetime

from sine.errors import SineError

log = logging.getLogger("sine.schedule")


def next_run(expression: str, after: datetime) -> datetime:
    from croniter import croniter

    if not croniter.is_valid(expression):
        raise SineError(f"not a cron expression: {expression!r} (e.g. '0 3 * * *' for 03:00 daily)")
    return croniter(expression, after).get_next(datetime)


def run_schedule(expression: str, command: Sequence[str], run_now: bool = False,
                 max_runs: int | None = None) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runs = 0
    if run_now:
        runs += _run(command)
    while not stop.is_set() and (max_runs is None or runs < max_runs):
        now = datetime.now().astimezone()
        at = next_run(expression, now)
        log.info("next run at %s: %s", at.isoformat(timespec="seconds"), " ".join(command))
        if stop.wait((at - now).total_seconds()):
            break
        runs += _run(command)


def _run(command: Sequence[str]) -> int:
    started = datetime.now()
    code = subprocess.run(list(command), check=False).returncode
    level = logging.INFO if code in (0, 3) else logging.ERROR  # 3: refused by the gate
    log.log(level, "%s exited with %d after %s", command[0], code, datetime.now() - started)
    return 1
