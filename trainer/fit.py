"""The training loop: next-click objective, early stopping on validation NDCG@10.

Section 3.4 of the paper: every prefix of a training sequence predicts its next click,
loss = eq. (9) likelihood (full or sampled softmax) + lambda * eq. (10) regulariser.
After each epoch the model ranks the validation targets; the best epoch by NDCG@10 is
kept (in memory and, through `on_improvement`, on disk) and training stops by the
stopping rule (trainer/stopping.py: `patience` epochs without improvement, or a clear
decline after the best). Ctrl-C ends training early and keeps the best epoch so far.
A step never waits for the device (see `epoch_plan`), so a GPU runs ahead of Python.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from sine.data.split import SplitData
from sine.metrics import ranking_metrics
from trainer import distributed
from trainer.config import FULL_SOFTMAX_MAX_ITEMS, TrainConfig
from trainer.diagnostics import concept_usage
from trainer.evaluate import rank_targets
from trainer.examples import training_examples
from trainer.loss import SampledSoftmax, cpu_native_bf16, full_softmax_loss
from trainer.models import SINE, SequenceEncoder
from trainer.stopping import StoppingRule

log = logging.getLogger("sine.train")

SELECTION_METRIC = "ndcg@10"


@dataclass
class FitResult:
    best_epoch: int
    epochs: int  # epochs actually run
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0  # optimisation time, evaluation excluded
    wall_seconds: float = 0.0
    examples_per_second: float = 0.0
    loss_kind: str = "full"
    interrupted: bool = False


def resolve_device(name: str) -> torch.device:
    """`cpu`, `cuda`, `cuda:N` or `auto`; a device this machine cannot use is a one-line
    SineError (not a traceback from deep inside the first CUDA call)."""
    from sine.errors import SineError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SineError(f"--device must be cpu, cuda, cuda:N or auto, not {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise SineError(f"--device {name}: only cpu and cuda devices are supported")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SineError(f"--device {name} was asked for, but torch sees no CUDA device "
                            f"(torch {torch.__version__}; try --device cpu)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise SineError(f"--device {name}: torch sees {count} CUDA device(s), "
                            f"cuda:0 to cuda:{count - 1}")
    return device


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def loss_kind(config: TrainConfig, num_items: int) -> str:
    if config.loss != "auto":
        return config.loss
    return "full" if num_items <= FULL_SOFTMAX_MAX_ITEMS else "sampled"


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 matrix products natively (not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_native_bf16()


def use_bf16(config: TrainConfig, device: torch.device) -> bool:
    if config.precision == "auto":
        return native_bf16(device)
    return config.precision == "bf16"


AUTOCAST_ENCODER_ON_CUDA = False
"""Whether bf16 training on CUDA also runs the encoder under `torch.autocast`.

Off: at the paper's batch of 128 and D = 128 a step is a few hundred small kernels, the
GPU waits on their launches rather than on arithmetic, and autocast only adds casting
kernels. `bench/gpu_check.py` times both; see bench/results/gpu_check.md."""


def use_autocast(bf16: bool, device: torch.device) -> bool:
    return bf16 and device.type == "cuda" and AUTOCAST_ENCODER_ON_CUDA


def epoch_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                  bucketed: bool) -> list[torch.Tensor]:
    """One epoch of example indices, split into batches, in random order.

    Bucketed: the shuffled examples are cut into chunks of 64 batches, each chunk is
    sorted by sequence length and cut into batches, and the batches are shuffled. Every
    example is still seen once per epoch in a random batch order, but a batch holds
    sequences of similar length, so little of it is padding.
    """
    order = torch.randperm(len(lengths), generator=generator)
    if not bucketed:
        return list(order.split(batch_size))
    batches: list[torch.Tensor] = []
    for chunk in order.split(batch_size * 64):
        ranked = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches.extend(ranked.split(batch_size))
    shuffle = torch.randperm(len(batches), generator=generator)
    return [batches[i] for i in shuffle]


def epoch_plan(lengths: torch.Tensor, config: TrainConfig, generator: torch.Generator,
               device: torch.device) -> list[tuple[torch.Tensor, int]]:
    """One epoch as (example indices on `device`, columns to keep) per batch.

    The indices of the whole epoch go to the device in one (pinned, non-blocking) copy:
    a copy per step from ordinary memory would make the host wait for the GPU at every
    step. Widths come from the lengths on the host, so no step reads the device either.
    """
    batches = epoch_batches(lengths, config.batch_size, generator, config.length_buckets)
    if config.length_buckets:
        widths = [int(lengths[batch].max()) for batch in batches]
    else:
        widths = [config.max_len] * len(batches)
    flat = torch.cat(batches)
    if device.type == "cuda":
        flat = flat.pin_memory()
    flat = flat.to(device, non_blocking=True)
    return list(zip(flat.split([len(batch) for batch in batches]), widths, strict=True))


def train_step(model: SequenceEncoder, optimizer: torch.optim.Optimizer, likelihood: Callable,
               clicks: torch.Tensor, targets: torch.Tensor, bf16: bool,
               autocast: bool = False, share: float = 1.0) -> torch.Tensor:
    """One optimisation step; returns the loss as a device tensor (reading it syncs).

    `model` may be wrapped in DistributedDataParallel; `share` (world size x this rank's
    part of the global batch) weights the likelihood so that DDP's average of the ranks'
    gradients is the gradient of the global batch's mean (trainer/distributed.py).
    """
    core = model.module if isinstance(model, DistributedDataParallel) else model
    with torch.autocast(clicks.device.type, dtype=torch.bfloat16, enabled=autocast):
        out = model(clicks)
    likely = likelihood(core.training_vector(out, targets), core.item_table(), targets, bf16)
    regular = core.regularization()  # parameters only: the same on every rank
    loss = likely + regular
    optimizer.zero_grad(set_to_none=True)
    (loss if share == 1.0 else likely * share + regular).backward()
    optimizer.step()
    return loss.detach()


def make_likelihood(config: TrainConfig, data: SplitData, generator: torch.Generator) -> Callable:
    if loss_kind(config, data.num_items) == "full":
        return full_softmax_loss
    return SampledSoftmax(data.train_item_counts(), config.negatives, generator)


def make_optimizer(model: SequenceEncoder, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                            fused=True)


def fit(
    model: SequenceEncoder,
    data: SplitData,
    config: TrainConfig,
    device: torch.device,
    on_improvement: Callable[[SequenceEncoder, int], None] | None = None,
    score_start: bool = False,
) -> FitResult:
    """Train `model` in place; on return it holds the weights of the best epoch.

    With `score_start` (a warm start) the weights as given are validated first, as
    epoch 0: they are kept when no epoch of training beats them.
    """
    started = time.perf_counter()
    group = distributed.current()  # every rank draws the same plan from the same generator
    generator = torch.Generator().manual_seed(config.seed)
    examples = training_examples(data, config.max_len, device, lazy=config.memory_budget is not None)
    lengths = examples.lengths
    valid = data.evaluation_set("valid", config.max_len)
    num_examples = len(examples)
    rank_batch = distributed.check_shardable(group, config.batch_size, num_examples)

    kind = loss_kind(config, data.num_items)
    bf16 = use_bf16(config, device)
    autocast = use_autocast(bf16, device)
    likelihood = make_likelihood(config, data, generator)
    log.info(
        "training %s on %s examples (%s items, %s softmax%s%s), batch %d, device %s",
        config.model, f"{num_examples:,}", f"{data.num_items:,}", kind,
        (", bf16 products" + ("" if native_bf16(device) else
                              " (no bf16 hardware: bf16 inputs multiplied in float32, a GPU's numbers)"))
        if bf16 and kind == "full" else "",
        ", bf16 autocast" if autocast else "", config.batch_size, device,
    )
    if group.world_size > 1:
        log.info("data parallel: %d processes, global batch %d = %d per process",
                 group.world_size, config.batch_size, rank_batch)

    model.to(device)
    optimizer = make_optimizer(model, config)
    trained = distributed.wrap(model, group, device)
    if group.world_size > 1:  # equal initial weights above; dropout masks differ per rank
        torch.manual_seed(config.seed + group.rank)
    result = FitResult(best_epoch=0, epochs=0, loss_kind=kind)
    rule = StoppingRule(config.patience, config.stop_decline, config.decline_epochs)
    best_score, best_state, scores = -math.inf, None, []
    train_seconds = 0.0

    def validate(record: dict[str, Any]) -> None:
        """Score the model on the validation targets; keep it if it is the best yet."""
        nonlocal best_score, best_state
        model.eval()
        record["valid"] = ranking_metrics(rank_targets(scorer_of(model), valid, device=device))
        if isinstance(model, SINE) and group.is_main:  # a diagnostic: rank 0 alone
            record["concepts"] = concept_usage(model, valid.inputs, device=device)
        result.history.append(record)
        scores.append(record["valid"][SELECTION_METRIC])
        improved = scores[-1] > best_score
        if improved:
            best_score = scores[-1]
            best_state = copy.deepcopy(model.state_dict())
            result.best_epoch = record["epoch"]
            if on_improvement is not None and group.is_main:
                on_improvement(model, record["epoch"])
        log.info(_epoch_line(record, improved))

    if score_start:
        validate({"epoch": 0, "loss": None, "seconds": 0.0, "examples_per_second": 0.0})

    try:
        for epoch in range(1, config.epochs + 1):
            model.train()
            epoch_start = time.perf_counter()
            plan = epoch_plan(lengths, config, generator, device)
            total_loss = torch.zeros((), device=device)
            bar = tqdm(
                total=num_examples, desc=f"epoch {epoch}", unit="ex", unit_scale=True,
                leave=False, file=sys.stderr, disable=None if group.is_main else True,
                mininterval=0.5,
            )
            shown = epoch_start
            steps = 0
            for step, (batch, width) in enumerate(plan):
                if len(batch) < group.world_size:  # a last batch too short to split: skipped
                    continue
                mine = distributed.shard(batch, group)
                loss = train_step(trained, optimizer, likelihood, *examples.batch(mine, width),
                                  bf16, autocast, share=len(mine) * group.world_size / len(batch))
                total_loss += loss
                steps += 1
                bar.update(len(batch))
                # reading the loss waits for the device: at most every 2 s, and only
                # when a bar is on screen
                if bar.disable is False and time.perf_counter() - shown > 2.0:
                    shown = time.perf_counter()
                    bar.set_postfix(loss=f"{loss.item():.4f}",
                                    ex_s=f"{(step + 1) * config.batch_size / (shown - epoch_start):,.0f}")
            bar.close()
            total_loss = distributed.sum_across(total_loss, group) / group.world_size
            mean_loss = float(total_loss) / steps  # waits for the epoch's last step
            epoch_seconds = time.perf_counter() - epoch_start
            train_seconds += epoch_seconds

            validate({"epoch": epoch, "loss": mean_loss, "seconds": epoch_seconds,
                      "examples_per_second": num_examples / epoch_seconds})
            result.epochs = epoch
            if not math.isfinite(mean_loss):
                log.warning("loss is not finite; stopping (lower --lr?)")
                break
            if distributed.agree(rule.should_stop(scores), group, device):
                stale = len(scores) - 1 - scores.index(best_score)
                log.info("no better validation %s for %d epochs%s: stopping", SELECTION_METRIC,
                         stale, "" if stale >= rule.patience else
                         f" and {rule.decline_epochs} in a row more than {rule.decline * 100:g}% below the best")
                break
    except KeyboardInterrupt:
        if group.world_size > 1:  # the other ranks may be mid-step: no common way out
            raise
        result.interrupted = True
        log.warning("interrupted: finishing with the best epoch so far (%d)", result.best_epoch)

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.train_seconds = train_seconds
    trained = num_examples * result.epochs
    result.examples_per_second = trained / train_seconds if train_seconds else 0.0
    result.wall_seconds = time.perf_counter() - started
    return result


def scorer_of(model: SequenceEncoder) -> Callable[[torch.Tensor], torch.Tensor]:
    """Scores over all item indices (padding column included) for evaluation."""

    def score(clicks: torch.Tensor) -> torch.Tensor:
        return model.score_items(model(clicks))

    return score



def _epoch_line(record: dict[str, Any], improved: bool) -> str:
    valid = record["valid"]
    if record["loss"] is None:  # epoch 0: the warm-start weights, before any training
        line = "epoch   0  (warm start, untrained)  "
    else:
        line = (f"epoch {record['epoch']:3d}  loss {record['loss']:.4f}  "
                f"{record['examples_per_second']:,.0f} ex/s  ")
    line += (f"valid ndcg@10 {valid['ndcg@10']:.4f} hr@10 {valid['hr@10']:.4f} "
             f"hr@50 {valid['hr@50']:.4f}")
    if "concepts" in record:
        c = record["concepts"]
        line += (f"  concepts used {c['distinct_concepts']} "
                 f"(entropy {c['concept_entropy_normalized']:.2f})")
    return line + ("  *" if improved else "")
