"""Data-parallel training on several processes or nodes, with PyTorch's own engine.

``torchrun --nproc_per_node N -m sine_cli train ...`` (or ``torchrun ... $(which sine)
train ...``) starts N copies of the same command; torchrun tells each its RANK,
LOCAL_RANK and WORLD_SIZE and where to meet (MASTER_ADDR/PORT). `session` turns that into
a process group (NCCL when training on CUDA, each rank on cuda:LOCAL_RANK; gloo on CPUs)
and the model is wrapped in `DistributedDataParallel`, which averages the gradients.
Nothing here reduces gradients by hand.

What the ranks share and what they split (trainer/fit.py):

- ``--batch-size`` is the *global* batch: every rank draws the same epoch plan (same
  seed) and takes its 1/N slice of each global batch, so an epoch is the same sequence of
  global batches as in one process, and the same command means the same optimisation on
  any number of processes. It must divide by the world size.
- Each rank's loss is weighted by its share of the global batch, so DDP's gradient
  average is the gradient of the global batch's mean loss (also for a short last batch).
- The sampled softmax draws its negatives from the same generator in lockstep: a global
  batch shares one set of S negatives, as in one process.
- Parameters start equal (same seed; DDP also broadcasts rank 0's); dropout draws per
  rank (torch's RNG reseeded with seed + rank after the model is built).
- Evaluation is sharded by batches of users and the integer ranks of the targets are
  summed across processes, so every rank holds all ranks and the metrics are exactly a
  single process's (tests/test_distributed.py); early stopping then decides the same on
  every rank, and rank 0's decision is broadcast besides.
- Only rank 0 writes the run directory, logs at INFO and shows progress bars.

Without torchrun (no WORLD_SIZE, or WORLD_SIZE=1) none of this runs: the single-process
path is the one it always was.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from sine.errors import SineError
from sine.launch import env_int, launched_world_size

log = logging.getLogger("sine.train")

TIMEOUT = timedelta(minutes=30)
"""How long a collective waits for a missing rank before failing (torchrun also ends the
whole group as soon as one rank exits with an error)."""


@dataclass(frozen=True)
class Group:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Group(rank=0, world_size=1, local_rank=0)


def current() -> Group:
    """The active process group, or SINGLE when training runs in one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return SINGLE
    return Group(dist.get_rank(), dist.get_world_size(), env_int("LOCAL_RANK", 0))


def rank_device(name: str) -> str:
    """The device a rank trains on: under torchrun ``cuda``/``auto`` become
    cuda:LOCAL_RANK (one GPU per process); an explicit cuda:N is refused when several
    processes share the node, since they would all land on the same GPU."""
    if launched_world_size() <= 1:
        return name
    local_rank = env_int("LOCAL_RANK", 0)
    wants_cuda = name == "cuda" or (name == "auto" and torch.cuda.is_available())
    if wants_cuda:
        return f"cuda:{local_rank}"
    if name.startswith("cuda:") and env_int("LOCAL_WORLD_SIZE", 1) > 1:
        raise SineError(f"--device {name} under torchrun with several processes per node: "
                        f"give --device cuda (each rank takes cuda:LOCAL_RANK)")
    return name


@contextmanager
def session(device: torch.device) -> Iterator[Group]:
    """The process group for one training run: joined here when torchrun launched this
    process (NCCL for CUDA, gloo for CPUs), left on exit. In one process: SINGLE."""
    if launched_world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        yield current()
        return
    if not dist.is_available():
        raise SineError("launched with WORLD_SIZE > 1, but this torch has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=TIMEOUT,
                            device_id=device if device.type == "cuda" else None)
    group = current()
    if not group.is_main:  # one voice: rank 0 logs progress, the others only warnings
        if group.local_rank == 0:  # ... but another node's terminal says where to look
            log.info("distributed: rank %d of %d on %s; rank 0 logs the progress and writes the run",
                     group.rank, group.world_size, socket.gethostname())
        logging.getLogger("sine").setLevel(logging.WARNING)
    log.info("distributed: %d processes (%s), this is rank %d", group.world_size, backend,
             group.rank)
    try:
        yield group
    finally:
        dist.destroy_process_group()


def check_batch(batch_size: int, world_size: int) -> int:
    """The per-rank batch of a global `batch_size`; one that does not split is a one-line
    error (checked before the log is read, so it fails at once)."""
    if batch_size % world_size:
        nearest = batch_size - batch_size % world_size or world_size
        raise SineError(f"--batch-size {batch_size} is the global batch and must divide by the "
                        f"{world_size} processes (e.g. --batch-size {nearest})")
    return batch_size // world_size


def check_shardable(group: Group, batch_size: int, examples: int) -> int:
    """The per-rank batch; a setting that cannot be split is a one-line error."""
    if group.world_size == 1:
        return batch_size
    if examples < group.world_size:
        raise SineError(f"{group.world_size} processes but only {examples} training example(s): "
                        "every process needs at least one")
    return check_batch(batch_size, group.world_size)


def shard(batch: torch.Tensor, group: Group) -> torch.Tensor:
    """This rank's contiguous slice of a global batch (sizes differ by at most one)."""
    if group.world_size == 1:
        return batch
    bounds = np.linspace(0, len(batch), group.world_size + 1).round().astype(int)
    return batch[bounds[group.rank] : bounds[group.rank + 1]]


def sum_across(values: torch.Tensor, group: Group) -> torch.Tensor:
    """Element-wise sum over all ranks (on the rank's device for NCCL)."""
    if group.world_size == 1:
        return values
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def agree(flag: bool, group: Group, device: torch.device) -> bool:
    """Rank 0's value of `flag` on every rank (a decision all ranks must take together)."""
    if group.world_size == 1:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def wrap(model: torch.nn.Module, group: Group, device: torch.device) -> torch.nn.Module:
    """`model` under DistributedDataParallel (itself in one process).

    Every parameter gets a gradient at every step (the item table through the softmax,
    the prototypes through the top-K selection and the regulariser), so DDP need not
    search for unused ones; the models hold no buffers to keep in step.
    """
    if group.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None,
        gradient_as_bucket_view=True,
    )
