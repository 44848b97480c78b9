"""What a launcher such as torchrun told this process about its peers, read from the
environment (RANK, WORLD_SIZE), torch-free so the CLI can ask before importing torch.

Under ``torchrun --nproc_per_node N`` every process runs the same command and meets the
same bad option; only the first process of each machine should say so
(`speaks_for_launch`), or the one-line error is printed N times per machine.
"""

from __future__ import annotations

import os

from sine.errors import SineError


def env_int(name: str, default: int) -> int:
    """An integer set by the launcher; `default` when unset; a one-line error when garbled."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SineError(f"environment {name}={value!r} is not an integer (set by torchrun)") from None


def launched_world_size() -> int:
    """WORLD_SIZE as torchrun set it (1 when not launched by torchrun)."""
    return env_int("WORLD_SIZE", 1)


def launched_rank() -> int:
    """RANK as torchrun set it (0 when not launched by torchrun)."""
    return env_int("RANK", 0)


def speaks_for_launch() -> bool:
    """Whether this process prints user-facing errors: the first process of its machine
    (LOCAL_RANK 0; RANK 0 where the launcher sets no LOCAL_RANK), or no launcher at all.

    One per machine, not one in all: on a multi-node run each node's terminal (or log)
    shows the one-line error, where rank 0's alone would leave the other nodes with only
    torchrun's failure summary. Never raises (it is asked while reporting another error):
    a rank that is not an integer counts as 0, so the error is printed rather than lost.
    """
    try:
        if launched_world_size() <= 1:  # not launched: a stray LOCAL_RANK must not silence it
            return True
        first = env_int("LOCAL_RANK", -1)  # -1: the launcher set no LOCAL_RANK
        return (first if first >= 0 else launched_rank()) == 0
    except SineError:
        return True
