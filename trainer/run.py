"""A training run end to end, and the run directory it leaves behind.

``sine train`` reads a log, splits it, trains, evaluates on both protocols and writes
RUN_DIR atomically (built in a temporary directory beside it, renamed when complete):

================== ==========================================================
checkpoint.pt      best-epoch weights + model name + architecture (no pickle
                   of code objects: loads with ``torch.load(weights_only=True)``)
config.json        every training option, and where the data came from
vocabulary.json    raw item ids, index i + 1 <-> entry i (0 is padding)
popularity.npy     training clicks per item index (the pop baseline, cold start)
sample_queries.npy validation click windows of up to 5,000 users (export checks, recall)
metrics.json       valid / test / test_history_kept metrics, timings, history
training_curves.png, concept_usage.png, train.log
================== ==========================================================
"""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sine.atomic import atomic_write, staging_directory
from sine.bundle import model_variant
from sine.data.logs import LogColumns, filter_min_counts, read_log
from sine.data.split import SplitData, leave_one_out
from sine.data.stream import parse_size, stream_split
from sine.data.vocabulary import ItemVocabulary
from sine.errors import SineError
from trainer import distributed, plots
from trainer.config import TrainConfig
from trainer.diagnostics import concept_usage
from trainer.evaluate import evaluate_split
from trainer.fit import FitResult, fit, resolve_device, scorer_of, seed_everything, use_bf16
from trainer.models import SINE, MostPopular, SequenceEncoder, build_encoder, model_config

log = logging.getLogger("sine.train")

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
VOCABULARY = "vocabulary.json"
POPULARITY = "popularity.npy"
METRICS = "metrics.json"
SAMPLE_QUERIES = "sample_queries.npy"
SAMPLE_QUERY_USERS = 5000


@dataclass
class Run:
    """A trained run loaded back from its directory."""

    path: Path
    config: TrainConfig
    info: dict[str, Any]  # config.json as a whole (data source, architecture)
    vocabulary: ItemVocabulary
    popularity: np.ndarray
    encoder: SequenceEncoder | None  # None for the pop baseline
    metrics: dict[str, Any]
    sample_queries: np.ndarray  # [Q, n] validation click windows

    def scorer(self):
        if self.encoder is None:
            return MostPopular(self.popularity).scores
        return scorer_of(self.encoder)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=True,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def load_data(path: str | Path, config: TrainConfig, columns: LogColumns = LogColumns(),
              sep: str | None = None, vocabulary: ItemVocabulary | None = None,
              work_dir: str | Path | None = None) -> SplitData:
    """Read, filter and split a log as a run with `config` does.

    With `config.memory_budget` (and no given vocabulary) a Parquet log is streamed
    (sine/data/stream.py); its sequences are then mapped from files under `work_dir`,
    which must outlive the returned data.
    """
    if config.memory_budget is not None and vocabulary is None:
        work_dir = Path(work_dir or tempfile.mkdtemp(prefix="sine-stream-"))
        data, _plan = stream_split(path, parse_size(config.memory_budget), work_dir, columns,
                                  config.min_item_count, config.min_user_count, progress=True)
        return data
    frame = read_log(path, columns, sep)
    frame = filter_min_counts(frame, config.min_item_count, config.min_user_count)
    return leave_one_out(frame, vocabulary)


def evaluate_all(scorer, data: SplitData, max_len: int, device: torch.device) -> dict[str, Any]:
    """valid and test (paper protocol: history removed) and test with history kept."""
    return {
        "valid": evaluate_split(scorer, data, "valid", max_len, device=device),
        "test": evaluate_split(scorer, data, "test", max_len, device=device),
        "test_history_kept": evaluate_split(scorer, data, "test", max_len, keep_history=True,
                                            device=device),
    }


def train_run(
    data_path: str | Path,
    out_dir: str | Path,
    config: TrainConfig,
    columns: LogColumns = LogColumns(),
    sep: str | None = None,
) -> dict[str, Any]:
    """Train `config.model` on the log at `data_path`; write and return its metrics."""
    resolve_device(distributed.rank_device(config.device))  # fails before the log is read
    distributed.check_batch(config.batch_size, distributed.launched_world_size())
    source = {"path": str(data_path), "sep": sep,
              "columns": {"user": columns.user, "item": columns.item, "timestamp": columns.timestamp}}
    with tempfile.TemporaryDirectory(prefix="sine-stream-") as work_dir:  # streamed sequences
        data = load_data(data_path, config, columns, sep, work_dir=work_dir)
        return train_split(data, source, out_dir, config)


def train_split(data: SplitData, source: dict[str, Any], out_dir: str | Path,
                config: TrainConfig) -> dict[str, Any]:
    """Train on an already split log; `source` says where it came from (for the record).

    Launched by torchrun, every process runs this and trains its share (see
    trainer/distributed.py); only rank 0 writes `out_dir`, and all return the metrics.
    """
    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(distributed.rank_device(config.device))
    if config.eval_users:  # the same seeded sample on every rank
        data = data.with_evaluation_sample(config.eval_users, config.seed)
    with distributed.session(device) as group:
        if not group.is_main:
            return _train_into(None, data, source, config, device, started)
        return _train_main(data, source, Path(out_dir), config, device, started)


def _train_main(data: SplitData, source: dict[str, Any], out_dir: Path, config: TrainConfig,
                device: torch.device, started: float) -> dict[str, Any]:
    num_examples = data.num_training_examples  # a warm start may use fewer
    log.info(
        "%s: %s users, %s items, %s clicks; %s training examples, %s evaluated users",
        source.get("path"), f"{len(data.user_ids):,}", f"{data.num_items:,}", f"{len(data.items):,}",
        f"{num_examples:,}", f"{len(data.eval_users):,}",
    )
    with staging_directory(out_dir) as staged:
        handler = logging.FileHandler(staged / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.getLogger("sine").addHandler(handler)
        try:
            metrics = _train_into(staged, data, source, config, device, started)
        finally:
            logging.getLogger("sine").removeHandler(handler)
            handler.close()
    log.info("wrote %s", out_dir)
    return metrics


def _train_into(staged: Path | None, data: SplitData, source: dict[str, Any], config: TrainConfig,
                device: torch.device, started: float) -> dict[str, Any]:
    popularity = data.train_item_counts()
    data_path = source.get("path")
    info: dict[str, Any] = {
        "train": config.to_dict(),
        "data": {**source, "fingerprint": data.fingerprint},
    }
    seed_everything(config.seed)
    if config.model == "pop":
        encoder = None
        scorer = MostPopular(popularity).scores
        result = FitResult(best_epoch=0, epochs=0)
    else:
        categories = None
        if config.prototypes_from:  # SINE-cate: the concept pool is the items' categories
            categories = category_pairs(config, data.vocabulary.ids)
            info["categories"] = categories[2]
            # L is the number of labels, not --prototypes: the configuration (config.json, the
            # architecture, a bundle's "training") says the L that is trained
            config = replace(config, prototypes=len(categories[2]))
            info["train"] = config.to_dict()
        arch = model_config(config, data.num_items)
        if categories is not None:
            arch["category_pairs"] = len(categories[0])
        info["architecture"] = arch
        encoder = build_encoder(config.model, arch)
        if categories is not None:
            encoder.set_categories(torch.as_tensor(categories[0]), torch.as_tensor(categories[1]))
        if config.init_from:
            warm_start(encoder, data.vocabulary, Path(config.init_from))

        def save_checkpoint(model: SequenceEncoder, epoch: int) -> None:
            if staged is not None:
                _save_checkpoint(staged / CHECKPOINT, config.model, arch, model, epoch)

        result = fit(encoder, data, config, device, on_improvement=save_checkpoint,
                     score_start=bool(config.init_from))
        if staged is not None and not (staged / CHECKPOINT).exists():  # interrupted before the first validation
            save_checkpoint(encoder, result.best_epoch)
        scorer = scorer_of(encoder)

    metrics: dict[str, Any] = {"model": config.model, "variant": model_variant(config.model, config.to_dict()),
                               "seed": config.seed}
    metrics.update(evaluate_all(scorer, data, config.max_len, device))  # sharded under torchrun
    group = distributed.current()
    if isinstance(encoder, SINE) and group.is_main:
        valid_inputs = data.evaluation_set("valid", config.max_len).inputs
        metrics["concepts"] = concept_usage(encoder, valid_inputs, device=device)
    metrics.update({
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "train_seconds": round(result.train_seconds, 3),
        "examples_per_second": round(result.examples_per_second, 1),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "interrupted": result.interrupted,
        "dataset": {
            "path": str(data_path),
            "fingerprint": data.fingerprint,
            "users": len(data.user_ids),
            "items": data.num_items,
            "clicks": len(data.items),
            "train_examples": data.num_training_examples,
            "evaluated_users": len(data.eval_users),
        },
        "loss": result.loss_kind if encoder is not None else None,
        "bf16_products": bool(encoder is not None and use_bf16(config, device)),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "world_size": group.world_size,  # processes that trained it (torchrun)
        "global_batch": config.batch_size,  # --batch-size, split over the processes
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": git_commit(),
        "config": config.to_dict(),
        "history": [_without_counts(h) for h in result.history],
    })
    log.info(
        "test (history removed): hr@10 %.4f hr@50 %.4f ndcg@10 %.4f | history kept: hr@10 %.4f "
        "hr@50 %.4f ndcg@10 %.4f", metrics["test"]["hr@10"], metrics["test"]["hr@50"],
        metrics["test"]["ndcg@10"], metrics["test_history_kept"]["hr@10"],
        metrics["test_history_kept"]["hr@50"], metrics["test_history_kept"]["ndcg@10"],
    )

    if staged is None:  # not rank 0: nothing to write
        return metrics
    atomic_write(staged / CONFIG, json.dumps(info, indent=2))
    data.vocabulary.save(staged / VOCABULARY)
    np.save(staged / POPULARITY, popularity, allow_pickle=False)
    valid_inputs = data.evaluation_set("valid", config.max_len).inputs
    chosen = np.random.default_rng(config.seed).permutation(len(valid_inputs))[:SAMPLE_QUERY_USERS]
    np.save(staged / SAMPLE_QUERIES, valid_inputs[np.sort(chosen)], allow_pickle=False)
    atomic_write(staged / METRICS, json.dumps(metrics, indent=2))
    if result.history:
        title = f"{config.model} on {Path(str(data_path)).name}"
        plots.training_curves(result.history, result.best_epoch, title,
                              staged / "training_curves.png")
        if isinstance(encoder, SINE):
            plots.concept_usage(result.history, result.best_epoch, config.prototypes,
                                staged / "concept_usage.png")
    return metrics


def category_pairs(config: TrainConfig, items: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """SINE-cate's (item index, category) pairs from --attributes' --prototypes-from column,
    and the category names: the labels that at least one catalog item carries (L of them)."""
    from sine import attributes as item_attributes

    assert config.attributes and config.prototypes_from
    table = item_attributes.read_attribute_file(config.attributes)
    if config.prototypes_from not in table:
        raise SineError(f"{config.attributes}: no attribute {config.prototypes_from!r} for "
                        f"--prototypes-from (it has: {', '.join(sorted(table)) or 'none'})")
    column = item_attributes.align({config.prototypes_from: table[config.prototypes_from]},
                                   items).columns[config.prototypes_from]
    used, categories = np.unique(column.codes, return_inverse=True)
    if len(used) < config.interests:
        raise SineError(f"{config.attributes}: {len(used)} {config.prototypes_from} labels on the "
                        f"catalog's items, fewer than --interests (K={config.interests})")
    rows = column.row_of_pair() + 1  # item index = row + 1 (0 is padding)
    log.info("SINE-cate: %d labels of %r as prototypes, %d of %d items labelled", len(used),
             config.prototypes_from, len(np.unique(rows)), len(items))
    return rows, categories.astype(np.int64), [column.values[c] for c in used]


def warm_start(encoder: SequenceEncoder, vocabulary: ItemVocabulary, run_dir: Path) -> None:
    """Initialise `encoder` from a trained run: same-shaped weights are copied, item rows
    are matched by raw item id (new items keep their random initialisation)."""
    old = load_run(run_dir)
    if old.encoder is None or type(old.encoder) is not type(encoder):
        raise SineError(f"{run_dir}: cannot warm-start a {type(encoder).__name__} from this run")
    state = encoder.state_dict()
    old_state = old.encoder.state_dict()
    rows = np.array([old.vocabulary.index_of(item) for item in vocabulary.ids], dtype=np.int64)
    known = torch.as_tensor(rows > 0)
    copied = 0
    with torch.no_grad():
        for name, tensor in state.items():
            previous = old_state.get(name)
            if previous is None or name.startswith("category_"):  # SINE-cate: this catalog's own
                continue
            if name.endswith(("item_embedding.weight", "output_embedding.weight")):
                new_rows = torch.arange(1, len(rows) + 1)[known]
                tensor[new_rows] = previous[torch.as_tensor(rows)[known]]
                copied += 1
            elif previous.shape == tensor.shape:
                tensor.copy_(previous)
                copied += 1
    encoder.load_state_dict(state)
    log.info("warm start from %s: %d tensors, %d of %d items known", run_dir, copied,
             int(known.sum()), len(rows))


def _without_counts(record: dict[str, Any]) -> dict[str, Any]:
    if "concepts" not in record:
        return record
    concepts = {k: v for k, v in record["concepts"].items() if k != "concept_counts"}
    return {**record, "concepts": concepts}


def _save_checkpoint(path: Path, name: str, arch: dict[str, Any], model: SequenceEncoder,
                     epoch: int) -> None:
    import io

    buffer = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"model": name, "architecture": arch, "epoch": epoch, "state_dict": state}, buffer)
    atomic_write(path, buffer.getvalue())


def load_run(path: str | Path, device: str | torch.device = "cpu") -> Run:
    """Load a run directory written by `train_run`; errors name the missing piece."""
    path = Path(path)
    if not path.is_dir():
        raise SineError(f"{path}: not a run directory (train one with `sine train`)")
    for name in (CONFIG, VOCABULARY, POPULARITY):
        if not (path / name).is_file():
            raise SineError(f"{path}: incomplete run, {name} is missing")
    try:
        info = json.loads((path / CONFIG).read_text())
        if not isinstance(info, dict) or not isinstance(info.get("train"), dict):
            raise SineError("no table of training settings under \"train\"")
        config = TrainConfig.from_dict(info["train"])
    except (SineError, ValueError) as exc:  # ValueError: not JSON
        raise SineError(f"{path / CONFIG}: {exc}") from None
    encoder = None
    if config.model != "pop":
        if not (path / CHECKPOINT).is_file():
            raise SineError(f"{path}: incomplete run, {CHECKPOINT} is missing")
        checkpoint = torch.load(path / CHECKPOINT, map_location=device, weights_only=True)
        encoder = build_encoder(checkpoint["model"], checkpoint["architecture"])
        encoder.load_state_dict(checkpoint["state_dict"])
        encoder.to(device).eval()
    metrics_path = path / METRICS
    return Run(
        path=path,
        config=config,
        info=info,
        vocabulary=ItemVocabulary.load(path / VOCABULARY),
        popularity=np.load(path / POPULARITY, allow_pickle=False),
        encoder=encoder,
        metrics=json.loads(metrics_path.read_text()) if metrics_path.is_file() else {},
        sample_queries=(np.load(path / SAMPLE_QUERIES, allow_pickle=False)
                        if (path / SAMPLE_QUERIES).is_file() else np.zeros((0, config.max_len), np.int64)),
    )
