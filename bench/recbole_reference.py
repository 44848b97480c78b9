"""Reference runs of the public library RecBole 1.2.1 under our protocol (not our code).

Runs in its own virtual environment, because RecBole pins its own dependency set:

    python3 -m venv .venv-recbole
    .venv-recbole/bin/pip install torch==2.13.0 recbole==1.2.1 "numpy<2" "pandas<2.2" "scipy<1.14"

then, from the repository root, time one epoch (what bench/train_speed.py calls):

    .venv-recbole/bin/python bench/recbole_reference.py --data ../shared/data/beauty.csv.gz \\
        --model SINE --epochs 1 --out /tmp/recbole_sine_beauty.json

or train to early stopping and score the test split (the accuracy reference that
bench/accuracy.py shows next to our figures):

    .venv-recbole/bin/python bench/recbole_reference.py --data ../shared/data/beauty.csv.gz \\
        --model SINE --epochs 200 --patience 10 --threads 1 --deadline-s 7200

which writes bench/results/recbole/beauty-sine-seed0.json (dataset, lower-case model,
seed); a timing run without --out writes ...-seed0-timing.json beside it. The log is
converted to RecBole's atomic format in a temporary directory; settings: n=20, D=64,
CE over all items, batch 256, Adam 1e-3, early stopping on valid NDCG@10, leave-one-out
by time, full ranking with the user's history kept (RecBole's way). `--patience` counts as ours
does (stop after that many epochs without a better validation score): RecBole's
`stopping_step` is one less, because RecBole stops once the count *exceeds* it (its
default, 10, is our patience 11). One difference stays: RecBole counts a tie (at its
4-decimal rounding) as an improvement, ours needs a strictly better score. A run
that the deadline or `--epochs` ended before early stopping did is written with
`"complete": false` and its best-so-far test figures; bench/accuracy.py lists it and never
shows it as a reference. RecBole's sequential models switch on autograd anomaly
detection when imported; it is switched off again here (as it was for the figures
bench/accuracy.py copies from issue #2 of this project's tracker).
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "recbole"


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring's layout kept, and every option's default shown."""


class DeadlineReached(Exception):
    """Raised from RecBole's end-of-epoch callback once --deadline-s has passed."""


def convert(log: Path, workdir: Path, name: str) -> None:
    target = workdir / name
    target.mkdir(parents=True)
    opener = gzip.open if log.suffix == ".gz" else open
    with opener(log, "rt") as src, open(target / f"{name}.inter", "w") as dst:
        header = src.readline().strip().split(",")
        assert header[:3] == ["user_id", "item_id", "timestamp"], header
        dst.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for line in src:
            dst.write("\t".join(line.strip().split(",")[:3]) + "\n")


class FirstBatches:
    """Batches `skip` .. `skip + count` of a RecBole loader, as a loader its trainer takes."""

    def __init__(self, loader, skip: int, count: int):
        self.loader, self.skip, self.count = loader, skip, count
        self.shuffle = loader.shuffle
        self.sampler = getattr(loader, "sampler", None)

    def __iter__(self):
        import itertools

        batches = itertools.islice(iter(self.loader), self.skip, self.skip + self.count)
        if self.skip + self.count > len(self.loader):
            raise SystemExit(f"the loader has {len(self.loader)} batches: lower --steps")
        return batches

    def __len__(self) -> int:
        return self.count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="user_id,item_id,timestamp CSV (.gz)")
    parser.add_argument("--model", default="SINE", choices=["SINE", "SASRec", "GRU4Rec", "Caser"],
                        help="RecBole model")
    parser.add_argument("--epochs", type=int, default=1,
                        help="1 = time one epoch only; more = train to early stopping and test")
    parser.add_argument("--patience", type=int, default=10,
                        help="epochs without a better validation NDCG@10 before stopping (ours)")
    parser.add_argument("--deadline-s", type=float, default=0,
                        help="stop training after this many seconds (0: none); marked incomplete")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--seed", type=int, default=0, help="RecBole's seed")
    parser.add_argument("--timed-epochs", type=int, default=1,
                        help="epochs to time when --epochs 1 (the median is reported)")
    parser.add_argument("--steps", type=int, default=0,
                        help="time this many batches (after --warmup) instead of whole epochs")
    parser.add_argument("--warmup", type=int, default=10, help="untimed batches before --steps")
    parser.add_argument("--out", type=Path,
                        help="bench/results/recbole/DATASET-model-seedN.json when not given "
                        "(-timing.json when --epochs is 1)")
    args = parser.parse_args()
    if args.patience < 1:
        parser.error("--patience must be at least 1")

    # RecBole 1.2.1 reloads its best checkpoint with a plain torch.load, which torch >= 2.6
    # refuses by default (weights_only); the file is the one this run just wrote.
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    torch.autograd.set_detect_anomaly(False)  # RecBole turns it on at import
    torch.set_num_threads(args.threads)

    name = args.data.name.split(".")[0]
    with tempfile.TemporaryDirectory() as tmp:
        convert(args.data, Path(tmp), name)
        config = Config(model=args.model, dataset=name, config_dict={
            "data_path": tmp,
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "MAX_ITEM_LIST_LENGTH": 20,
            "embedding_size": 64, "hidden_size": 64,
            "train_batch_size": 256, "eval_batch_size": 2048,
            "learning_rate": 1e-3, "loss_type": "CE", "train_neg_sample_args": None,
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full",
                          "group_by": "user"},
            "metrics": ["Hit", "NDCG"], "topk": [10, 20, 50], "valid_metric": "NDCG@10",
            "epochs": args.epochs, "stopping_step": stopping_step(args.patience), "seed": args.seed,
            "reproducibility": True, "device": "cpu", "use_gpu": False, "show_progress": False,
            "checkpoint_dir": str(Path(tmp) / "saved"), "log_wandb": False,
        })
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        torch.autograd.set_detect_anomaly(False)
        model = get_model(config["model"])(config, train_data.dataset).to("cpu")
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        result: dict = {"library": "recbole 1.2.1", "model": args.model, "dataset": name,
                        "data": str(args.data), "seed": args.seed, "threads": args.threads,
                        "train_examples": len(train_data.dataset),
                        "measured_at": datetime.datetime.now(datetime.UTC)
                        .strftime("%Y-%m-%d %H:%M UTC"),
                        "torch": torch.__version__, "cpu_count": os.cpu_count(),
                        "commit": _commit()}
        if args.epochs == 1 and args.steps:
            # RecBole's own epoch loop over the first warm-up + steps batches only
            trainer._train_epoch(FirstBatches(train_data, 0, args.warmup), epoch_idx=0, show_progress=False)
            start = time.perf_counter()
            trainer._train_epoch(FirstBatches(train_data, args.warmup, args.steps), epoch_idx=0,
                                 show_progress=False)
            seconds = time.perf_counter() - start
            examples = args.steps * config["train_batch_size"]
            result.update(epoch_seconds=[seconds], epoch_seconds_median=seconds, timed_examples=examples,
                          timed_steps=args.steps, examples_per_second=examples / seconds)
        elif args.epochs == 1:
            times = []
            for epoch in range(args.timed_epochs):
                start = time.perf_counter()
                trainer._train_epoch(train_data, epoch_idx=epoch, show_progress=False)
                times.append(time.perf_counter() - start)
            times.sort()
            result["epoch_seconds"] = times
            result["epoch_seconds_median"] = times[len(times) // 2]
            result["examples_per_second"] = result["train_examples"] / result["epoch_seconds_median"]
            result["timed_examples"] = result["train_examples"]
        else:
            result.update(_train_to_stop(trainer, train_data, valid_data, test_data, args))
    timing = "-timing" if args.epochs == 1 else ""  # never in place of a trained reference
    out = args.out or RESULTS / f"{name}-{args.model.lower()}-seed{args.seed}{timing}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(result, indent=2, default=float))
    partial.replace(out)
    print(json.dumps(result, indent=2, default=float))


def stopping_step(patience: int) -> int:
    """RecBole's stopping_step for our patience: RecBole stops once its count exceeds it."""
    return patience - 1


def _train_to_stop(trainer, train_data, valid_data, test_data, args) -> dict:
    """RecBole's own fit loop, its validation scores recorded per epoch, and the test.

    The deadline is checked at the end of each epoch (RecBole's callback), so a run can
    overrun it by one epoch; its best checkpoint so far is tested and marked incomplete.
    """
    history: list[float] = []
    started = time.perf_counter()

    def after_epoch(epoch_idx: int, valid_score: float) -> None:
        history.append(float(valid_score))
        print(f"epoch {len(history)}: valid ndcg@10 {valid_score:.4f}, "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # RecBole itself is quiet here
        if args.deadline_s and time.perf_counter() - started > args.deadline_s:
            raise DeadlineReached

    ended = "early stopping"
    try:
        trainer.fit(train_data, valid_data, saved=True, show_progress=False, callback_fn=after_epoch)
        if len(history) >= args.epochs and trainer.cur_step < args.patience:
            ended = "epoch limit"
    except DeadlineReached:  # raised after RecBole's own stop test of that epoch
        ended = "early stopping" if trainer.cur_step >= args.patience else "deadline"
    # RecBole keeps (and tests) the last of tied best scores: it saves on >=
    best = max(range(len(history)), key=lambda i: (history[i], i)) + 1 if history else 0
    return {"patience": args.patience, "recbole_stopping_step": stopping_step(args.patience),
            "max_epochs": args.epochs, "deadline_s": args.deadline_s,
            "train_seconds": time.perf_counter() - started, "valid_ndcg10_history": history,
            "epochs": len(history), "best_epoch": best, "ended_by": ended,
            "complete": ended == "early stopping", "best_valid": trainer.best_valid_result,
            "test_history_kept": trainer.evaluate(test_data, load_best_model=True)}


def _commit() -> str:
    """This checkout's commit, marked -dirty when it has changes. Not trainer.run.git_commit:
    this script runs in RecBole's own environment, where the project is not installed."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()
