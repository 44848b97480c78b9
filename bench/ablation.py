"""Why (or whether) SINE beats SASRec: one factor at a time, on one dataset.

    .venv/bin/python bench/ablation.py --dataset beauty

Starting from the benchmark setting (n = 20, D = 64, K = 4, L = 500, full softmax, batch
256), it varies K, L, the softmax (full or sampled), the sequence length n and the
input/output tables (tied or not), and for every trained model also scores per-interest
retrieval: an item's score is its best inner product with any of the K interest vectors
(what retrieving top-N per interest and merging K*N candidates by score ranks, as MIND
and the paper's SINE-label variant do) instead of with the aggregated user vector of
eq. (8). Reports test metrics, history kept and removed. Writes
bench/results/ablation-<dataset>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sine.metrics import ranking_metrics  # noqa: E402
from sine_cli.app import setup_logging  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.evaluate import rank_targets  # noqa: E402
from trainer.run import load_data, load_run, train_run  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
BASE = {"model": "sine", "dim": 64, "batch_size": 256, "max_len": 20, "threads": 2, "seed": 0}
VARIANTS = {
    "base (K=4, L=500)": {},
    "K=2": {"interests": 2},
    "K=8": {"interests": 8},
    "L=50": {"prototypes": 50},
    "L=2000": {"prototypes": 2000},
    "sampled softmax (1024 negatives)": {"loss": "sampled", "negatives": 1024},
    "n=10": {"max_len": 10},
    "n=50": {"max_len": 50},
    "untied input/output tables": {"tied_embeddings": False},
    "tau=1.0": {"tau": 1.0},
    "lambda=0": {"reg_weight": 0.0},
}


def per_interest_scorer(encoder):
    table = encoder.item_table()

    def score(clicks: torch.Tensor) -> torch.Tensor:
        interests = encoder(clicks).extras["interest_vectors"]  # [B, K, D]
        return (interests @ table.T).max(dim=1).values

    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "ablation")
    args = parser.parse_args()
    setup_logging()
    out = ROOT / "bench" / "results" / f"ablation-{args.dataset}.json"
    report = json.loads(out.read_text()) if out.exists() else {"dataset": args.dataset, "runs": {}}
    path = DATA / f"{args.dataset}.csv.gz"
    for name in args.variants:
        if name in report["runs"]:
            continue
        config = TrainConfig(**{**BASE, **VARIANTS[name]})
        run_dir = args.runs_dir / args.dataset / name.replace(" ", "_").replace("/", "-")
        metrics = train_run(path, run_dir, config)
        run = load_run(run_dir)
        data = load_data(path, run.config, vocabulary=run.vocabulary)
        with torch.no_grad():
            evalset = data.evaluation_set("test", run.config.max_len)
            per_interest = {
                "test": ranking_metrics(rank_targets(per_interest_scorer(run.encoder), evalset)),
                "test_history_kept": ranking_metrics(
                    rank_targets(per_interest_scorer(run.encoder), evalset, keep_history=True)),
            }
        report["runs"][name] = {
            "settings": VARIANTS[name], "epochs": metrics["epochs"], "best_epoch": metrics["best_epoch"],
            "aggregated": {k: metrics[k] for k in ("valid", "test", "test_history_kept")},
            "per_interest": per_interest,
            "concepts": {k: v for k, v in metrics.get("concepts", {}).items() if k != "concept_counts"},
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    keys = ("hr@10", "hr@20", "hr@50", "ndcg@10", "ndcg@20", "ndcg@50")
    lines = [f"Dataset {report['dataset']}; test split. Left: history kept (RecBole's ranking); "
             "right: history removed (the paper's).", "",
             "| variant | retrieval | epochs (best) | concepts used | "
             + " | ".join(f"kept {k}" for k in keys) + " | removed hr@50 | removed ndcg@10 |",
             "|" + "|".join([" --- "] * 4 + [" ---: "] * (len(keys) + 2)) + "|"]
    for name, run in report["runs"].items():
        for retrieval in ("aggregated", "per_interest"):
            m = run[retrieval]
            used = run["concepts"].get("distinct_concepts", "")
            lines.append(
                f"| {name} | {retrieval.replace('_', '-')} | {run['epochs']} ({run['best_epoch']}) | "
                f"{used} | " + " | ".join(f"{m['test_history_kept'][k]:.4f}" for k in keys)
                + f" | {m['test']['hr@50']:.4f} | {m['test']['ndcg@10']:.4f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
