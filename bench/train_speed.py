"""Training speed: our SINE / SASRec against RecBole 1.2.1's, timed in the same run.

    .venv/bin/python bench/train_speed.py --rounds 3
    .venv/bin/python bench/train_speed.py --models sine --datasets beauty --rounds 5

The machine is shared and noisy, so absolute seconds mean little: each round times one
training epoch of RecBole's model and then one of ours, at the same settings (n = 20,
D = 64, full softmax, batch 256, Adam, 2 threads), each in a fresh process, and the
report gives per-round ratios and their median. RecBole runs from its own virtual
environment (see bench/recbole_reference.py); without it only our figures are written.
Writes bench/results/train_speed.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RECBOLE_NAMES = {"sine": "SINE", "sasrec": "SASRec"}


def ours(dataset: str, model: str, threads: int) -> dict:
    """One timed epoch of our trainer (run in a worker process)."""
    sys.path.insert(0, str(ROOT))
    import torch

    from trainer.config import TrainConfig
    from trainer.fit import fit, seed_everything, use_bf16
    from trainer.models import build_encoder, model_config
    from trainer.run import load_data

    torch.set_num_threads(threads)
    config = TrainConfig(model=model, dim=64, batch_size=256, max_len=20, epochs=1, threads=threads)
    data = load_data(DATA / f"{dataset}.csv.gz", config)
    seed_everything(0)
    encoder = build_encoder(model, model_config(config, data.num_items))
    result = fit(encoder, data, config, torch.device("cpu"))
    examples = int(sum(max(int(n) - 1, 0) for n in data.train_lengths))
    return {"epoch_seconds": result.train_seconds, "examples": examples,
            "examples_per_second": examples / result.train_seconds,
            "bf16_products": use_bf16(config, torch.device("cpu"))}


def recbole(python: Path, dataset: str, model: str, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        subprocess.run([str(python), str(ROOT / "bench" / "recbole_reference.py"),
                        "--data", str(DATA / f"{dataset}.csv.gz"), "--model", RECBOLE_NAMES[model],
                        "--epochs", "1", "--threads", str(threads), "--out", str(out)],
                       check=True, capture_output=True, text=True)
        result = json.loads(out.read_text())
    return {"epoch_seconds": result["epoch_seconds_median"], "examples": result["train_examples"],
            "examples_per_second": result["examples_per_second"]}


def worker(dataset: str, model: str, threads: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", dataset, model, str(threads)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["beauty"])
    parser.add_argument("--models", nargs="+", default=["sine", "sasrec"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recbole-python", type=Path, default=ROOT / ".venv-recbole" / "bin" / "python")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_speed.json")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        dataset, model, threads = args.worker
        print(json.dumps(ours(dataset, model, int(threads))))
        return

    have_recbole = args.recbole_python.exists()
    report: dict = {"settings": "n=20, D=64, full softmax, batch 256, Adam 1e-3", "threads": args.threads,
                    "rounds": []}
    for dataset in args.datasets:
        for model in args.models:
            for round_ in range(args.rounds):
                entry: dict = {"dataset": dataset, "model": model, "round": round_}
                if have_recbole:
                    entry["recbole"] = recbole(args.recbole_python, dataset, model, args.threads)
                entry["ours"] = worker(dataset, model, args.threads)
                if have_recbole:
                    entry["speedup"] = entry["ours"]["examples_per_second"] / \
                        entry["recbole"]["examples_per_second"]
                report["rounds"].append(entry)
                print(json.dumps(entry), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = ["| dataset | model | rounds | RecBole ex/s (median) | ours ex/s (median) | speed-up per round "
             "| median speed-up |", "| --- | --- | ---: | ---: | ---: | --- | ---: |"]
    keys = sorted({(r["dataset"], r["model"]) for r in report["rounds"]})
    for dataset, model in keys:
        rounds = [r for r in report["rounds"] if (r["dataset"], r["model"]) == (dataset, model)]
        ours_eps = statistics.median(r["ours"]["examples_per_second"] for r in rounds)
        if "recbole" in rounds[0]:
            theirs = statistics.median(r["recbole"]["examples_per_second"] for r in rounds)
            ups = [r["speedup"] for r in rounds]
            lines.append(f"| {dataset} | {model} | {len(rounds)} | {theirs:,.0f} | {ours_eps:,.0f} | "
                         f"{', '.join(f'{u:.2f}x' for u in ups)} | {statistics.median(ups):.2f}x |")
        else:
            lines.append(f"| {dataset} | {model} | {len(rounds)} | (not installed) | {ours_eps:,.0f} | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
